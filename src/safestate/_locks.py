"""The per-session lock registry: one re-entrant, instrumented lock per session.

Mutual exclusion rule: an entry is only ever removed by a thread that holds its
lock, and it is marked ``dead`` before that lock is released. Every user checks
``dead`` right after acquiring, and starts over with a fresh entry if it is set.
So removing an entry can never let two threads hold "the" lock of one session at
once, and the hot path takes no global lock: lookups are plain dict reads under
the GIL; the registry lock is only taken to create or remove entries.
"""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Callable
from time import monotonic, perf_counter_ns

from .errors import LockTimeoutError

_get_ident = threading.get_ident


class ScopeLock:
    """A re-entrant lock that counts its uses and how long callers waited for it.

    Its counters are only changed by the thread that holds the lock, so they need
    no lock of their own.
    """

    __slots__ = (
        "_lock",
        "dead",
        "depth",
        "extra",
        "key",
        "last_used",
        "ops",
        "outer",
        "owner",
        "state",
        "wait_ns",
        "waits",
    )

    def __init__(self, key: str) -> None:
        self.key = key
        self._lock = threading.Lock()
        self.owner: int | None = None
        self.depth = 0
        self.ops = 0
        self.waits = 0
        self.wait_ns = 0
        self.last_used = monotonic()
        self.dead = False
        self.outer: threading.RLock | None = None
        # The session's state object (what health reports look at) and the library's own
        # per-session data (dependency checks); both go when the entry does.
        self.state: object = None
        self.extra: dict[str, object] | None = None

    def acquire(self, timeout: float | None = None, outer: threading.RLock | None = None) -> None:
        """Take the lock (again, if this thread holds it). Raises LockTimeoutError.

        ``outer`` is taken first and held until the outermost release: Streamlit's
        lock of the session's script run. Always taking it before this one (and
        never while holding this one) keeps the two in one order, so a widget
        callback, which runs under Streamlit's lock, cannot deadlock with a worker.
        """
        me = _get_ident()
        if self.owner == me:
            self.depth += 1
            return
        wait = -1 if timeout is None else timeout
        if outer is not None and not outer.acquire(True, wait):
            raise LockTimeoutError(self.key, timeout or 0.0)
        if not self._lock.acquire(False):
            start = perf_counter_ns()
            if not self._lock.acquire(True, wait):
                if outer is not None:
                    outer.release()
                raise LockTimeoutError(self.key, timeout or 0.0)
            # Counted after acquiring: only the holder writes the counters.
            self.waits += 1
            self.wait_ns += perf_counter_ns() - start
        self.owner = me
        self.depth = 1
        self.outer = outer

    def release(self) -> None:
        """Release one level of the lock."""
        self.depth -= 1
        if self.depth == 0:
            outer = self.outer
            self.outer = None
            self.last_used = monotonic()
            self.owner = None
            self._lock.release()
            if outer is not None:
                outer.release()

    def try_acquire_free(self) -> bool:
        """Take the lock only if nobody, this thread included, holds it."""
        if self.owner is not None or not self._lock.acquire(False):
            return False
        self.owner = _get_ident()
        self.depth = 1
        return True

    @property
    def held(self) -> bool:
        """Whether some thread holds the lock now."""
        return self.owner is not None


class LockRegistry:
    """Session id -> ScopeLock, created on first use, removed only when safe."""

    def __init__(self) -> None:
        self._entries: dict[str, ScopeLock] = {}
        self._guard = threading.Lock()  # creation and removal only
        self.cleaned = 0
        self.removed_ops = 0
        self.removed_waits = 0
        self.removed_wait_ns = 0
        self.last_sweep = monotonic()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> ScopeLock | None:
        """The entry of ``key`` if it is tracked (no side effects)."""
        return self._entries.get(key)

    def acquire(
        self,
        key: str,
        owner_obj: object = None,
        timeout: float | None = None,
        outer: threading.RLock | None = None,
    ) -> ScopeLock:
        """Take the lock of ``key``, creating its entry if needed. Raises LockTimeoutError.

        ``owner_obj`` is the session's state object, kept on the entry for health
        reports (Streamlit's SessionState has __slots__ and no __weakref__, so the
        entry holds it until the entry is freed).
        """
        while True:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._create(key)
            entry.acquire(timeout, outer)
            if not entry.dead:
                if owner_obj is not None and entry.state is not owner_obj:
                    entry.state = owner_obj  # AppTest reuses one session id for new states
                return entry
            entry.release()

    def _create(self, key: str) -> ScopeLock:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                entry = ScopeLock(key)
                self._entries[key] = entry
            return entry

    def remove_if_free(self, key: str) -> bool:
        """Remove ``key``'s entry if no thread holds or waits for its lock now."""
        entry = self._entries.get(key)
        if entry is None or not entry.try_acquire_free():
            return False
        with self._guard:
            entry.dead = True
            if self._entries.get(key) is entry:
                del self._entries[key]
            entry.state = entry.extra = None
            self.cleaned += 1
            self.removed_ops += entry.ops
            self.removed_waits += entry.waits
            self.removed_wait_ns += entry.wait_ns
        entry.release()
        return True

    def states(self) -> list[object]:
        """The state objects of tracked sessions (for app-wide health reports)."""
        return [e.state for e in self.entries() if e.state is not None]

    def keys(self) -> list[str]:
        """A snapshot of the tracked keys."""
        return list(self._entries)

    def entries(self) -> list[ScopeLock]:
        """A snapshot of the tracked entries."""
        return list(self._entries.values())

    def sweep(self, is_ended: Callable[[str], bool]) -> int:
        """Remove entries of ended sessions whose lock is free."""
        self.last_sweep = monotonic()
        removed = 0
        for key in self.keys():
            if is_ended(key):
                removed += self.remove_if_free(key)
        return removed

    def memory_per_entry(self) -> int:
        """Bytes one entry costs the library: measured once with tracemalloc, then cached."""
        global _MEMORY_PER_ENTRY
        if _MEMORY_PER_ENTRY is None:
            _MEMORY_PER_ENTRY = _measure_entry_memory()
        return _MEMORY_PER_ENTRY


_MEMORY_PER_ENTRY: int | None = None


def _measure_entry_memory(count: int = 500) -> int:
    owners = [_Probe() for _ in range(count)]
    keys = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(count)]
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        scratch = LockRegistry()
        for key, owner in zip(keys, owners, strict=True):
            scratch.acquire(key, owner).release()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(1, used // count)


class _Probe:
    """Stands in for a session's state object when measuring."""
