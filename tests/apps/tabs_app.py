"""Served by `streamlit run` in tests/test_coherence.py: tabs and replicas of one identity.

Settings come from the environment (SAFESTATE_STORE, SAFESTATE_IDENTITY=browser,
SAFESTATE_SECRET, SAFESTATE_PERSIST=schema), as a deployment gives them. Open it once
without ``ss=`` to get an identity (TOKEN=), then with ``ss=<token>`` from other tabs
or the other process.

Query parameters:
  add=ITEM      state.cart += [ITEM]
  plus=N        N times state.step += 1 (a refused one is counted, not retried)
  edit=N        N times `with state.edit() as s: s.step += 1`
  note=TEXT     safestate.safe_set("note", TEXT), a blind write
  c=ID          the click's id: its actions run once, even when the session reruns
                by itself with the same query string (a live update)
Always drawn: CLICK (the id), TOKEN, PID, CART (json), NOTE, STEP, and DONE: for every
plus/edit click of this session, [applied, refused] by click id (JSON). (Read a click's
counts from a later run: Streamlit may merge a run's messages with the next run's when
a live update reruns the session right after it, as a browser only shows the last.)
"""

import json
import os

import streamlit as st
from pydantic import BaseModel

import safestate


class Tab(BaseModel):
    step: int = 0
    cart: list[str] = []
    note: str = ""


safestate.configure()
state = safestate.typed(Tab)
q = dict(st.query_params)
done = st.session_state.setdefault("clicks", set())
if q.get("c") in done:  # this click's actions ran already: draw only
    q = {k: v for k, v in q.items() if k in ("c", "ss")}
done.add(q.get("c"))
if "add" in q:
    state.cart += [q["add"]]
for mode in ("plus", "edit"):
    if mode in q:
        ok = stale = 0
        for _ in range(int(q[mode])):
            try:
                if mode == "plus":
                    state.step += 1
                else:
                    with state.edit() as s:
                        s.step += 1
                ok += 1
            except safestate.errors.StaleWriteError:
                stale += 1
        st.session_state.setdefault("counts", {})[q.get("c")] = [ok, stale]
if "note" in q:
    safestate.safe_set("note", q["note"])
st.markdown(f"CLICK={q.get('c')}")
st.markdown(f"TOKEN={st.query_params.get('ss')}")
st.markdown(f"PID={os.getpid()}")
st.markdown(f"CART={json.dumps(state.cart)}")
st.markdown(f"NOTE={state.note}")
st.markdown(f"STEP={state.step}")
st.markdown(f"DONE={json.dumps(st.session_state.get('counts', {}))}")
