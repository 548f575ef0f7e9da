"""The one small interface every store implements, and how a URL picks a store.

A store keeps namespaces ("session:<identity>", "shared") of key -> bytes, each
with a version number. ``commit`` applies sets and deletes to one namespace
atomically, in one round trip; given ``expected_version`` it refuses with
VersionConflict (writing nothing) when another writer got there first. That is
optimistic concurrency: read, compute, commit, retry on conflict. It was chosen
over store-side locks because a lock held by a process that dies must expire, and
an expiry short enough to recover quickly can break exclusion for a slow writer;
a version check cannot.
"""

from __future__ import annotations

import abc
import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import _compat, _events
from ..errors import StoreUnavailable, VersionConflict, redact


@dataclass(frozen=True)
class Snapshot:
    """A namespace as read: its values and its version (0 when it does not exist)."""

    values: dict[str, bytes] = field(default_factory=dict)
    version: int = 0


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
    ) -> int:
        """Apply ``sets`` and ``deletes`` atomically; return the new version.

        ``ttl`` (seconds) makes the namespace expire after that long without a commit.
        Raises VersionConflict (nothing written), StoreUnavailable.
        """

    @abc.abstractmethod
    def drop(self, namespace: str) -> bool:
        """Delete a whole namespace; True if it existed. Raises StoreUnavailable."""

    @abc.abstractmethod
    def cleanup(self) -> int:
        """Remove expired namespaces now; return how many. Raises StoreUnavailable."""

    def close(self) -> None:  # noqa: B027 - optional for stores that hold nothing
        """Release connections."""


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
        now = time.monotonic()
        with self._lock:
            if self._logged_at is not None and now - self._logged_at < self.interval:
                self._left_out += 1
                return
            left_out, self._left_out, self._logged_at = self._left_out, 0, now
        more = (f" ({left_out} more fault(s) in the last {self.interval:g} s not logged)"
                if left_out else "")
        # The message names the store (credentials masked) and the driver's error, no values.
        _events.log.warning("safestate: store %s failed (%s): %s%s", operation,
                            _compat.current_label(), exc, more)

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
