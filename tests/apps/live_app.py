"""Served by `streamlit run` in tests/test_live.py: live updates between sessions.

Query parameters:
  who=NAME      how this session names itself in the run log ($LIVE_LOG)
  post=TEXT     write TEXT to the shared key "board"
  noread=1      read nothing live (the session must then never be rerun by a change)
  frag=1        read "board" inside a fragment only
  slow=1        the fragment takes 50 ms, between "<who> enter" and "<who> leave" in the log
  hold=S        the run takes S seconds, between "<who> hold" and "<who> done" in the log
  burst=N       write "board" N times, 20 ms apart: b0 .. b<N-1>
  worker=TEXT   a thread (no script run of its own) writes TEXT to "board"
  quiet=TEXT    write TEXT to "quiet", a key the server's $SAFESTATE_LIVE_EXCLUDE lists
  count=1       the README's quick start: increment the shared "hits" on every run, and show it
Every run appends "<who> body" to the log; a fragment run appends "<who> fragment".
"""

import os
import threading
import time

import streamlit as st

import safestate

safestate.configure()
q = st.query_params
who = q.get("who", "?")
log = os.environ["LIVE_LOG"]


def note(what: str) -> None:
    with open(log, "a") as f:
        f.write(f"{who} {what}\n")


note("body")
if "hold" in q:
    note("hold")
    time.sleep(float(q["hold"]))  # a long script run (a report), not synchronization
    note("done")
if "post" in q:
    safestate.shared.safe_set("board", q["post"])
if "burst" in q:
    for i in range(int(q["burst"])):
        safestate.shared.safe_set("board", f"b{i}")
        time.sleep(0.02)  # the writer's pace, not synchronization
if "worker" in q:
    text = q["worker"]
    threading.Thread(target=lambda: safestate.shared.safe_set("board", text)).start()
if "count" in q:
    safestate.shared.increment("hits")
    st.markdown(f"HITS={safestate.shared.safe_get('hits')}")
if "quiet" in q:
    safestate.shared.safe_set("quiet", q["quiet"])
st.markdown(f"QUIET={safestate.shared.safe_get('quiet')}")

if "frag" in q:

    @st.fragment
    def board() -> None:
        note("fragment")
        if "slow" in q:
            note("enter")
            time.sleep(0.05)  # a fragment that takes a while to draw
            note("leave")
        st.markdown(f"BOARD={safestate.shared.safe_get('board')}")

    board()
elif "noread" not in q:
    st.markdown(f"BOARD={safestate.shared.safe_get('board')}")
st.markdown("DONE=1")
