"""Every use of Streamlit internals, fenced in one module.

Streamlit's documented API has no way to name the calling session, to reach a
session's state from a worker thread, or to ask whether a session has ended.
Each internal used for that is wrapped here with a note on why and since which
version it has been checked. ``verify()`` is run by the test suite and fails
loudly, naming the missing piece, when a Streamlit upgrade moves one of them.
Checked against Streamlit 1.67.0.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal

# Why: the script thread carries its ScriptRunContext as an attribute; this is
# how Streamlit itself finds the calling session (st.session_state, st.context).
# Location since 1.37 (streamlit.runtime.scriptrunner_utils).
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from .errors import StreamlitCompatibilityError

if TYPE_CHECKING:
    from streamlit.runtime.state.session_state import SessionState

SessionStatus = Literal["active", "disconnected", "ended", "unknown"]


def current_run() -> tuple[str, SessionState, threading.RLock] | None:
    """The calling thread's (session id, session state, run lock), or None.

    ``ctx.session_state`` is the per-run ``SafeSessionState`` wrapper (since 1.15);
    its ``_state`` is the session's own ``SessionState`` that lives across runs, and
    its ``_lock`` is the lock Streamlit takes around its own state changes in this
    run. Writing through ``_state`` skips the wrapper's yield callback, so a rerun
    request cannot interrupt safestate half-way through a multi-key write.
    """
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None:
        return None
    wrapper: Any = ctx.session_state
    return ctx.session_id, wrapper._state, wrapper._lock


def _runtime_session_manager() -> Any | None:
    # Why: Runtime's session manager is the only record of which sessions are
    # alive. Runtime.exists()/instance() since 1.12; _session_mgr since 1.18.
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return None
    # AppTest installs a Mock(spec=Runtime) that has no real session manager.
    return vars(Runtime.instance()).get("_session_mgr")


def session_status(session_id: str) -> SessionStatus:
    """Whether the runtime still knows a session.

    "disconnected" sessions (browser gone, within ``server.disconnectedSessionTTL``)
    can reconnect and must keep their lock. "unknown" means no runtime answers
    (AppTest, bare mode): liveness cannot be told.
    """
    mgr = _runtime_session_manager()
    if mgr is None:
        return "unknown"
    info = mgr.get_session_info(session_id)
    if info is None:
        return "ended"
    # SessionInfo/ActiveSessionInfo (since 1.12): a client is attached while connected.
    return "active" if getattr(info, "client", None) is not None else "disconnected"


def script_lock_for(session_id: str) -> threading.RLock | None:
    """The lock of the session's current script run, for writes from worker threads.

    Streamlit compacts a session's state at the start of each run under that run's
    ``SafeSessionState._lock``; a write from another thread in the middle of it can
    be lost. AppSession._scriptrunner (since 1.0) -> ScriptRunner._session_state.
    """
    mgr = _runtime_session_manager()
    if mgr is None:
        return None
    info = mgr.get_session_info(session_id)
    runner = getattr(getattr(info, "session", None), "_scriptrunner", None)
    wrapper = getattr(runner, "_session_state", None)
    lock = getattr(wrapper, "_lock", None)
    return lock if lock is not None else None


def verify() -> None:
    """Check that every internal used above is where safestate expects it.

    Raises StreamlitCompatibilityError naming what moved.
    """
    import streamlit
    from streamlit.runtime import Runtime
    from streamlit.runtime.app_session import AppSession
    from streamlit.runtime.scriptrunner import ScriptRunner
    from streamlit.runtime.session_manager import SessionInfo
    from streamlit.runtime.state.safe_session_state import SafeSessionState
    from streamlit.runtime.state.session_state import SessionState
    from streamlit.runtime.websocket_session_manager import WebsocketSessionManager

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise StreamlitCompatibilityError(
                f"Streamlit {streamlit.__version__} moved an internal safestate uses: "
                f"{what}. Pin streamlit to a version safestate supports, or update "
                "safestate/_compat.py."
            )

    wrapper = SafeSessionState(SessionState(), lambda: None)
    need(isinstance(getattr(wrapper, "_state", None), SessionState), "SafeSessionState._state")
    need(type(getattr(wrapper, "_lock", None)) is type(threading.RLock()), "SafeSessionState._lock")
    used = ("__getitem__", "__setitem__", "__delitem__", "filtered_state", "reset_state_value")
    for name in used:
        need(hasattr(SessionState, name), f"SessionState.{name}")
    need(callable(getattr(Runtime, "exists", None)), "Runtime.exists")
    need(callable(getattr(Runtime, "instance", None)), "Runtime.instance")
    need("_session_mgr" in Runtime.__init__.__code__.co_names, "Runtime._session_mgr")
    need("client" in SessionInfo.__annotations__, "SessionInfo.client")
    need(hasattr(WebsocketSessionManager, "get_session_info"), "SessionManager.get_session_info")
    need("_scriptrunner" in AppSession.__init__.__code__.co_names, "AppSession._scriptrunner")
    need("_session_state" in ScriptRunner.__init__.__code__.co_names, "ScriptRunner._session_state")


class WorkerStateView:
    """A session's state as seen from a thread with no script context.

    ``SessionState.__setitem__`` asks for the thread's script context to refuse
    writes to widgets drawn in the current run, and logs a warning on every call
    when there is none. A worker has no run, so it writes the way Streamlit's own
    ``reset_state_value`` does (same dict, no context lookup).
    """

    __slots__ = ("_state",)

    def __init__(self, state: SessionState) -> None:
        self._state = state

    def __getitem__(self, key: str) -> Any:
        return self._state[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._state.reset_state_value(key, value)

    def __delitem__(self, key: str) -> None:
        del self._state[key]

    @property
    def filtered_state(self) -> dict[str, Any]:
        return self._state.filtered_state
