"""Served by `streamlit run` in tests/test_server.py: a run superseded while it waits for the lock.

``?op=hold&release=<path>``: a worker takes this session's lock and keeps it until the
file ``path`` exists (bounded). ``?op=write&n=<n>``: append n to the session's log with
a read-modify-write; the run says WAITING first, so the test knows it is about to wait.
"""

import pathlib
import threading
import time

import streamlit as st

import safestate

HOLD_LIMIT = 30.0  # seconds: the worker lets go by then whatever happens

params = st.query_params
op = params.get("op")
if op == "hold":
    release = pathlib.Path(params["release"])
    holding = threading.Event()

    def hold(handle: safestate.manager.SessionHandle) -> None:
        with handle.session_lock():
            holding.set()
            deadline = time.monotonic() + HOLD_LIMIT
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # polling interval of a bounded wait for the test's file

    safestate.start_thread(hold)
    holding.wait(HOLD_LIMIT)
    st.markdown(f"HOLDING={holding.is_set()}")
    st.stop()  # this run must not wait for the lock its own worker holds
if op == "write":
    n = int(params["n"])
    st.markdown(f"WAITING={n}")
    safestate.mutate("log", lambda log: [*log, n], [])
    st.markdown(f"WROTE={n}")
st.markdown(f"LOG={','.join(map(str, safestate.safe_get('log', [])))}")
