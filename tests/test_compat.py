"""Streamlit internals safestate uses: this fails loudly when an upgrade moves one."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap
import threading

import pytest
from conftest import needs_streamlit
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


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter (safestate imported there anew), from the repo root."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False, cwd=pathlib.Path(__file__).parent)


@needs_streamlit(_compat.NEWEST_TESTED, "the newest tested internals, to pose as a newer one")
def test_a_streamlit_newer_than_any_tested_is_verified_at_import() -> None:
    done = run_python("""
        import streamlit
        streamlit.__version__ = "1.99.0"  # a release after every tested one
        import safestate
        from safestate import _compat
        print(_compat.STREAMLIT_VERSION, _compat.at_least(_compat.NEWEST_TESTED))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1.99.0", "True"]


@pytest.mark.parametrize(("remove", "named"), [
    ("from streamlit.runtime.app_session import AppSession as C\n"
     "del C.request_rerun", "AppSession.request_rerun"),
    ("from streamlit.runtime.state.session_state import SessionState as C\n"
     "del C.filtered_state", "SessionState.filtered_state"),
    # Probes that would raise KeyError, AttributeError or ImportError of their own:
    ("from streamlit.runtime.scriptrunner_utils.script_run_context import ScriptRunContext as C\n"
     "del C.reset", "ScriptRunContext.reset making cursors anew"),
    ("from streamlit.runtime.app_session import AppSession as C\n"
     "del C.__init__", "AppSession._"),  # the first of its attributes checked
    ("import streamlit.runtime.secrets as C\n"
     "del C.Secrets.load_if_toml_exists", "st.secrets.load_if_toml_exists"),
])
def test_a_moved_internal_fails_the_import_naming_it_and_the_version(
    remove: str, named: str,
) -> None:
    done = run_python(f"""
        {textwrap.indent(remove, " " * 8).strip()}
        try:
            import safestate
        except Exception as exc:
            print(type(exc).__name__, "|", exc)
        else:
            print("imported")
    """)
    assert done.returncode == 0, done.stderr
    name, _, message = done.stdout.partition(" | ")
    assert name == "StreamlitCompatibilityError"
    assert f"Streamlit {_compat.STREAMLIT_VERSION} " in message and named in message
    assert _compat.SUPPORTED in message  # what to install instead


@pytest.mark.parametrize(("version", "running", "expected"), [
    ("1.40", "1.40.2", True), ("1.41", "1.40.2", False), ("1.58", "1.58.0rc1", True),
    ("1.67", "1.67.0", True), ("1.67", "2.0.0", True), ("1.9", "1.10.0", True),
])
def test_at_least_compares_minors(version: str, running: str, expected: bool) -> None:
    assert _compat.compare(running, version) is expected


def test_identity_user_works_on_every_supported_streamlit(tmp_path: pathlib.Path) -> None:
    # st.user since 1.45, st.experimental_user before (_compat.user_info); AppTest's default
    # user has an email in every version, so two sessions of it share persisted state.
    def app(url: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.configure(store=url, identity="user", persist=["visits"])
        st.session_state["visits"] = ss.increment("visits")

    url = f"sqlite:///{tmp_path / 'state.db'}"
    for expected in (1, 2):
        at = AppTest.from_function(app, kwargs={"url": url}, default_timeout=30).run()
        assert not at.exception, [e.message for e in at.exception]
        assert at.session_state["visits"] == expected
