"""Streamlit internals safestate uses: this fails loudly when an upgrade moves one."""

from __future__ import annotations

import threading

from streamlit.testing.v1 import AppTest

from safestate import _compat


def test_every_internal_is_where_safestate_expects_it() -> None:
    _compat.verify()  # raises StreamlitCompatibilityError naming what moved


def test_current_run_inside_and_outside_a_session() -> None:
    def app() -> None:
        import streamlit as st

        from safestate import _compat

        sid, state = _compat.current_run()  # type: ignore[misc]
        st.session_state["probe"] = 1
        st.session_state["found"] = (sid, state["probe"], type(state).__name__)
        st.session_state["status"] = _compat.session_status(sid)

    at = AppTest.from_function(app).run()
    sid, value, state_type = at.session_state["found"]
    assert sid and value == 1 and state_type == "SessionState"
    assert at.session_state["status"] == "unknown"  # AppTest has no real runtime

    seen: list[object] = []
    t = threading.Thread(target=lambda: seen.append(_compat.current_run()))
    t.start()
    t.join(10)
    assert seen == [None]
