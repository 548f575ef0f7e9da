"""``shared``: one app-wide state that every session of the process reads and writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _compat
from ._backends import BackendSlot
from ._keys import check_key
from ._locks import ScopeLock
from ._scope import Scope
from .live import LiveUpdates
from .storage import DictStorage, Storage, WatchedDict


class SharedState(Scope):
    """App-wide state under its own lock, with the same API as the session manager.

    Use it for what several users' script threads touch at once (counters, boards,
    objects kept in ``st.cache_resource``). It lives in this process's memory, or with
    a store configured (not memory://), in the store.
    """

    def __init__(self, backends: BackendSlot,
                 on_first_use: Callable[[], None] | None = None,
                 live: LiveUpdates | None = None) -> None:
        self._backends = backends
        # Applies the deployment's settings (store, metrics port) once: an app may use
        # only `shared`, and it must get them too.
        self._on_first_use = on_first_use
        self._lock = ScopeLock("shared", "the shared state")
        # With live updates, the sessions that read a key rerun when it changes.
        self._memory = DictStorage() if live is None else WatchedDict(live, "shared")

    def _enter(self, op: str, timeout: float | None = None) -> tuple[ScopeLock, Storage]:
        first_use = self._on_first_use
        if first_use is not None:
            first_use()  # raises (a bad deployment setting) on every call until it works
            self._on_first_use = None
        stored = (self._backends.current or self._backends.get()).shared
        if stored is None or not _compat.in_script_run():
            # In memory the lock is held for microseconds (as a plain dict under a lock
            # would be); a worker has nothing to supersede it.
            self._lock.acquire(timeout)
            return self._lock, self._memory if stored is None else stored
        # In a store, the lock is held across round trips: a run the user clicked past
        # ends here, as at st.session_state, and leaves the lock's queue.
        _compat.yield_point()
        self._lock.acquire(timeout, None, _compat.yield_point)
        return self._lock, stored

    # -- hot paths, written out: a key of the shared state in memory is a dict entry under a
    # lock, and costs little more than one (make bench: shared vs a bare lock and dict).
    def safe_get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is not set. Raises as ``Scope.safe_get``."""
        if type(key) is not str or not key:
            check_key(key)
        backends = self._backends.current
        if backends is None or backends.shared is not None or self._on_first_use is not None:
            return Scope.safe_get(self, key, default)
        lock = self._lock
        lock.acquire()
        with lock:
            lock.ops += 1
            return self._memory.get(key, default)

    def safe_set(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value``. Raises as ``Scope.safe_set``."""
        if type(key) is not str or not key:
            check_key(key)
        backends = self._backends.current
        if backends is None or backends.shared is not None or self._on_first_use is not None:
            return Scope.safe_set(self, key, value)
        lock = self._lock
        lock.acquire()
        with lock:
            lock.ops += 1
            self._memory[key] = value
        return None

    def clear(self) -> None:
        """Remove every key. Raises StoreUnavailable when a store cannot be reached."""
        lock, storage = self._enter("clear")
        with lock:
            if storage is not self._memory:
                storage.clear()
            self._memory.clear()  # in a store too: what an earlier configuration kept here

    def stats(self) -> dict[str, Any]:
        """Operations, waits and keys of the shared state (key count only, no values)."""
        lock = self._lock
        backends = self._backends.current
        in_store = backends is not None and backends.shared is not None
        return {
            "keys": None if in_store else len(self._memory),  # None: in the store
            "operations": lock.ops,
            "lock_waits": lock.waits,
            "lock_waiters": lock.waiters,
            "lock_wait_seconds": lock.wait_ns / 1e9,
            "lock_held": lock.held,
        }
