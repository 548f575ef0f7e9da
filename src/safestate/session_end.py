"""Session end hooks: what runs once when Streamlit ends a session.

Streamlit ends a session when its tab has been gone for ``server.disconnectedSessionTTL``
(until then a reconnect resumes it) and tells nobody: the session just drops out of the
runtime's storage of disconnected sessions, a cache that expires entries when it is read.
safestate's sweeper already asks the runtime about every session it tracks each
``sweep_interval``; for each one it finds ended it calls ``end()`` here, on its own thread
and holding none of safestate's locks, before it frees the session's bookkeeping.

Hooks are the app's, keyed by ``module.qualname``: a script registers them on every
rerun, and each rerun's new function object replaces the last one. Cleanups are
safestate's own (dependency teardowns), held weakly, and run after the hooks, so a hook
can still use what they close.

A session's hooks run at most once. Ended ids are remembered for ``remember`` seconds
after their hooks ran: a worker thread that still uses an ended session through its
handle makes safestate track it again, and its next sweep must free it, not end it again.
A live session whose bookkeeping is freed for idleness (``cleanup_old_sessions``) has not
ended: no hook runs then, but its state is kept here (Streamlit holds it anyway while the
session lives) so that its hooks still run when it ends without having called again.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from time import monotonic
from typing import Any, Generic, TypeVar

from . import _events
from .errors import InvalidArgumentError

S = TypeVar("S")
F = TypeVar("F", bound=Callable[..., object])

#: Seconds an ended session's id is remembered after its hooks ran (see the module's notes).
REMEMBER_ENDED = 3600.0


def hook_name(fn: object) -> str:
    """How hooks are keyed and logged: ``module.qualname``.

    Raises InvalidArgumentError (a TypeError) for a non-callable or a lambda (every lambda
    of a module has the same name, so one would replace another).
    """
    qualname = getattr(fn, "__qualname__", None)
    if not callable(fn) or not isinstance(qualname, str) or "<lambda>" in qualname:
        raise InvalidArgumentError(
            f"on_session_end(fn): fn must be a function or method with a name (def), got "
            f"{'a lambda' if callable(fn) else type(fn).__name__}: reruns replace a hook by "
            "its module and name"
        )
    return f"{getattr(fn, '__module__', None) or ''}.{qualname}"


class SessionEndHooks(Generic[S]):
    """The functions to call once when a session ends, with the ended session (an ``S``)."""

    def __init__(self, remember: float = REMEMBER_ENDED) -> None:
        self._hooks: dict[str, Callable[[S], object]] = {}
        self._cleanups: list[weakref.WeakMethod[Callable[[S], object]]] = []
        # Session id -> when its hooks finished (None while they run), oldest first.
        self._ended: dict[str, float | None] = {}
        # Session id -> state object of live sessions freed for idleness (see the notes).
        self._evicted: dict[str, Any] = {}
        self._remember = remember
        self._guard = threading.Lock()

    def __bool__(self) -> bool:
        """Whether anything is registered (without, a sweep just frees ended sessions)."""
        return bool(self._hooks or self._cleanups)

    def add(self, fn: F) -> F:
        """Register ``fn(session)``, replacing the one of the same ``module.qualname``; return
        ``fn``. Raises InvalidArgumentError as ``hook_name``."""
        name = hook_name(fn)
        with self._guard:
            self._hooks[name] = fn
        return fn

    def add_cleanup(self, method: Callable[[S], object]) -> None:
        """Register a bound method to run after the hooks, held weakly (it goes with its
        object); registering it again changes nothing."""
        ref = weakref.WeakMethod(method)
        with self._guard:
            self._cleanups = [r for r in self._cleanups if r() is not None]
            if ref not in self._cleanups:
                self._cleanups.append(ref)

    def names(self) -> list[str]:
        """The registered hooks' names, in registration order."""
        return list(self._hooks)

    def evicted(self, session_id: str, state: Any) -> None:
        """Keep the state of a live session whose bookkeeping was freed, to end it later."""
        with self._guard:
            self._evicted[session_id] = state

    def has_evicted(self) -> bool:
        """Whether a session freed alive has yet to end."""
        return bool(self._evicted)

    def evicted_sessions(self) -> list[tuple[str, Any]]:
        """(session id, state) of the sessions freed alive and not ended since."""
        with self._guard:
            return list(self._evicted.items())

    def end(self, session_id: str, session: S) -> bool:
        """Run every hook, then every cleanup, with ``session``, unless they ran or run for
        ``session_id`` already; return whether this call ran them.

        A hook that raises is logged (its name and the exception's type, the session by
        label) and the others still run. Never raises an Exception.
        """
        now = monotonic()
        with self._guard:
            self._evicted.pop(session_id, None)  # ending now: nothing left to keep
            if session_id in self._ended:
                return False
            self._forget_before(now - self._remember)
            self._ended[session_id] = None  # taken: a racing sweep leaves it to this one
            hooks = list(self._hooks.items())
            cleanups = [c for c in (r() for r in self._cleanups) if c is not None]
        try:
            for name, hook in hooks:
                self._call(name, hook, session_id, session)
            for cleanup in cleanups:
                self._call(hook_name(cleanup), cleanup, session_id, session)
        finally:
            with self._guard:
                self._ended[session_id] = monotonic()
        return True

    def is_ended(self, session_id: str) -> bool:
        """Whether ``session_id``'s hooks have run (and finished): it may be freed."""
        return self._ended.get(session_id) is not None

    def _forget_before(self, cutoff: float) -> None:
        # Under the guard. Finish order is nearly claim order: stop at the first one kept.
        ended = self._ended
        while ended:
            oldest = next(iter(ended))
            finished = ended[oldest]
            if finished is None or finished > cutoff:
                return
            del ended[oldest]

    @staticmethod
    def _call(name: str, fn: Callable[[S], object], session_id: str, session: S) -> None:
        try:
            fn(session)
        except Exception as exc:  # the other hooks, and the sweep, go on
            # The exception's type only: its message may quote the session's values.
            _events.log.error("safestate: session end hook %s raised %s (session %s)",
                              name, type(exc).__name__, _events.session_label(session_id))
