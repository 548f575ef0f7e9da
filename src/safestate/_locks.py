"""The per-session lock registry: one re-entrant, instrumented lock per session.

Mutual exclusion rule: an entry is only ever removed by a thread that holds its
lock, and it is marked ``dead`` before that lock is released. Every user checks
``dead`` right after acquiring, and starts over with a fresh entry if it is set.
So removing an entry can never let two threads hold "the" lock of one session at
once, and the hot path takes no global lock: lookups are plain dict reads under
the GIL; the registry lock is only taken to create or remove entries.
"""

from __future__ import annotations

import contextlib
import threading
import tracemalloc
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from time import monotonic, perf_counter_ns

from .errors import LockTimeoutError

_get_ident = threading.get_ident


class ScopeLock:
    """A re-entrant lock that counts its uses and how long callers waited for it.

    Its counters are only changed by the thread that holds the lock, so they need
    no lock of their own.
    """

    __slots__ = (
        "__weakref__",
        "_lock",
        "dead",
        "depth",
        "key",
        "last_used",
        "ops",
        "outer",
        "owner",
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
        self._gone: deque[tuple[str, weakref.ref[object]]] = deque()
        self._watch: dict[str, weakref.ref[object]] = {}
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

        ``owner_obj`` (the session's state object) is watched with a weak
        reference: when it is garbage-collected the entry becomes removable even
        when no runtime can say that the session ended.
        """
        while True:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._create(key, owner_obj)
            entry.acquire(timeout, outer)
            if not entry.dead:
                return entry
            entry.release()

    def _create(self, key: str, owner_obj: object) -> ScopeLock:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                entry = ScopeLock(key)
                self._entries[key] = entry
                if owner_obj is not None:
                    self._watch_owner(key, owner_obj)
            return entry

    def _watch_owner(self, key: str, owner_obj: object) -> None:
        gone = self._gone

        def on_collect(ref: weakref.ref[object], key: str = key) -> None:
            # Runs in whatever thread the GC runs in: only append (atomic).
            gone.append((key, ref))

        # An object that is not weak-referenceable leaves the runtime as the only judge.
        with contextlib.suppress(TypeError):
            self._watch[key] = weakref.ref(owner_obj, on_collect)

    def remove_if_free(self, key: str) -> bool:
        """Remove ``key``'s entry if no thread holds or waits for its lock now."""
        entry = self._entries.get(key)
        if entry is None or not entry.try_acquire_free():
            return False
        with self._guard:
            entry.dead = True
            if self._entries.get(key) is entry:
                del self._entries[key]
            self._watch.pop(key, None)
            self.cleaned += 1
            self.removed_ops += entry.ops
            self.removed_waits += entry.waits
            self.removed_wait_ns += entry.wait_ns
        entry.release()
        return True

    def collected(self) -> Iterator[str]:
        """Keys whose watched state object was garbage-collected since the last call."""
        while self._gone:
            key, ref = self._gone.popleft()
            # A newer state object may have taken this key over (AppTest reuses ids).
            if self._watch.get(key) is ref:
                yield key

    def watched_objects(self) -> list[object]:
        """The live state objects of tracked sessions (for app-wide health reports)."""
        objects = (ref() for ref in list(self._watch.values()))
        return [obj for obj in objects if obj is not None]

    def keys(self) -> list[str]:
        """A snapshot of the tracked keys."""
        return list(self._entries)

    def entries(self) -> list[ScopeLock]:
        """A snapshot of the tracked entries."""
        return list(self._entries.values())

    def sweep(self, is_ended: Callable[[str], bool]) -> int:
        """Remove entries of ended sessions (and collected state) whose lock is free."""
        self.last_sweep = monotonic()
        removed = 0
        for key in list(self.collected()):
            removed += self.remove_if_free(key)
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
