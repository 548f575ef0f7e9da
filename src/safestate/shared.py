"""``shared``: one app-wide state that every session of the process reads and writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _compat
from ._locks import ScopeLock
from ._scope import Scope
from .persistence import PersistentView


class SharedState(Scope):
    """App-wide state under its own lock, with the same API as the session manager.

    Use it for what several users' script threads touch at once (counters, boards,
    objects kept in ``st.cache_resource``). It lives in this process's memory.
    """

    scope_name = "shared state"
    #: With a store configured (not memory://), the shared state lives there instead.
    _view: PersistentView | None = None
    #: Applies the deployment's settings (secrets, env) before first use; then None.
    _before_first_use: Callable[[], None] | None = None

    def __init__(self) -> None:
        self._lock = ScopeLock("shared", "the shared state")
        self._data: dict[str, Any] = {}

    def _enter(self, op: str, timeout: float | None = None) -> tuple[ScopeLock, Any]:
        first_use = self._before_first_use
        if first_use is not None:  # an app may use only `shared`: it must get the store too
            first_use()
        view = self._view
        if view is None or not _compat.in_script_run():
            # In memory the lock is held for microseconds (as a plain dict under a lock
            # would be); a worker has nothing to supersede it.
            self._lock.acquire(timeout)
            return self._lock, self._data if view is None else view
        # In a store, the lock is held across round trips: a run the user clicked past
        # ends here, as at st.session_state, and leaves the lock's queue.
        _compat.yield_point()
        self._lock.acquire(timeout, None, _compat.yield_point)
        return self._lock, view

    def clear(self) -> None:
        """Remove every key."""
        with self.session_lock():
            self._data.clear()
            if self._view is not None:
                self._view._p.store.drop(self._view.namespace)

    def stats(self) -> dict[str, Any]:
        """Operations, waits and keys of the shared state (key count only, no values)."""
        lock = self._lock
        return {
            "keys": len(self._data) if self._view is None else None,  # None: in the store
            "operations": lock.ops,
            "lock_waits": lock.waits,
            "lock_wait_seconds": lock.wait_ns / 1e9,
            "lock_held": lock.held,
        }


#: The process's app-wide state (``safestate.shared``).
shared_state = SharedState()
