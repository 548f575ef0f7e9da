"""Every use of Streamlit internals, fenced in one module.

Streamlit's documented API has no way to name the calling session, to reach a
session's state from a worker thread, or to ask whether a session has ended.
Each internal used for that is wrapped here with a note on why and since which
version it has been checked. ``verify()`` runs at ``import safestate`` and fails
loudly, naming the missing piece, when a Streamlit upgrade moves one of them.
Checked against every Streamlit minor from 1.40 to 1.67: where an internal moved, the
constants below name the first version with the new form, and ``verify()`` checks the form the
running version should have.

The session state object ``current_run`` hands out is used elsewhere only through
its mapping protocol (get, set and delete an item), which ``verify()`` checks too.
"""

from __future__ import annotations

import dis
import functools
import importlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import streamlit
from packaging.version import Version

from . import _events
from .errors import StreamlitCompatibilityError

try:
    # Why: the script thread carries its ScriptRunContext as an attribute; this is
    # how Streamlit itself finds the calling session (st.session_state, st.context).
    # Location since 1.37 (streamlit.runtime.scriptrunner_utils).
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
except ImportError as exc:  # pragma: no cover - only on a Streamlit that moved it
    raise StreamlitCompatibilityError(
        f"Streamlit {streamlit.__version__} moved an internal safestate uses: "
        "streamlit.runtime.scriptrunner_utils.script_run_context.get_script_run_ctx. "
        "safestate is tested with Streamlit 1.40 to 1.67.") from exc

if TYPE_CHECKING:
    from streamlit.runtime.state.session_state import SessionState

SessionStatus = Literal["active", "disconnected", "ended", "unknown"]

#: The running Streamlit's version, as it says.
STREAMLIT_VERSION: str = streamlit.__version__

#: The oldest Streamlit safestate supports, and the newest it was tested with.
OLDEST, NEWEST_TESTED = "1.40", "1.67"
#: The requirement that installs a Streamlit safestate was tested with.
SUPPORTED = (f"streamlit>={OLDEST},<{Version(NEWEST_TESTED).major}."
             f"{Version(NEWEST_TESTED).minor + 1}")
#: Where internals moved: the first version with the new form.
PARALLEL_FRAGMENTS = "1.58"  # st.fragment(parallel=True), ScriptRunContext._main_thread_ident
THREAD_STATE = "1.58"  # ThreadState.fragment_id; before, ScriptRunContext.current_fragment_id
CONTEXT_INFO = "1.43"  # ClientState.context_info (st.context's timezone and locale)
RESET_STATE_VALUE = "1.47"  # SessionState.reset_state_value
TOAST_DURATION = "1.49"  # st.toast(duration=)
CACHE_RESOURCE_SCOPE = "1.53"  # st.cache_resource(scope="session", on_release=)
WIDGET_ERROR = "1.63"  # StreamlitWidgetAlreadyInstantiatedError
STORAGE_LOCK = "1.67"  # WebsocketSessionManager._storage_lock, AppSession.has_fragment
HORIZONTAL = "1.48"  # st.container(horizontal=True)
ST_USER = "1.45"  # st.user; before, st.experimental_user
ST_LOGIN = "1.42"  # st.login, st.logout


def compare(running: str, version: str) -> bool:
    """Whether Streamlit ``running`` ("1.58.0rc1") is of minor ``version`` ("1.58") or newer."""
    return Version(version).release[:2] <= Version(running).release[:2]


def at_least(version: str) -> bool:
    """Whether the running Streamlit is of minor ``version`` ("1.50") or newer."""
    return compare(STREAMLIT_VERSION, version)

#: How long a worker's write waits for Streamlit's run lock before writing without it.
#: Streamlit holds that lock for microseconds to compact state at the start of a run,
#: but for as long as widget callbacks take after that; a callback waiting for the
#: worker must not deadlock with it, and after compaction the write is safe anyway.
RUN_LOCK_WAIT = 0.25
#: How many times ``snapshot`` reads a session's state that other threads keep changing
#: before its last, unguarded try (each try takes microseconds; a clash is rare).
SNAPSHOT_ATTEMPTS = 10


def current_run() -> tuple[str, SessionState] | None:
    """The calling thread's (session id, session state), or None outside a script run.

    ``ctx.session_state`` is the per-run ``SafeSessionState`` wrapper (since 1.15);
    its ``_state`` is the session's own ``SessionState`` that lives across runs.
    Writing through ``_state`` skips the wrapper's yield callback, so a rerun
    request cannot interrupt safestate half-way through a multi-key write.
    """
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None:
        return None
    return ctx.session_id, ctx.session_state._state


def current_label() -> str:
    """How logs name the calling thread's session (never raises, never the session id)."""
    try:
        run = current_run()
    except Exception:  # logging must not fail the call it reports on
        return "no session"
    return "no session" if run is None else "session " + _events.session_label(run[0])


def current_run_yielding() -> tuple[str, SessionState] | None:
    """``current_run()``, after letting Streamlit end the run if it was superseded.

    One context lookup for both (the write path's cost): see ``yield_point``.
    """
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None:
        return None
    wrapper = ctx.session_state
    wrapper._yield_callback()
    return ctx.session_id, wrapper._state


def yield_point() -> None:
    """Let Streamlit stop or rerun the calling script run here, as ``st.session_state`` does.

    Every ``st.session_state`` access calls the run's yield callback
    (``SafeSessionState._yield_callback``, since 1.15: ScriptRunner's
    ``_maybe_handle_execution_control_request``); it raises StopException or
    RerunException when the run has been superseded (a newer click with
    ``runner.fastReruns``, a stop). safestate writes past the wrapper, so it calls the
    callback itself: a superseded run then ends here instead of applying writes the
    user has moved past. A no-op outside a script run.
    """
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is not None:
        ctx.session_state._yield_callback()


def current_run_marker() -> object | None:
    """An object that is new for every script run, on the script's own thread; else None.

    Not the ScriptRunContext: Streamlit keeps one per script thread and resets it for
    each rerun on that thread (``st.rerun()``, a click during a run). ``reset()`` makes
    its ``cursors`` dict anew (since 1.0; a fragment run installs a copy of its own).
    Other threads that carry the context (parallel fragments, ``add_script_run_ctx``)
    get None: only the script thread may read query parameters under safestate's lock,
    since it is the thread that holds Streamlit's state lock through widget callbacks.
    See ``_on_script_thread``.
    """
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not _on_script_thread(ctx):
        return None
    return ctx.cursors


#: The name ScriptRunner gives the thread that runs the script (``ScriptRunner._run_script``).
SCRIPT_THREAD_NAME = "ScriptRunner.scriptThread"


def _on_script_thread(ctx: Any) -> bool:
    """Whether the calling thread is the script's own, not one that carries its context.

    ``ScriptRunContext._main_thread_ident`` (set by ``__post_init__``, since 1.58, when
    parallel fragments came). Before it the only other threads with a context were the
    user's own (``add_script_run_ctx``): tell the script thread by its name.
    """
    ident = getattr(ctx, "_main_thread_ident", None)
    if ident is not None:
        return bool(threading.get_ident() == ident)
    return threading.current_thread().name == SCRIPT_THREAD_NAME


def in_script_run() -> bool:
    """Whether the calling thread runs a script (or a fragment), as opposed to a worker."""
    return get_script_run_ctx(suppress_warning=True) is not None


def runtime_exists() -> bool:
    """Whether a Streamlit runtime was made in this process (``streamlit run`` or AppTest),
    as opposed to ``python app.py``. ``Runtime.exists()`` since 1.12."""
    from streamlit.runtime import Runtime

    return bool(Runtime.exists())


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
    if mgr.is_active_session(session_id):  # a plain dict read
        return "active"
    return "disconnected" if _is_stored(mgr, session_id) else "ended"


def _is_stored(mgr: Any, session_id: str) -> bool:
    """Whether the manager keeps ``session_id`` for a reconnect (a disconnected session).

    The storage (``WebsocketSessionManager._session_storage``, since 1.18) is a TTLCache
    whose reads reorder it. Since 1.67 Streamlit guards it with ``_storage_lock``: read it
    under that lock. Before, only the event loop touched it: peek without reordering
    (``MemorySessionStorage._cache``, a cachetools TTLCache whose ``in`` changes nothing).
    """
    storage = mgr._session_storage
    lock = getattr(mgr, "_storage_lock", None)
    if lock is not None:
        with lock:
            return storage.get(session_id) is not None
    cache = getattr(storage, "_cache", None)
    if cache is not None:
        return session_id in cache
    return storage.get(session_id) is not None  # a custom SessionStorage: its own locking


def _app_session(session_id: str) -> Any | None:
    """The live AppSession of ``session_id`` (``ActiveSessionInfo.session``), or None."""
    mgr = _runtime_session_manager()
    if mgr is None:
        return None
    info = mgr.get_active_session_info(session_id)
    return None if info is None else info.session


def _script_lock_for(session_id: str) -> threading.RLock | None:
    # AppSession._scriptrunner (since 1.0) -> ScriptRunner._session_state._lock: the
    # lock under which Streamlit compacts the session's state when a run starts.
    session = _app_session(session_id)
    if session is None:
        return None
    runner = session._scriptrunner
    return None if runner is None else runner._session_state._lock


class _RunLock:
    """Streamlit's lock of a session's current run, taken briefly around a worker's write."""

    __slots__ = ("_lock", "_session_id")

    def __init__(self, session_id: str) -> None:
        self._session_id = session_id
        self._lock: threading.RLock | None = None

    def __enter__(self) -> None:
        deadline = time.monotonic() + RUN_LOCK_WAIT
        while True:
            lock = _script_lock_for(self._session_id)
            if lock is None:
                return  # no run in progress: nothing to exclude
            if not lock.acquire(True, max(0.0, deadline - time.monotonic())):
                return  # held long: a callback, past compaction (see RUN_LOCK_WAIT)
            if _script_lock_for(self._session_id) is lock:
                self._lock = lock
                return
            lock.release()  # a new run started meanwhile: take its lock instead

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class WorkerStateView:
    """A session's state as seen from a thread with no script context.

    ``SessionState.__setitem__`` asks for the thread's script context to refuse
    writes to widgets drawn in the current run, and logs a warning on every call
    when there is none; a worker writes the way Streamlit's own
    ``reset_state_value`` does instead. Each write holds the current run's lock
    (see ``_RunLock``), and also lands in ``_old_state`` so that a compaction
    that copied the key just before the write cannot drop it.
    """

    __slots__ = ("_session_id", "_state")

    def __init__(self, session_id: str, state: SessionState) -> None:
        self._session_id = session_id
        self._state = state

    def __getitem__(self, key: str) -> Any:
        return self._state[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with _RunLock(self._session_id):
            _set_unchecked(self._state, key, value)
            self._state._old_state[key] = value

    def __delitem__(self, key: str) -> None:
        with _RunLock(self._session_id):
            del self._state[key]

    @property
    def filtered_state(self) -> dict[str, Any]:
        return self._state.filtered_state


def _set_unchecked(state: SessionState, key: str, value: Any) -> None:
    """Write ``key`` without the check that needs the writing thread's script context.

    ``SessionState.reset_state_value`` since 1.47 (a write to ``_new_session_state``);
    before it, that dict itself (since 1.0).
    """
    reset = getattr(state, "reset_state_value", None)
    if reset is not None:
        reset(key, value)
    else:
        state._new_session_state[key] = value


def snapshot(state: Any) -> dict[str, Any]:
    """The user-visible keys and values of a session's state (widgets with keys included).

    ``SessionState.filtered_state`` (since 1.0) iterates Streamlit's dicts, which
    another thread of the session may change meanwhile; try again if it does.
    """
    if isinstance(state, dict):
        return dict(state)
    for _ in range(SNAPSHOT_ATTEMPTS):
        try:
            return dict(state.filtered_state)
        except RuntimeError:  # "dictionary changed size during iteration"
            continue
    return dict(state.filtered_state)


def widget_already_drawn(exc: BaseException) -> bool:
    """Whether Streamlit refused a state write because the key's widget was drawn in this run.

    ``StreamlitWidgetAlreadyInstantiatedError`` since 1.63; before, a plain
    ``StreamlitAPIException`` saying the key "cannot be modified after the widget" is
    instantiated (``SessionState._set_key_with_widget_check``, since 1.0).
    """
    import streamlit.errors

    named = getattr(streamlit.errors, "StreamlitWidgetAlreadyInstantiatedError", None)
    if named is not None:
        return isinstance(exc, named)
    return "cannot be modified after the widget" in str(exc)


def user_info() -> Any:
    """The logged-in user's info (a read-only mapping): ``st.user`` since 1.45, before it
    ``st.experimental_user`` (the same object under its earlier name)."""
    import streamlit as st

    return st.user if at_least(ST_USER) else getattr(st, "experimental_user")  # noqa: B009


def secrets_section(name: str) -> Any:
    """``st.secrets[name]``, or None when there is no secrets file or no such section.

    ``Secrets.load_if_toml_exists`` (1.40 to 1.67) first: without a secrets file, reading
    ``st.secrets`` drew a "No secrets found" error on the page before 1.44.
    """
    import streamlit as st

    if not st.secrets.load_if_toml_exists():
        return None
    return st.secrets.get(name)


def button_row() -> Any:
    """A container that lays buttons side by side (``horizontal=True``, since 1.48); before
    that, one under the other."""
    import streamlit as st

    return st.container(horizontal=True) if at_least(HORIZONTAL) else st.container()


def toast(text: str, icon: str) -> None:
    """``st.toast`` that stays up for long where it can (``duration=``, since 1.49)."""
    import streamlit as st

    if at_least(TOAST_DURATION):
        st.toast(text, icon=icon, duration="long")
    else:
        st.toast(text, icon=icon)


def show_developer_notes() -> bool:
    """Whether the page may carry notes meant for the app's developer.

    True in development mode, or while ``client.showErrorDetails`` shows full errors
    (its default): the setting a deployment turns down to hide details from visitors.
    """
    import streamlit as st

    if st.get_option("global.developmentMode"):
        return True
    return st.get_option("client.showErrorDetails") in ("full", True, "true", "True")


def verify() -> None:
    """Check that every internal used above is where safestate expects it, in the form the
    running Streamlit should have.

    Raises StreamlitCompatibilityError naming what moved (a probe that raises counts as moved).
    """

    def need(what: str, check: Callable[[], object]) -> None:
        try:
            ok = bool(check())
        except Exception:  # a lookup that fails (KeyError, AttributeError, ImportError...)
            ok = False
        if not ok:
            raise StreamlitCompatibilityError(
                f"Streamlit {STREAMLIT_VERSION} moved an internal safestate uses: "
                f"{what}. safestate is tested with Streamlit {OLDEST} to {NEWEST_TESTED}: "
                f"install one of those (pip install '{SUPPORTED}') or a safestate "
                "release that supports this Streamlit."
            )

    def module(name: str) -> Any:
        return importlib.import_module(name)

    def assigns(cls: Callable[[], Any], attr: str) -> Callable[[], bool]:
        return lambda: attr in vars(cls())["__init__"].__code__.co_names

    def fields(cls: Callable[[], Any], *names: str) -> Callable[[], bool]:
        return lambda: all(n in cls().__dataclass_fields__ for n in names)

    runtime = "streamlit.runtime"
    def session_state() -> Any:
        return module(f"{runtime}.state.session_state").SessionState

    def safe_state() -> Any:
        return module(f"{runtime}.state.safe_session_state").SafeSessionState

    def runtime_class() -> Any:
        return module(runtime).Runtime

    def manager() -> Any:
        return module(f"{runtime}.websocket_session_manager").WebsocketSessionManager

    def app_session() -> Any:
        return module(f"{runtime}.app_session").AppSession

    def runner() -> Any:
        return module(f"{runtime}.scriptrunner").ScriptRunner

    def context() -> Any:
        return module(f"{runtime}.scriptrunner_utils.script_run_context").ScriptRunContext

    def client_state() -> Any:
        return module("streamlit.proto.ClientState_pb2").ClientState

    def wrapper() -> Any:
        return safe_state()(session_state()(), lambda: None)

    def has(cls: Callable[[], Any], name: str) -> bool:
        return hasattr(cls(), name)

    def instance_dict(name: str) -> bool:
        return isinstance(getattr(session_state()(), name), dict)

    def proto_field(name: str) -> bool:
        return name in client_state().DESCRIPTOR.fields_by_name

    need("SafeSessionState._state", lambda: isinstance(wrapper()._state, session_state()))
    need("SafeSessionState._lock", lambda: type(wrapper()._lock) is type(threading.RLock()))
    need("SafeSessionState._yield_callback", lambda: callable(wrapper()._yield_callback))
    for name in ("__getitem__", "__setitem__", "__delitem__", "filtered_state"):
        need(f"SessionState.{name}", functools.partial(has, session_state, name))
    # An instance, not the class: SessionState is a dataclass with __slots__ in some versions
    # and without them in others (1.50), so its fields are not always class attributes.
    for name in ("_old_state", "_new_session_state"):
        need(f"SessionState.{name}", functools.partial(instance_dict, name))
    need("Runtime.exists", lambda: callable(runtime_class().exists))
    need("Runtime.instance", lambda: callable(runtime_class().instance))
    need("Runtime._session_mgr", assigns(runtime_class, "_session_mgr"))
    for name in ("is_active_session", "get_active_session_info", "list_active_sessions"):
        need(f"SessionManager.{name}", functools.partial(has, manager, name))
    need("WebsocketSessionManager._session_storage", assigns(manager, "_session_storage"))
    if at_least(STORAGE_LOCK):
        need("WebsocketSessionManager._storage_lock", assigns(manager, "_storage_lock"))
        need("AppSession.has_fragment", lambda: callable(app_session().has_fragment))
    else:
        need("MemorySessionStorage._cache", assigns(
            lambda: module(f"{runtime}.memory_session_storage").MemorySessionStorage, "_cache"))
        need("AppSession._fragment_storage", assigns(app_session, "_fragment_storage"))
        need("MemoryFragmentStorage.contains",
             lambda: callable(module(f"{runtime}.fragment").MemoryFragmentStorage.contains))
    need("ActiveSessionInfo.session", lambda: "session" in module(
        f"{runtime}.session_manager").ActiveSessionInfo.__annotations__)
    need("AppSession._scriptrunner", assigns(app_session, "_scriptrunner"))
    need("AppSession._client_state", assigns(app_session, "_client_state"))
    need("AppSession._event_loop", assigns(app_session, "_event_loop"))
    need("AppSession.request_rerun", lambda: callable(app_session().request_rerun))
    need("ScriptRunner._session_state", assigns(runner, "_session_state"))
    need("ScriptRunner._requests", assigns(runner, "_requests"))
    need("ScriptRunContext.reset making cursors anew", lambda: ("STORE_ATTR", "cursors") in {
        (i.opname, i.argval) for i in dis.get_instructions(vars(context())["reset"])})
    need("ScriptRunContext.fragment_ids_this_run", fields(context, "fragment_ids_this_run"))
    need("ScriptRunContext.script_requests", fields(context, "script_requests"))
    wanted = ["query_string", "page_script_hash", "page_name", "fragment_id", "is_auto_rerun"]
    for name in wanted + (["context_info"] if at_least(CONTEXT_INFO) else []):
        need(f"ClientState.{name}", functools.partial(proto_field, name))
    if at_least(THREAD_STATE):
        scripts = f"{runtime}.scriptrunner_utils.script_run_context"
        need("ThreadState.get (the running fragment's id)",
             lambda: callable(module(scripts).ThreadState.get))
        need("FragmentThreadState.fragment_id",
             lambda: "fragment_id" in module(scripts).FragmentThreadState.__dataclass_fields__)
    else:
        need("ScriptRunContext.current_fragment_id", fields(context, "current_fragment_id"))
    if at_least(PARALLEL_FRAGMENTS):
        need("ScriptRunContext._main_thread_ident", lambda: "_main_thread_ident" in vars(
            context())["__post_init__"].__code__.co_names)
    else:
        need("the script thread's name", lambda: SCRIPT_THREAD_NAME in (
            runner().start.__code__.co_consts + runner()._run_script_thread.__code__.co_consts))
    need("st.secrets.load_if_toml_exists", lambda: callable(
        module("streamlit").secrets.load_if_toml_exists))
    if not at_least(ST_USER):
        need("st.experimental_user", lambda: hasattr(module("streamlit"), "experimental_user"))


# -- live updates: what a read was part of, and asking a session to rerun ----------------------
def watch_point() -> tuple[str, object | None, bool, str | None, object] | None:
    """(session id, run, full run, fragment id, runner) of the calling read or write.

    ``run`` is the run's ``cursors`` (new for every run, a fragment-only one too: see
    ``current_run_marker``) on the script's own thread, else None. ``full`` says whether it
    is a whole-page run: ``fragment_ids_this_run`` is set by ``reset()`` for a fragment-only
    run (since 1.37). The fragment id is the running fragment's (``ThreadState.fragment_id``,
    since 1.58; ``ctx.current_fragment_id`` before it), None in the script's body. The
    runner is the run's ``ctx.script_requests``, one per ScriptRunner (since 1.37): with
    ``runner.fastReruns`` every full rerun gets a new one. None outside a script run.
    """
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None:
        return None
    run = ctx.cursors if _on_script_thread(ctx) else None
    return (ctx.session_id, run, not ctx.fragment_ids_this_run, _fragment_id(ctx),
            ctx.script_requests)


def _fragment_id(ctx: Any) -> str | None:
    thread_state = _thread_state()
    if thread_state is not None:
        try:
            return thread_state.get().fragment_id  # type: ignore[no-any-return]
        except RuntimeError:  # a thread the context was not set up on: not in a fragment
            return None
    return getattr(ctx, "current_fragment_id", None) or None


def _thread_state() -> Any:
    try:
        from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState
    except ImportError:  # before 1.58 the fragment id was on the context
        return None
    return ThreadState


#: What ``request_rerun`` passes to ``sent`` while the rerun is being requested.
RUN_STARTING = object()


def request_rerun(session_id: str, fragment_id: str | None = None,
                  busy: Callable[[], None] | None = None,
                  sent: Callable[[object | None], None] | None = None) -> bool:
    """Ask a live session to rerun (only ``fragment_id`` if given and still there).

    Like Streamlit's own rerun on a source change (``AppSession._on_source_file_changed``
    calls ``request_rerun(self._client_state)``), but without the widget states: the
    session keeps its current widget values and no button fires again. The page and
    query string are the session's last (``AppSession._client_state``, set at the end of
    every run, since 1.18). The request is made on the session's event loop
    (``AppSession._event_loop``), where the browser's own rerun requests are handled: if a
    run has started by then (a click), it is not cut short; ``busy`` is called instead.
    Otherwise ``sent`` gets ``RUN_STARTING`` just before the request, then the runner that
    will run it (``ScriptRunner._requests``, what ``watch_point`` reports in that run), or
    None if no run started. Returns False when the session is gone or not
    served here.
    """
    session = _app_session(session_id)
    if session is None:
        return False

    def on_loop() -> None:
        if session._scriptrunner is not None:
            if busy is not None:
                busy()
            return
        from streamlit.proto.ClientState_pb2 import ClientState

        last = session._client_state
        client_state = ClientState(query_string=last.query_string,
                                   page_script_hash=last.page_script_hash,
                                   page_name=last.page_name)
        if _HAS_CONTEXT_INFO and last.HasField("context_info"):
            client_state.context_info.CopyFrom(last.context_info)
        if fragment_id and _has_fragment(session, fragment_id):
            client_state.fragment_id = fragment_id
            # As run_every's reruns: a fragment a full run has just dropped is skipped quietly.
            client_state.is_auto_rerun = True
        if sent is not None:
            # The run may start writing before request_rerun returns; no click can start a
            # run in between (clicks are handled on this loop too).
            sent(RUN_STARTING)
        runner = None
        try:
            session.request_rerun(client_state)
            runner = session._scriptrunner
        finally:
            if sent is not None:  # never left at RUN_STARTING: a click's writes are no echo
                sent(None if runner is None else runner._requests)

    try:
        session._event_loop.call_soon_threadsafe(on_loop)
    except RuntimeError:  # the loop is closed: the server is stopping
        return False
    return True


def _client_state_has(field: str) -> bool:
    from streamlit.proto.ClientState_pb2 import ClientState

    return field in ClientState.DESCRIPTOR.fields_by_name


#: ``ClientState.context_info`` (the browser's timezone and locale for ``st.context``), since
#: 1.43; a rerun request before it carries none.
_HAS_CONTEXT_INFO = _client_state_has("context_info")


def _has_fragment(session: Any, fragment_id: str) -> bool:
    """Whether the session still holds the fragment: ``AppSession.has_fragment`` (since
    1.67), before it ``AppSession._fragment_storage.contains`` (since 1.37)."""
    has = getattr(session, "has_fragment", None)
    if has is not None:
        return bool(has(fragment_id))
    return bool(session._fragment_storage.contains(fragment_id))


def any_session_running() -> bool:
    """Whether any session of this process is running a script now (a live rerun waits for
    it). ``SessionManager.list_active_sessions`` and ``AppSession._scriptrunner`` (since 1.18)."""
    mgr = _runtime_session_manager()
    if mgr is None:
        return False
    return any(info.session._scriptrunner is not None for info in mgr.list_active_sessions())


def session_running(session_id: str) -> bool:
    """Whether a script run of the session is under way now (a live rerun then waits for it:
    interrupting a click's run would drop the click). ``AppSession._scriptrunner`` is set
    for the length of a run (since 1.18)."""
    session = _app_session(session_id)
    return session is not None and session._scriptrunner is not None
