"""Served by `streamlit run` in tests/test_server.py: a worker writes while the script reruns."""

import sys
import time

import streamlit as st

import safestate

WRITES = 3000
# Switch threads every few bytecodes: makes the worker land inside Streamlit's state
# compaction often enough for a test to see a lost write if one can happen.
sys.setswitchinterval(1e-6)

if st.query_params.get("start") == "1" and not safestate.safe_get("started", False):
    safestate.safe_set("started", True)

    def work(handle: safestate.manager.SessionHandle) -> None:
        for i in range(1, WRITES + 1):
            handle.safe_set(f"slot_{i % 50}", i)  # new keys and overwrites, as real code does
            handle.increment("ticks")
            time.sleep(0.0005)  # a worker doing real work between writes
        handle.safe_set("done", True)

    safestate.start_thread(work)

st.markdown(f"TICKS={safestate.safe_get('ticks', 0)}")
st.markdown(f"DONE={safestate.safe_get('done', False)}")
keys = safestate.session_manager.keys()
st.markdown(f"SLOTS={sum(1 for k in keys if k.startswith('slot_'))}")
