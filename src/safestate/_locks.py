"""The per-session lock registry: one re-entrant, instrumented lock per session.

Locks are context managers: ``with registry.locked(sid, state) as entry:`` takes the
session's lock (``locked`` acquires, the ``with`` block's end releases), and a release
by a thread that does not hold the lock raises LockNotOwnedError, as redis-py's does.

Mutual exclusion rule: an entry is only ever removed by a thread that holds its
lock, and it is marked ``dead`` before that lock is released. Every user checks
``dead`` right after acquiring, and starts over with a fresh entry if it is set.
So removing an entry can never let two threads hold "the" lock of one session at
once, and the hot path takes no global lock: lookups are plain dict reads under
the GIL; the registry lock is only taken to create or remove entries.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from time import monotonic, perf_counter_ns
from typing import NoReturn

from . import _compat, _events
from ._record import SessionRecord
from .errors import LockNotOwnedError, LockTimeoutError

_get_ident = threading.get_ident
#: Seconds between two checks, while a script run waits for a lock, that it is still wanted.
INTERRUPT_POLL = 0.02
#: Guards ``ScopeLock.waiters`` (changed only on the slow path, by threads about to wait).
_WAITERS = threading.Lock()


#: Thread id -> how many of safestate's locks that thread holds (see ``locks_held``). Each
#: thread changes only its own entry, and a dict's get and set are atomic: cheaper on every
#: call than a threading.local. An entry goes when its count is back to 0.
_held: dict[int, int] = {}


def _hold(me: int) -> None:
    _held[me] = _held.get(me, 0) + 1


def _let_go(me: int) -> None:
    left = _held[me] - 1
    if left:
        _held[me] = left
    else:
        del _held[me]


def locks_held() -> int:
    """How many of safestate's locks (scope locks, turns, app-dependency locks) this thread holds.

    A thread that holds one must not block on a lock that is taken before it elsewhere
    (a read-modify-write's turn): that could close a cycle of waiting threads.
    """
    return _held.get(_get_ident(), 0)


def note_held(change: int) -> None:
    """Count a lock taken (+1) or let go (-1) that is not a ScopeLock (an app dependency's)."""
    if change > 0:
        _hold(_get_ident())
    else:
        _let_go(_get_ident())


def check_timeout(timeout: float | None) -> None:
    """Raise TypeError/ValueError unless ``timeout`` is None or a number >= 0."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r:.40}")
    if not timeout >= 0:  # also refuses NaN
        raise ValueError(f"timeout must be >= 0 seconds (or None to wait), got {timeout!r}")


class ScopeLock:
    """A re-entrant lock that counts its uses and how long callers waited for it.

    Its counters are only changed by the thread that holds the lock, so they need
    no lock of their own.
    """

    __slots__ = (
        "__weakref__",  # a namespace's turn is kept only while a view of it is (Persistence)
        "_lock",
        "dead",
        "depth",
        "key",
        "label",
        "last_used",
        "ops",
        "owner",
        "record",
        "wait_ns",
        "waiters",
        "waits",
    )

    def __init__(self, key: str, label: str = "") -> None:
        self.key = key
        self.label = label or key  # how errors name it (never a session id)
        self._lock = threading.Lock()
        self.owner: int | None = None
        self.depth = 0
        self.ops = 0
        self.waits = 0
        self.wait_ns = 0
        self.last_used = monotonic()
        self.dead = False
        #: Threads blocked waiting for it now (for tests and monitors; see ``_WAITERS``).
        self.waiters = 0
        #: What safestate keeps for the session this lock guards (None for other locks);
        #: it goes when the entry does.
        self.record: SessionRecord | None = None

    def __enter__(self) -> ScopeLock:
        """The lock, already taken by whoever handed it out (``registry.locked``, ``_enter``)."""
        return self

    def __exit__(self, kind: object = None, exc: object = None, tb: object = None) -> None:
        # ``release`` written out: every safestate call ends here (one call fewer).
        me = _get_ident()
        if self.owner != me:
            raise LockNotOwnedError(self.label)
        depth = self.depth - 1
        if depth:
            self.depth = depth
            return
        self.depth = 0
        self.last_used = monotonic()
        self.owner = None
        left = _held[me] - 1  # _let_go, written out
        if left:
            _held[me] = left
        else:
            del _held[me]
        self._lock.release()

    def acquire(
        self, timeout: float | None = None, asked: float | None = None,
        interrupt: Callable[[], None] | None = None,
    ) -> int:
        """Take the lock (again, if this thread holds it); return the ns waited.

        ``asked`` is the timeout the caller asked for, when ``timeout`` is what is left
        of it. ``interrupt`` is called every ``INTERRUPT_POLL`` seconds of waiting and
        once more after a wait; whatever it raises abandons the wait (the lock is not
        held then). Raises LockTimeoutError.
        """
        me = _get_ident()
        if self.owner == me:
            self.depth += 1
            return 0
        waited = 0
        if not self._lock.acquire(False):
            start = perf_counter_ns()
            with _WAITERS:
                self.waiters += 1
            try:
                if interrupt is not None:
                    self._wait_interruptibly(timeout, asked, interrupt)
                elif not self._lock.acquire(True, -1 if timeout is None else timeout):
                    self._timed_out(timeout if asked is None else asked)
            finally:
                with _WAITERS:
                    self.waiters -= 1
            waited = perf_counter_ns() - start
            # Counted after acquiring: only the holder writes the counters.
            self.waits += 1
            self.wait_ns += waited
            observe = _events.lock_wait
            if observe is not None:
                observe(_events.scope_of(self.key), waited / 1e9)
        self.owner = me
        self.depth = 1
        _held[me] = _held.get(me, 0) + 1  # _hold, written out
        return waited

    def _wait_interruptibly(
        self, timeout: float | None, asked: float | None, interrupt: Callable[[], None]
    ) -> None:
        # A script run that Streamlit has superseded must not queue here for a lock held
        # across store I/O: each slice of waiting gives Streamlit the chance to end it.
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            left = INTERRUPT_POLL if deadline is None else max(0.0, deadline - monotonic())
            if self._lock.acquire(True, min(left, INTERRUPT_POLL)):
                break
            if deadline is not None and monotonic() >= deadline:
                self._timed_out(timeout if asked is None else asked)
            interrupt()
        try:
            interrupt()  # superseded while waiting: apply nothing
        except BaseException:
            self._lock.release()
            raise

    def _timed_out(self, timeout: float | None) -> NoReturn:
        _events.log.warning("safestate: lock timeout after %.3g s on %s (%s)", timeout or 0.0,
                            self.label, _events.label_of(self.key))
        raise LockTimeoutError(self.label, timeout or 0.0)

    def release(self) -> None:
        """Release one level of the lock. Raises LockNotOwnedError unless this thread holds it."""
        self.__exit__()

    def try_acquire_free(self) -> bool:
        """Take the lock only if nobody, this thread included, holds it."""
        if self.owner is not None or not self._lock.acquire(False):
            return False
        self.owner = me = _get_ident()
        self.depth = 1
        _hold(me)
        return True

    def try_acquire(self) -> bool:
        """Take the lock (again, if this thread holds it) only if that needs no wait."""
        if self.owner == _get_ident():
            self.depth += 1
            return True
        if not self._lock.acquire(False):
            return False
        self.owner = me = _get_ident()
        self.depth = 1
        _hold(me)
        return True

    @property
    def held(self) -> bool:
        """Whether some thread holds the lock now."""
        return self.owner is not None


class LockRegistry:
    """Session id -> ScopeLock, created on first use, removed only when safe."""

    def __init__(
        self, label: str = "this session's state",
        make_record: Callable[[str, object], SessionRecord] | None = None,
    ) -> None:
        self._make_record = make_record if make_record is not None else SessionRecord
        self._entry_bytes: int | None = None
        self._entries: dict[str, ScopeLock] = {}
        self._guard = threading.Lock()  # creation, removal and totals only
        self._label = label
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

    def locked(
        self, key: str, owner_obj: object = None, timeout: float | None = None,
        interrupt: Callable[[], None] | None = None,
    ) -> ScopeLock:
        """Take the lock of ``key`` for a ``with`` block, creating its entry if needed.

        ``owner_obj`` is the session's state object: the entry's record keeps it for
        health reports (Streamlit's SessionState has __slots__ and no __weakref__, so the
        record holds it until the entry is freed), and a new one under a known id starts
        a new record. ``timeout`` bounds the whole call. ``interrupt`` may abandon a wait
        (see ScopeLock.acquire). Raises LockTimeoutError.
        """
        entry = self._entries.get(key)
        if entry is not None and timeout is None:  # the hot path: a known session
            waited = entry.acquire(None, None, interrupt)
            if not entry.dead:
                record = entry.record
                if owner_obj is not None and record is not None and record.state is not owner_obj:
                    self._new_state(entry, owner_obj)
                return entry
            self._drop_dead(entry, waited)
        return self._acquire_slow(key, owner_obj, timeout, interrupt)

    def _drop_dead(self, entry: ScopeLock, waited: int) -> None:
        if waited:  # the wait went into an entry already totalled: count it here
            with self._guard:
                self.removed_waits += 1
                self.removed_wait_ns += waited
        entry.release()

    def _new_state(self, entry: ScopeLock, owner_obj: object) -> None:
        # A new state object under a known id is a new session (AppTest reuses one id):
        # it starts without the last one's bookkeeping.
        entry.record = self._make_record(entry.key, owner_obj)

    def _acquire_slow(
        self, key: str, owner_obj: object, timeout: float | None,
        interrupt: Callable[[], None] | None,
    ) -> ScopeLock:
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._create(key, owner_obj)
            left = None if deadline is None else max(0.0, deadline - monotonic())
            waited = entry.acquire(left, timeout, interrupt)
            if not entry.dead:
                record = entry.record
                if owner_obj is not None and record is not None and record.state is not owner_obj:
                    self._new_state(entry, owner_obj)
                return entry
            self._drop_dead(entry, waited)

    def _create(self, key: str, owner_obj: object) -> ScopeLock:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                entry = ScopeLock(key, self._label)
                entry.record = self._make_record(key, owner_obj)
                self._entries[key] = entry
            return entry

    def remove_if_free(self, key: str) -> bool:
        """Remove ``key``'s entry if no thread holds its lock now."""
        entry = self._entries.get(key)
        if entry is None or not entry.try_acquire_free():
            return False
        with self._guard:
            entry.dead = True
            if self._entries.get(key) is entry:
                del self._entries[key]
            entry.record = None
            self.cleaned += 1
            self.removed_ops += entry.ops
            self.removed_waits += entry.waits
            self.removed_wait_ns += entry.wait_ns
        entry.release()
        return True

    def totals(self) -> tuple[list[ScopeLock], int, int, int, int]:
        """(entries, cleaned, removed ops, removed waits, removed wait ns), read together."""
        with self._guard:
            return (list(self._entries.values()), self.cleaned, self.removed_ops,
                    self.removed_waits, self.removed_wait_ns)

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
        """Bytes of bookkeeping one tracked session costs (entry, lock, key, record, dict slot)."""
        if self._entry_bytes is None:
            probe = ScopeLock("00000000-0000-4000-8000-000000000000")
            record = self._make_record(probe.key, None)
            table = sys.getsizeof({str(i): i for i in range(1024)}) // 1024
            self._entry_bytes = (
                sys.getsizeof(probe) + sys.getsizeof(probe._lock) + sys.getsizeof(probe.key)
                + sys.getsizeof(record) + sys.getsizeof(record.local) * (record.local is not None)
                + table)
        return self._entry_bytes


class Turn:
    """A scope's turn to read-modify-write a stored key: a lock of its own, taken before the
    scope's lock (never after), whose wait a superseded script run leaves.

    Without it every rerun of a click flood would queue inside the store's client,
    where nothing can stop it, and the scope's own writers would conflict.
    """

    __slots__ = ("_lock", "_taken")

    def __init__(self, lock: ScopeLock) -> None:
        self._lock = lock
        self._taken = False

    def __enter__(self) -> None:
        if locks_held():
            # This thread holds another of safestate's locks: waiting for the turn could
            # close a cycle (its holder's fn may want that lock). Take it only if free;
            # otherwise go on without it (optimistic: a conflict is retried).
            self._taken = self._lock.try_acquire()
            return
        self._lock.acquire(None, None, _compat.yield_point if _compat.in_script_run() else None)
        self._taken = True

    def __exit__(self, *exc: object) -> None:
        if self._taken:
            self._taken = False
            self._lock.release()
