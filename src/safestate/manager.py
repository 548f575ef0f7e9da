"""The session state manager: safe_* operations on the calling Streamlit session."""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any, TypeVar

from . import _compat, _events, widgets
from ._backends import BackendSlot, in_memory
from ._events import session_label
from ._keys import MISSING, check_key
from ._locks import LockRegistry, ScopeLock
from ._record import SessionRecord
from ._scope import Scope
from .errors import InvalidArgumentError, NoSessionError
from .live import LiveUpdates
from .schema import SchemaRegistry
from .session_end import SessionEndHooks
from .shared_state import SharedState
from .storage import LocalStorage

if TYPE_CHECKING:
    from .storage import Storage

#: Seconds between two sweeps that free the bookkeeping of ended sessions.
SWEEP_INTERVAL = 10.0

H = TypeVar("H", bound="Callable[[SessionHandle], object]")


def new_record(session_id: str, state: object) -> SessionRecord:
    """A session's record, with its state as storage for the script's thread."""
    return SessionRecord(session_id, state, LocalStorage(state))


class SessionHandle(Scope):
    """One session's state, usable from any thread (a worker started by the script).

    Take it in the script with ``session_manager.current()``; its safe_* methods
    then work from threads that have no Streamlit context. It keeps the session's
    state object alive while it exists.
    """

    def __init__(self, manager: SessionStateManager, session_id: str, state: Any) -> None:
        self._manager = manager
        self._state = state
        self.schema = manager.schema
        self.session_id = session_id

    def _enter(self, op: str, timeout: float | None = None) -> tuple[ScopeLock, Storage]:
        return self._manager.enter_session(self.session_id, self._state, op, timeout,
                                           worker=True)

    def is_alive(self) -> bool:
        """False once Streamlit has ended the session (its user is gone for good)."""
        return _compat.session_status(self.session_id) != "ended"

    def __repr__(self) -> str:
        return f"<SessionHandle {session_label(self.session_id)}>"


def no_session(op: str, script_only: bool = False) -> NoSessionError:
    """The error of ``op`` called with no session: in a worker thread of a running app, or
    in a process that runs no Streamlit at all (``python app.py``)."""
    return NoSessionError(op, script_only=script_only, no_server=not _compat.runtime_exists())


class SessionStateManager(Scope):
    """Thread-safe access to the calling session's ``st.session_state``.

    Values live in the session's own ``st.session_state``, so widgets with ``key=``
    and plain ``st.session_state`` code keep working beside it. Each session has
    its own re-entrant lock, keyed by session id; a session's bookkeeping is freed
    once Streamlit has ended the session.
    """

    schema: SchemaRegistry

    def __init__(
        self,
        shared: SharedState | None = None,
        backends: BackendSlot | None = None,
        schema: SchemaRegistry | None = None,
        *,
        registry: LockRegistry | None = None,
        on_first_call: Callable[[], None] | None = None,
        sweep_interval: float = SWEEP_INTERVAL,
        session_end: SessionEndHooks[SessionHandle] | None = None,
        live: LiveUpdates | None = None,
    ) -> None:
        """``safestate.app.build_app()`` passes the app's pieces. Without them, a manager of
        its own: its own locks, declared keys and shared state, nothing persisted, over the
        calling session's ``st.session_state`` (the app's manager is ``safestate.session_manager``).
        """
        if backends is None:
            backends = BackendSlot(in_memory)
        #: The app-wide state shared by every session (the app's one ``shared``).
        self.shared = shared if shared is not None else SharedState(backends)
        #: Declared (typed) keys: writes to them are validated.
        self.schema = schema if schema is not None else SchemaRegistry()
        self._backends = backends
        self._registry = registry if registry is not None else LockRegistry(
            make_record=new_record)
        self._on_first_call = on_first_call
        self._sweeping = threading.Lock()
        #: Seconds between the sweeper's rounds; a change applies from its next round.
        self.sweep_interval = sweep_interval
        #: What runs once when Streamlit ends a session (``on_session_end``).
        self.session_end: SessionEndHooks[SessionHandle] = (
            session_end if session_end is not None else SessionEndHooks())
        self._live = live  # its reads of ended sessions are dropped by the sweeper
        self._sweeper: threading.Thread | None = None
        self._closed = threading.Event()

    # -- finding the session ------------------------------------------------------------
    def _enter(self, op: str, timeout: float | None = None) -> tuple[ScopeLock, Storage]:
        run = _compat.current_run_yielding()  # a superseded run ends here, as at st.*
        if run is None:
            raise no_session(op)
        return self.enter_session(run[0], run[1], op, timeout)

    def enter(self, op: str, *, script_only: bool = False) -> tuple[ScopeLock, Storage]:
        """Take the calling session's lock; return it (its ``with`` block lets go) and its
        storage. ``script_only``: ``op`` draws on or checks the page, so a worker may not call
        it. Raises NoSessionError naming ``op``, and as ``enter_session``.
        """
        if script_only:
            self.script_state(op)
        return self._enter(op)

    @staticmethod
    def script_state(op: str) -> Any:
        """The calling script run's session state object. Raises NoSessionError naming ``op``."""
        run = _compat.current_run()
        if run is None:
            raise no_session(op, script_only=True)
        return run[1]

    def enter_session(
        self, session_id: str, state: Any, op: str, timeout: float | None = None,
        worker: bool = False,
    ) -> tuple[ScopeLock, Storage]:
        """Take a session's lock; return it (its ``with`` block lets go) and the storage
        the call works on. ``worker``: the caller is a thread without a script run.

        Raises LockTimeoutError, StoreUnavailable (the session's state cannot be loaded).
        """
        registry = self._registry
        if registry.get(session_id) is None:  # a session's first call: the cold path
            self._first_call()
        lock = registry.locked(session_id, state, timeout,
                               None if worker else _compat.yield_point)
        record = lock.record
        assert record is not None  # made with the entry; gone only once it is dead
        try:
            if worker and record.worker is None:  # a worker's first call (under the lock)
                record.worker = LocalStorage(_compat.WorkerStateView(session_id, state))
            sessions = (self._backends.current or self._backends.get()).sessions
            if sessions is None:  # nothing persisted: the session's own memory
                local = record.worker if worker else record.local
                assert local is not None  # made with the record (new_record)
                return lock, local
            return lock, sessions.session_view(record, worker)
        except BaseException:
            lock.release()  # the lock is the caller's only once this returns
            raise

    def safe_get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` in this session, or ``default`` when it is not set.

        Raises InvalidKeyError/EmptyKeyError for a bad key, NoSessionError outside a session.
        """
        # Hot path, written out: a read takes only the session lock (not Streamlit's).
        if type(key) is not str or not key:
            check_key(key)
        run = _compat.current_run()
        if run is None:
            raise no_session("safe_get")
        registry = self._registry
        backends = self._backends.current
        if backends is None or backends.sessions is not None or registry.get(run[0]) is None:
            # Persisted state loads on a read; a session's first call applies the
            # deployment's settings (a page's first call is often a read).
            return Scope.safe_get(self, key, default)
        with registry.locked(run[0], run[1]) as lock:
            lock.ops += 1
            try:
                return run[1][key]
            except KeyError:
                return default

    def safe_set(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` in this session.

        Raises StateValidationError if ``key`` is declared with another type,
        InvalidKeyError/EmptyKeyError for a bad key, NoSessionError outside a session.
        """
        # Hot path, written out, as safe_get: a session kept in memory only.
        if type(key) is not str or not key:
            check_key(key)
        backends = self._backends.current
        if backends is None or backends.sessions is not None:
            return Scope.safe_set(self, key, value)
        if self.schema.fields:
            value = self.schema.check(key, value)
        run = _compat.current_run_yielding()  # a superseded run ends here, as at st.*
        if run is None:
            raise no_session("safe_set")
        registry = self._registry
        if registry.get(run[0]) is None:  # a session's first call: the cold path
            self._first_call()
        with registry.locked(run[0], run[1], None, _compat.yield_point) as lock:
            lock.ops += 1
            run[1][key] = value
        return None

    def safe_exists(self, key: str) -> bool:
        """Whether ``key`` is set in this session. Raises as safe_get."""
        return self.safe_get(key, MISSING) is not MISSING

    def record_of(self, state: Any) -> SessionRecord | None:
        """The record of the session whose state object is ``state`` (None if untracked)."""
        run = _compat.current_run()
        if run is not None and run[1] is state:
            entry = self._registry.get(run[0])
            return None if entry is None else entry.record
        for entry in self._registry.entries():
            record = entry.record
            if record is not None and record.state is state:
                return record
        return None

    def records(self) -> list[SessionRecord]:
        """A snapshot of every tracked session's record (for app-wide health reports)."""
        return [r for r in (e.record for e in self._registry.entries()) if r is not None]

    @staticmethod
    def in_session() -> bool:
        """Whether the calling thread runs a script of a session (not a worker)."""
        return _compat.current_run() is not None

    def session_id(self) -> str:
        """The Streamlit session id of the caller. Raises NoSessionError outside a session."""
        run = _compat.current_run()
        if run is None:
            raise no_session("session_id")
        return run[0]

    def session_label(self) -> str:
        """A short name for the caller's session that does not reveal its id (ids resume
        sessions); the same label monitors show. Raises NoSessionError outside a session."""
        return session_label(self.session_id())

    def _get_session_id(self) -> str:
        """The design's name for :meth:`session_id`."""
        return self.session_id()

    def current(self) -> SessionHandle:
        """A handle on the calling session for worker threads. Raises NoSessionError outside one."""
        run = _compat.current_run()
        if run is None:
            raise no_session("current")
        return SessionHandle(self, run[0], run[1])

    def start_thread(
        self,
        target: Callable[..., Any],
        *args: Any,
        name: str | None = None,
        daemon: bool = True,
        **kwargs: Any,
    ) -> threading.Thread:
        """Start ``target(handle, *args, **kwargs)`` in a thread with a handle on this session.

        Raises TypeError if ``target`` is not callable, NoSessionError outside a session.
        """
        if not callable(target):
            raise InvalidArgumentError(
                f"start_thread needs a callable target, got {type(target).__name__}")
        handle = self.current()
        thread = threading.Thread(
            target=target, args=(handle, *args), kwargs=kwargs, name=name, daemon=daemon
        )
        thread.start()
        return thread

    # -- lifecycle -----------------------------------------------------------------------
    def _first_call(self) -> None:
        """A session's first call: apply the deployment's settings, keep ended ones swept."""
        if self._on_first_call is not None:
            self._on_first_call()
        if self._sweeper is None and not self._closed.is_set():
            self._start_sweeper()
        if monotonic() - self._registry.last_sweep >= self.sweep_interval:
            self._sweep()

    def _start_sweeper(self) -> None:
        with self._sweeping:
            if self._sweeper is not None:
                return
            # Without it, ended sessions would be freed only when another one arrives.
            # It holds the manager weakly: a manager nobody uses any more goes, sweeper too.
            self._sweeper = threading.Thread(
                target=self._sweep_while_alive, args=(weakref.ref(self), self._closed),
                name="safestate-sweeper", daemon=True)
            self._sweeper.start()

    @staticmethod
    def _sweep_while_alive(ref: weakref.ref[SessionStateManager], closed: threading.Event,
                           ) -> None:
        """Free ended sessions every ``sweep_interval`` seconds (ending them first: their
        hooks run here), until ``close()`` or until the manager is gone."""
        while True:
            manager = ref()
            if manager is None:
                return
            interval = manager.sweep_interval
            if len(manager._registry) or manager.session_end.has_evicted():
                try:
                    manager._sweep(end_sessions=True)
                    if manager._live is not None:
                        manager._live.prune(lambda sid: _compat.session_status(sid) == "ended")
                except Exception:  # the next round tries again; the app must not notice
                    _events.log.exception("safestate: sweeping ended sessions failed")
            del manager  # between rounds the manager may go away
            if closed.wait(interval):
                return

    def close(self) -> None:
        """Stop the sweeper thread (an app being replaced, as in tests)."""
        self._closed.set()
        sweeper = self._sweeper
        if sweeper is not None and sweeper is not threading.current_thread():
            sweeper.join()

    def _sweep(self, end_sessions: bool = False) -> int:
        """Free the bookkeeping of sessions Streamlit has ended; return how many were freed.

        With session end hooks registered, a session is freed only once its hooks have run,
        and they run only where ``end_sessions`` is set: on the sweeper thread, never in a
        script run's first call, which may hold a lock and draws on its own user's page.
        """
        hooks = self.session_end
        if not self._sweeping.acquire(False):
            return 0  # another thread is sweeping now
        try:
            if not hooks:
                return self._registry.sweep(lambda sid: _compat.session_status(sid) == "ended")
            # A held lock: a worker is still at it; the session ends once it lets go.
            ended = [e for e in self._registry.entries() if end_sessions and not e.held
                     and _compat.session_status(e.key) == "ended"]
        finally:
            self._sweeping.release()  # a hook may make a first call, which may sweep
        if end_sessions:
            for entry in ended:  # under no lock of safestate's: hooks may call anything
                record = entry.record
                if record is not None and not entry.dead:
                    # Still tracked, so its state object is too: the hook reads the last values.
                    hooks.end(entry.key, SessionHandle(self, entry.key, record.state))
            for sid, state in hooks.evicted_sessions():  # freed for idleness while alive
                if self._registry.get(sid) is None and _compat.session_status(sid) == "ended":
                    hooks.end(sid, SessionHandle(self, sid, state))
        return self._registry.sweep(
            lambda sid: hooks.is_ended(sid) and _compat.session_status(sid) == "ended")

    def on_session_end(self, fn: H) -> H:
        """Call ``fn(session)`` once when Streamlit ends a session; return ``fn`` (a decorator).

        ``session`` is a SessionHandle on the ended session: ``session.safe_get(key)`` reads
        its last values. It runs on safestate's sweeper thread, ``server.disconnectedSessionTTL``
        after the tab left plus up to ``sweep_interval``; never for a tab that came back in
        time. Registering again under the same ``module.qualname`` (every rerun does)
        replaces it; called in a session, it tracks that session. A hook that raises is logged
        and the others still run. Raises InvalidArgumentError (a TypeError) for a lambda or a
        non-callable.
        """
        self.session_end.add(fn)
        run = _compat.current_run()
        if run is not None and self._registry.get(run[0]) is None:
            # Hooks run for the sessions safestate tracks: a page that calls nothing else
            # but registers a hook must be tracked too.
            self._first_call()
            with self._registry.locked(run[0], run[1]):
                pass
        return fn

    def cleanup_old_sessions(self, max_sessions: int = 50, idle_seconds: float = 300.0) -> int:
        """Free the bookkeeping of ended sessions, then of idle ones while over ``max_sessions``.

        Only drops a session whose lock nobody holds or waits for; an idle live
        session that is dropped gets a fresh lock on its next call (its values stay
        in ``st.session_state``), and runs no session end hook until it ends. With hooks
        registered, an ended session is freed once they have run (by the sweeper thread).
        Returns how many were freed. Raises TypeError or
        ValueError for a bad ``max_sessions`` / ``idle_seconds``.
        """
        if isinstance(max_sessions, bool) or not isinstance(max_sessions, int):
            raise TypeError(f"max_sessions must be an int, got {type(max_sessions).__name__}")
        if max_sessions < 0:
            raise ValueError(f"max_sessions must be >= 0, got {max_sessions}")
        if isinstance(idle_seconds, bool) or not isinstance(idle_seconds, (int, float)):
            raise TypeError(f"idle_seconds must be a number, got {type(idle_seconds).__name__}")
        if math.isnan(idle_seconds) or idle_seconds < 0:
            raise ValueError(f"idle_seconds must be >= 0, got {idle_seconds!r}")
        freed = self._sweep()
        hooks = self.session_end
        excess = len(self._registry) - max_sessions
        if excess <= 0:
            return freed
        cutoff = monotonic() - idle_seconds
        idle = [e for e in self._registry.entries() if not e.held and e.last_used <= cutoff]
        idle.sort(key=lambda e: e.last_used)
        for entry in idle[:excess]:
            record = entry.record
            if self._registry.remove_if_free(entry.key):
                freed += 1
                if hooks and record is not None:  # alive: it ends later, and its hooks run then
                    hooks.evicted(entry.key, record.state)
        return freed

    def session_table(self) -> list[dict[str, Any]]:
        """One row per tracked session for monitoring pages: a short label (a hash, not the
        id), its status, operations, whether its lock is held and how long it has been idle."""
        now = monotonic()
        return [
            {
                "session": session_label(e.key),
                "status": _compat.session_status(e.key),
                "operations": e.ops,
                "lock_held": e.held,
                "idle_seconds": round(now - e.last_used, 1),
            }
            for e in self._registry.entries()
        ]

    def is_tracked(self, session_id: str) -> bool:
        """Whether safestate holds bookkeeping (a lock) for ``session_id`` now."""
        return self._registry.get(session_id) is not None

    def get_session_stats(self) -> dict[str, Any]:
        """Counts of sessions, locks, waits and operations.

        No session ids, keys or values: a session id lets a browser resume that
        session, so it is not shown to other users.

        Sweeps ended sessions first, so the figures are current.
        """
        self._sweep()
        return self.stats_now()

    def stats_now(self) -> dict[str, Any]:
        """get_session_stats() without sweeping (what metrics read: reading changes nothing)."""
        entries, cleaned, ops, waits, wait_ns = self._registry.totals()
        status = {"active": 0, "disconnected": 0, "ended": 0, "unknown": 0}
        for entry in entries:
            status[_compat.session_status(entry.key)] += 1
        return {
            "sessions_tracked": len(entries),
            "sessions_active": status["active"],
            "sessions_disconnected": status["disconnected"],
            "sessions_ended": status["ended"],
            "sessions_untold": status["unknown"],
            "sessions_cleaned": cleaned,
            "locks_held": sum(e.held for e in entries),
            "lock_waits": waits + sum(e.waits for e in entries),
            "lock_wait_seconds": (wait_ns + sum(e.wait_ns for e in entries)) / 1e9,
            "operations": ops + sum(e.ops for e in entries),
            "memory_per_session_bytes": self._registry.memory_per_entry(),
            "shared": self.shared.stats(),
        }

    # -- widgets -------------------------------------------------------------------------
    def bind(self, key: str, *, widget_key: str | None = None) -> dict[str, Any]:
        """Widget arguments (``key``, ``on_change``) that bind the widget to ``key``.

        ``st.text_input("Name", **session_manager.bind("name"))`` (see ``safestate.widgets``).
        Returns ``{"key": widget_key, "on_change": ...}``; ``widget_key`` defaults to
        ``key + "__widget"``. Before the widget is drawn, sets the widget key to ``key``'s
        value when they differ (an unset ``key`` leaves the widget to its own default); the
        widget's changes go back to ``key`` with ``safe_set`` (validated, persisted), and a
        value ``key`` refuses changes nothing and is shown above the widget on the next run.
        Pass neither ``value=``/``index=`` nor ``on_change=`` to the widget, and no widget
        inside ``st.form`` (Streamlit allows no callbacks there).

        Raises InvalidArgumentError when ``widget_key`` is ``key`` or is declared or
        persisted, WidgetBindingError when Streamlit refuses the
        widget key (its widget was already drawn in this run), NoSessionError outside a
        script run, and as safe_get.
        """
        sessions = (self._backends.current or self._backends.get()).sessions
        return widgets.bind(self, key, widget_key,
                            None if sessions is None else sessions.persists)
