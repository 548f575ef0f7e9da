"""Served by `streamlit run` in tests/test_server.py: session end hooks and dependency teardown.

$SESSION_END_LOG names a file; when a session ends, its hook appends
"end <name> <time.time()>" and the teardown of its "conn" dependency (built on every run)
"teardown <name>", where <name> is the session's last ``name`` (from ?name=...).
Always drawn: NAME (the session's name).
"""

import os
import time

import streamlit as st

import safestate
from safestate.manager import SessionHandle

# Before the first call of the process, so the sweeper starts with it: a closed tab's hook
# then runs at most this long after server.disconnectedSessionTTL.
safestate.session_manager.sweep_interval = 0.2
LOG = os.environ["SESSION_END_LOG"]


def append(line: str) -> None:
    with open(LOG, "a") as log:
        log.write(line + "\n")


@safestate.session_manager.on_session_end
def note_end(session: SessionHandle) -> None:
    append(f"end {session.safe_get('name')} {time.time()}")


class Connection:
    def __init__(self, owner: str) -> None:
        self.owner = owner

    def close(self) -> None:
        append(f"teardown {self.owner}")


if "name" in st.query_params:
    safestate.safe_set("name", st.query_params["name"])
name = safestate.safe_get("name", "")
safestate.register_dependency("conn", lambda: Connection(name), teardown=Connection.close)
safestate.get_dependency("conn")
st.markdown(f"NAME={name}")
