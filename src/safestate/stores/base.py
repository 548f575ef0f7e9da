"""The one small interface every store implements, and how a URL picks a store.

A store keeps namespaces ("session:<identity>", "shared") of key -> bytes, each
with a version number. ``commit`` applies sets and deletes to one namespace
atomically, in one round trip; given ``expected_version`` it refuses with
VersionConflict (writing nothing) when another writer got there first. That is
optimistic concurrency: read, compute, commit, retry on conflict. It was chosen
over store-side locks because a lock held by a process that dies must expire, and
an expiry short enough to recover quickly can break exclusion for a slow writer;
a version check cannot.

``subscribe`` tells a process of the commits and drops other writers make (other
processes, other Store objects), from a thread the store owns: Redis publishes in
the commit's own script, SQLite writes a change log in the commit's transaction.
"""

from __future__ import annotations

import abc
import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import _compat, _events
from ..errors import StoreUnavailable, VersionConflict, quote, redact


@dataclass(frozen=True)
class Snapshot:
    """A namespace as read: its values and its version (0 when it does not exist)."""

    values: dict[str, bytes] = field(default_factory=dict)
    version: int = 0


@dataclass(frozen=True)
class Committed:
    """A change another writer made: namespace, its new version, the keys set or deleted."""

    #: None: anything may have changed (a listener reconnected after a gap).
    namespace: str | None
    #: The namespace's version after the change (0 when dropped or unknown).
    version: int
    #: Keys set or deleted; None: every key (a drop, a namespace started afresh -- new, or
    #: again after it expired --, a gap).
    keys: tuple[str, ...] | None
    #: Written by a run that a live update started, not by a user: caches read it again,
    #: but nobody is rerun for it (otherwise two replicas would rerun each other forever).
    echo: bool = False


#: What a listener reports after a gap: messages may have been lost, read everything again.
EVERYTHING = Committed(None, 0, None)

Callback = Callable[[Committed], None]


class Subscription:
    """A callback's subscription to a store's changes; ``close()`` ends it (again: no-op)."""

    def __init__(self, unsubscribe: Callable[[], None] | None = None) -> None:
        self._unsubscribe = unsubscribe

    def close(self) -> None:
        """Call the callback no more (a call already under way on the listener may finish)."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()


def next_version(version: int) -> int:
    """The version after ``version``. A namespace that starts (again, after expiry or a
    drop) starts from the clock in milliseconds, not from 1: a writer still holding a
    version read before the drop can then never match by chance."""
    return version + 1 if version else int(time.time() * 1000)


class Store(abc.ABC):
    """Where persisted state lives. Every method is one round trip to the backend."""

    url: str
    #: Round trips made so far (for benchmarks and tests; not synchronized, approximate).
    round_trips: int = 0
    #: What metrics call this kind of store (its URL scheme).
    kind: str = "store"
    #: Its faults' log, made on the first fault.
    faults: FaultLog | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Every store's round trips are timed for metrics, without each store repeating it.
        # Only a store's own class: a subclass of it that calls super() is not counted twice.
        if Store not in cls.__bases__:
            return
        for name in _ROUND_TRIPS:
            if name in cls.__dict__:
                setattr(cls, name, _timed(name, cls.__dict__[name]))

    @abc.abstractmethod
    def load(self, namespace: str) -> Snapshot:
        """Every key of ``namespace`` and its version. Raises StoreUnavailable."""

    @abc.abstractmethod
    def get(self, namespace: str, key: str) -> bytes | None:
        """One key of ``namespace``, or None. Raises StoreUnavailable."""

    @abc.abstractmethod
    def commit(
        self,
        namespace: str,
        sets: Mapping[str, bytes],
        deletes: Iterable[str] = (),
        *,
        expected_version: int | None = None,
        ttl: float | None = None,
        echo: bool = False,
    ) -> int:
        """Apply ``sets`` and ``deletes`` atomically; return the new version.

        ``ttl`` (seconds) makes the namespace expire after that long without a commit.
        ``echo``: the change comes from a run a live update started (``Committed.echo``).
        Raises VersionConflict (nothing written), StoreUnavailable.
        """

    @abc.abstractmethod
    def drop(self, namespace: str) -> bool:
        """Delete a whole namespace; True if it existed. Raises StoreUnavailable."""

    @abc.abstractmethod
    def cleanup(self) -> int:
        """Remove expired namespaces now; return how many. Raises StoreUnavailable."""

    def subscribe(self, callback: Callback) -> Subscription:
        """Call ``callback`` for every commit or drop made through ANOTHER Store object.

        Never for this object's own commits (its caller handles those directly). Called from
        a listener thread the store owns; a callback that raises is logged (key names only)
        and the thread goes on. Raises nothing when the backend is down: the listener retries
        in the background, then reports ``Committed(None, 0, None)``. This default suits a
        store no other object can write to (memory://): it never calls back.
        """
        return Subscription()

    def close(self) -> None:  # noqa: B027 - optional for stores that hold nothing
        """Release connections and stop the listener thread."""


_ROUND_TRIPS = ("load", "get", "commit", "drop", "cleanup")
#: Seconds between two log lines about one store's faults (the rest are counted).
FAULT_LOG_INTERVAL = 30.0


def _timed(operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method``, reporting its duration to metrics and its failures to the log."""

    @functools.wraps(method)
    def timed(self: Store, *args: Any, **kwargs: Any) -> Any:
        observe = _events.store_call
        start = time.perf_counter() if observe is not None else 0.0
        failed = True
        try:
            result = method(self, *args, **kwargs)
            failed = False
            if self.faults is not None:
                self.faults.recovered(self)
            return result
        except StoreUnavailable as exc:
            faults = self.faults
            if faults is None:
                faults = self.faults = FaultLog()
            faults.failed(operation, exc)
            raise
        except VersionConflict:
            failed = False  # the store answered: another writer was first
            raise
        finally:
            if observe is not None:
                observe(self.kind, operation, time.perf_counter() - start, failed)

    return timed


#: Seconds subscribe() waits for a new listener to listen, so that a commit made right after
#: it returns is heard. Longer (a backend that does not answer), and the listener reports
#: Committed(None, 0, None) once it listens.
LISTEN_WAIT = 1.0
#: Seconds Store.close() waits for its listener thread to end.
LISTEN_JOIN = 5.0


class Listener:
    """The callbacks subscribed to one store's changes, and the one thread that feeds them.

    The store gives ``watch(stop)``: its loop, run on the thread (started by the first
    subscribe) until ``stop`` is set. The loop calls ``notify`` with each change of another
    writer, ``listening`` when it listens (again), ``interrupted`` when it cannot.
    """

    def __init__(self, store: Store, watch: Callable[[threading.Event], None],
                 catches_up: bool = False) -> None:
        self._store = store
        self._watch = watch
        # The loop reads on from where the log stood at subscribe() (SQLite's change log),
        # so a thread slow to start misses nothing: no gap for that.
        self._catches_up = catches_up
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callback] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()  # the thread listens, or its first try failed
        self._gap = False  # changes may have gone unheard since the thread last listened
        self._failures = FaultLog()  # of callbacks, not of the store

    def subscribe(self, callback: Callback) -> Subscription:
        """Add ``callback``; start the thread if it is not running. Raises nothing."""
        with self._lock:
            token = next(self._ids)
            self._callbacks[token] = callback
            if self._thread is None:
                self._stop, self._ready, self._gap = threading.Event(), threading.Event(), False
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), daemon=True,
                    name=f"safestate-{self._store.kind}-listener")
                self._thread.start()
            ready = self._ready
        if not ready.wait(LISTEN_WAIT) and not self._catches_up:
            with self._lock:
                # Commits made before it listens are not heard: report them as a gap.
                self._gap = self._gap or not ready.is_set()
        return Subscription(lambda: self._remove(token))

    @property
    def thread(self) -> threading.Thread | None:
        """The listener thread, None when none runs (for tests)."""
        return self._thread

    def _remove(self, token: int) -> None:
        with self._lock:
            self._callbacks.pop(token, None)

    def _run(self, stop: threading.Event) -> None:
        try:
            self._watch(stop)
        except Exception:  # a bug in the loop: say so, rather than go quiet unseen
            _events.log.exception("safestate: the change listener of store %s stopped",
                                  redact(self._store.url))
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None  # the next subscribe starts another
                    self._gap = True
                    self._ready.set()

    def listening(self, gap: bool = False) -> None:
        """The loop listens (again). After a gap (``gap``, an ``interrupted`` call, or a
        subscribe that stopped waiting), every callback gets ``Committed(None, 0, None)``."""
        with self._lock:
            gap, self._gap = gap or self._gap, False
            self._ready.set()
        if gap:
            self.notify(EVERYTHING)

    def interrupted(self, lost: bool = True) -> None:
        """The loop cannot listen: subscribe() waits no longer. ``lost``: changes made
        meanwhile go unheard, so the next listening() is after a gap (False: the loop
        catches up on them itself, as from SQLite's change log)."""
        with self._lock:
            self._gap = self._gap or lost
            self._ready.set()

    def notify(self, change: Committed) -> None:
        """Call every callback with ``change``; one that raises is logged, the rest go on."""
        with self._lock:
            callbacks = list(self._callbacks.items())
        for token, callback in callbacks:
            if token not in self._callbacks:  # closed while an earlier callback ran
                continue
            try:
                callback(change)
            except Exception as exc:
                self._failed(callback, change, exc)

    def _failed(self, callback: Callback, change: Committed, exc: Exception) -> None:
        """Log a callback's failure: where it raised, the namespace and key names; not the
        message, which may quote a value. One line per interval, the rest counted."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = "" if tb is None else f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        keys = "every key" if change.keys is None else "keys " + quote(list(change.keys))
        name = getattr(callback, "__qualname__", type(callback).__qualname__)
        self._failures.note(f"the change callback {name} of store "
                            f"{redact(self._store.url)} raised {type(exc).__name__}{where} "
                            f"on namespace {change.namespace!r} ({keys})")

    def close(self) -> None:
        """Stop the thread and wait for it (bounded); drop every callback."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._callbacks.clear()
        if thread is not None and thread is not threading.current_thread():
            thread.join(LISTEN_JOIN)


class FaultLog:
    """Logs a store's faults without flooding: the first, then one summary per interval.

    A store that is down fails every call of every session; one line each would bury
    the log. The count of faults left out goes into the next line, or into the line
    saying the store answers again.
    """

    def __init__(self, interval: float = FAULT_LOG_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._logged_at: float | None = None  # None: no fault since the store last answered
        self._left_out = 0

    def failed(self, operation: str, exc: StoreUnavailable) -> None:
        """Log a fault, or count it if one was logged less than ``interval`` ago."""
        more = self._due()
        if more is not None:
            # The message names the store (credentials masked) and the driver's error, no values.
            _events.log.warning("safestate: store %s failed (%s): %s%s", operation,
                                _compat.current_label(), exc, more)

    def note(self, message: str) -> None:
        """Log ``message`` (a fault that is not the store's), or count it, as ``failed`` does."""
        more = self._due()
        if more is not None:
            _events.log.warning("safestate: %s%s", message, more)

    def _due(self) -> str | None:
        """What to add to a line logged now, or None: one was logged less than ``interval``
        ago, so this fault is counted instead."""
        now = time.monotonic()
        with self._lock:
            if self._logged_at is not None and now - self._logged_at < self.interval:
                self._left_out += 1
                return None
            left_out, self._left_out, self._logged_at = self._left_out, 0, now
        return (f" ({left_out} more fault(s) in the last {self.interval:g} s not logged)"
                if left_out else "")

    def recovered(self, store: Store) -> None:
        """The store answered: say so once if it had failed, with the faults not logged."""
        if self._logged_at is None:
            return
        with self._lock:
            if self._logged_at is None:
                return
            left_out, self._left_out, self._logged_at = self._left_out, 0, None
        _events.log.info("safestate: store %s answers again%s", redact(store.url),
                         f" ({left_out} more fault(s) were not logged)" if left_out else "")
