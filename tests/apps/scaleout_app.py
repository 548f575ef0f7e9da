"""Served by `streamlit run` in tests/test_scaleout.py: two processes, one store.

The store comes from $SAFESTATE_STORE (set by the test); with one configured, ``shared``
lives in the store, so every process serving this app sees the same shared state.

Query parameters:
  key=K               the shared key to work on (default "hits")
  set=JSON            write json.loads(JSON) to K through shared.safe_set
  hammer=N            4 threads each do N shared.increment(K), joined with a deadline
  c=ID                the click's id: its actions run once, even when the session reruns by
                      itself with the same query string (a live update from the other process)
Always drawn: CLICK, STORE, PID and VALUE (K's value as JSON, read after any work above).
"""

import json
import os
import threading
import time

import streamlit as st

import safestate

THREADS = 4
JOIN_SECONDS = 45.0  # the whole hammer must finish within this, or it reports ALIVE>0

safestate.configure()  # store and the rest from the environment (SAFESTATE_STORE)

q = dict(st.query_params)
key = q.get("key", "hits")
done = st.session_state.setdefault("clicks", set())
if q.get("c") in done:  # this click's actions ran already: draw only
    q = {k: v for k, v in q.items() if k in ("c", "key")}
done.add(q.get("c"))
st.markdown(f"CLICK={q.get('c')}")

if "set" in q:
    safestate.shared.safe_set(key, json.loads(q["set"]))

if "hammer" in q:
    per_thread = int(q["hammer"])
    done = [0] * THREADS
    errors: list[str] = []
    store = safestate.current_app().configuration.store
    assert store is not None
    trips_before = store.round_trips

    def hammer(slot: int) -> None:
        try:
            for _ in range(per_thread):
                safestate.shared.increment(key)
                done[slot] += 1
        except BaseException as exc:  # reported on the page, not lost in a thread
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(THREADS)]
    started = time.time()
    for t in threads:
        t.start()
    deadline = time.monotonic() + JOIN_SECONDS
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    finished = time.time()
    # Kept, and drawn on every run: a live rerun right after this run may replace its
    # messages before they reach the client (Streamlit drops a run's unsent messages).
    st.session_state["hammer"] = {
        "DONE": str(sum(done)), "ALIVE": str(sum(t.is_alive() for t in threads)),
        "ERRORS": json.dumps(errors), "SPAN": f"{started:.6f},{finished:.6f}",
        # Threads of this process take turns on shared's lock, so this count is exact
        # enough: 2 per increment (load + commit) plus 2 per retry after another process
        # won the race.
        "TRIPS": str(store.round_trips - trips_before),
    }
for name, text in st.session_state.get("hammer", {}).items():
    st.markdown(f"{name}={text}")

settings = safestate.current_app().configuration.settings
st.markdown(f"STORE={settings.store if settings else None}")
st.markdown(f"PID={os.getpid()}")
st.markdown(f"VALUE={json.dumps(safestate.shared.safe_get(key))}")
