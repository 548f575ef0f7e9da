"""The operations every state scope offers, written once.

A scope is somewhere state lives behind one lock: the calling session
(``session_manager``), a given session reached from a worker thread
(``SessionHandle``), or the app-wide ``shared`` state. Subclasses say how to find
the lock and the ``Storage`` it guards (``_enter``); everything else is here.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ContextDecorator, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from ._compat import yield_point
from ._keys import MISSING, check_key
from ._locks import ScopeLock, check_timeout
from .errors import NotAMappingError, VersionConflict
from .transactions import Transaction

if TYPE_CHECKING:
    from .schema import SchemaRegistry
    from .storage import Storage

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: How many times a read-modify-write of a stored key starts over after another process
#: committed first, before it gives up with VersionConflict.
MAX_ATTEMPTS = 200
#: Seconds: the longest random pause between two attempts, and its growth per attempt.
BACKOFF_CAP = 0.02
BACKOFF_STEP = 0.001


def backoff(attempt: int) -> None:
    """Sleep a random moment that grows with ``attempt``: a retry after a version conflict."""
    # Contending writers in other processes: step aside for a random moment.
    time.sleep(random.uniform(0, min(BACKOFF_STEP * attempt, BACKOFF_CAP)))


def _unchecked(key: str, value: Any) -> Any:
    return value


class Scope:
    """State behind one lock, with the safe_* / mutate / transaction API."""

    #: Declared (typed) keys whose writes are validated; None for scopes without schemas.
    schema: SchemaRegistry | None = None

    # -- what a subclass provides ---------------------------------------------
    def _enter(self, op: str, timeout: float | None = None) -> tuple[ScopeLock, Storage]:
        """Take the scope's lock; return it (a context manager that lets go) and the storage
        it guards."""
        raise NotImplementedError

    # -- reads ------------------------------------------------------------------
    def safe_get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is not set.

        Raises InvalidKeyError/EmptyKeyError for a bad key, NoSessionError outside a session.
        """
        check_key(key)
        lock, storage = self._enter("safe_get")
        with lock:
            lock.ops += 1
            try:
                return storage[key]
            except KeyError:
                return default

    def safe_exists(self, key: str) -> bool:
        """Whether ``key`` is set. Raises as safe_get."""
        return self.safe_get(key, MISSING) is not MISSING

    # -- writes -----------------------------------------------------------------
    def safe_set(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value``.

        Raises StateValidationError if ``key`` is declared with another type, and as safe_get.
        """
        check_key(key)
        schema = self.schema
        if schema is not None and schema.fields:
            value = schema.check(key, value)
        lock, storage = self._enter("safe_set")
        with lock:
            lock.ops += 1
            storage[key] = value

    def safe_update(self, updates: Mapping[str, Any]) -> None:
        """Set several keys at once: all of them or, if any fails, none.

        Raises NotAMappingError for a non-mapping, InvalidKeyError/EmptyKeyError
        naming a bad key (nothing written), NoSessionError outside a session.
        """
        if not isinstance(updates, Mapping):
            raise NotAMappingError(updates)
        changes = [(check_key(k), v) for k, v in updates.items()]
        schema = self.schema
        if schema is not None and schema.fields:
            changes = [(k, schema.check(k, v)) for k, v in changes]
        lock, storage = self._enter("safe_update")
        with lock:
            lock.ops += 1
            storage.apply(changes)

    def safe_delete(self, key: str) -> bool:
        """Delete ``key``: True if it was set, False (no error) if not. Raises as safe_get."""
        check_key(key)
        lock, storage = self._enter("safe_delete")
        with lock:
            lock.ops += 1
            try:
                del storage[key]
            except KeyError:
                return False
            return True

    # -- read-modify-write --------------------------------------------------------
    def mutate(self, key: str, fn: Callable[[Any], T], default: Any = None) -> T:
        """Atomically replace ``key``'s value by ``fn(value)`` and return the new value.

        ``fn`` gets ``default`` when the key is not set. If ``fn`` raises, the state
        is unchanged and the exception propagates. For a key kept in a store, ``fn`` may
        run more than once when another writer commits first (optimistic, retried).
        Raises TypeError if ``fn`` is not callable, StateValidationError if the result
        breaks a declared type, and as safe_get.
        """
        return self._mutate(key, fn, default, "mutate")

    def _mutate(self, key: str, fn: Callable[[Any], T], default: Any, op: str) -> T:
        # ``op``: the public call, as errors name it (increment is a mutate).
        check_key(key)
        if not callable(fn):
            raise TypeError(f"mutate({key!r}, fn): fn must be callable, got {type(fn).__name__}")
        schema = self.schema
        check = schema.check if schema is not None and schema.fields else _unchecked
        for attempt in range(MAX_ATTEMPTS):
            lock, storage = self._enter(op)
            with lock:
                if attempt == 0:
                    lock.ops += 1
                # A caller that holds the lock already (a locked block, a transaction)
                # reads and commits under it, as it asked.
                if not storage.versioned:  # memory: read, compute and write under the lock
                    # read(), not [key]: a read-modify-write's read shows nothing on the page,
                    # so it does not make the session a live reader of the key.
                    current = storage.read(key, default)[0]
                    new = check(key, fn(current))
                    storage[key] = new
                    return cast("T", new)
                turn = storage.turn(key) if lock.depth == 1 else None
                if turn is None:
                    current, version = storage.read(key, default)
                    new = check(key, fn(current))
                    if version is None:  # unversioned memory, under the lock: one write
                        storage[key] = new
                        return cast("T", new)
                    try:
                        storage.apply([(key, new)], expected_version=version)
                        return cast("T", new)
                    except VersionConflict:
                        pass  # another process wrote first: read again
            if turn is not None:
                done, new = self._turn_commit(turn, key, fn, default, check, storage, op)
                if done:
                    return cast("T", new)
            backoff(attempt)  # another process wrote first: read again
        raise VersionConflict(key, -1, -1)

    def _turn_commit(self, turn: AbstractContextManager[None], key: str,
                     fn: Callable[[Any], Any], default: Any,
                     check: Callable[[str, Any], Any], read_from: Storage, op: str,
                     ) -> tuple[bool, Any]:
        """One optimistic read-modify-write of a stored key, in the scope's turn.

        The store round trip of the read happens outside the scope's lock, so the
        session's other calls do not queue behind it; the turn keeps this process's
        read-modify-writes of the scope from conflicting with each other, and a script
        run that Streamlit superseded leaves its wait. The commit takes the lock: the
        session's cache must change in the store's order, and a key Streamlit refuses
        (a widget drawn this run) must fail before the store changes. Returns (committed,
        new value); not committed on a version conflict.
        """
        with turn:
            current, version = read_from.read(key, default)
            new = check(key, fn(current))
            lock, storage = self._enter(op)
            with lock:
                if storage is not read_from:
                    return False, None  # reconfigured or another identity meanwhile: again
                try:
                    storage.apply([(key, new)], expected_version=version)
                except VersionConflict:
                    return False, None
        return True, new

    def increment(self, key: str, by: int | float = 1) -> Any:
        """Atomically add ``by`` to ``key`` (0 when unset); return the new value.

        Raises TypeError naming the key when the value or ``by`` is not a number.
        """
        if isinstance(by, bool) or not isinstance(by, (int, float)):
            raise TypeError(f"increment({key!r}, by=...): by must be a number, got {by!r:.40}")

        def add(value: Any) -> Any:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(
                    f"increment({key!r}): the current value is a {type(value).__name__}, "
                    "not a number; use mutate() or safe_set() for it"
                )
            return value + by

        return self._mutate(key, add, 0, "increment")

    def transaction(self, timeout: float | None = None) -> AbstractContextManager[Transaction]:
        """Hold the lock for a block whose writes apply together at its end, or not at all.

        Reads inside see the block's own staged writes. If the block raises
        anything (Streamlit's rerun/stop included), nothing is applied.
        Raises LockTimeoutError after ``timeout`` seconds, and as safe_get.
        """
        return self._transaction(timeout)

    @contextmanager
    def _transaction(self, timeout: float | None) -> Iterator[Transaction]:
        check_timeout(timeout)
        lock, storage = self._enter("transaction", timeout)
        turn = storage.turn(None) if lock.depth == 1 else None
        if turn is None:
            with lock:
                lock.ops += 1
                yield from self._in_transaction(storage)
            return
        # A stored scope: the block runs in the scope's turn, so this process's sessions of
        # one identity (tabs, threads) take turns instead of conflicting in the store.
        lock.release()
        with turn:
            lock, storage = self._enter("transaction", timeout)
            with lock:
                lock.ops += 1
                yield from self._in_transaction(storage)

    def _in_transaction(self, storage: Storage) -> Iterator[Transaction]:
        # A stored scope's reads come from one snapshot, loaded on the first read; its commit
        # checks that version (see PersistedReads.commit for another process's commits).
        tx = Transaction(storage.transaction_reads(), self.schema)
        try:
            yield tx
            # A run Streamlit superseded during the block applies nothing: its user has
            # moved past these writes (Streamlit would have stopped it at any st.*).
            yield_point()
        except BaseException:
            tx.close()
            raise
        tx.commit()

    # -- locks ----------------------------------------------------------------------
    def lock(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold this scope's re-entrant lock for a block. Raises LockTimeoutError, as safe_get."""
        return _Held(self, timeout)

    def session_lock(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """The design's name for :meth:`lock` (for ``shared``, the app-wide state's lock)."""
        return self.lock(timeout)

    @overload
    def with_session_lock(self, fn: F) -> F: ...
    @overload
    def with_session_lock(self, fn: None = None) -> _Held: ...
    def with_session_lock(self, fn: F | None = None) -> F | _Held:
        """The scope's lock as a context manager (``with x.with_session_lock():``) or a
        decorator (``@x.with_session_lock`` or ``@x.with_session_lock()``).

        Raises TypeError when given something that is not callable.
        """
        if fn is None:
            return _Held(self, None)
        if not callable(fn):
            raise TypeError(f"with_session_lock decorates a function, got {type(fn).__name__}")

        @functools.wraps(fn)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with _Held(self, None):
                return fn(*args, **kwargs)

        return locked  # type: ignore[return-value]

    def keys(self) -> list[str]:
        """The keys set in this scope (a snapshot). Raises as safe_get."""
        lock, storage = self._enter("keys")
        with lock:
            return sorted(storage.user_keys())


class _Held(ContextDecorator):
    """A scope's lock held for a ``with`` block or a decorated call."""

    def __init__(self, scope: Scope, timeout: float | None) -> None:
        check_timeout(timeout)
        self._scope = scope
        self._timeout = timeout
        self._held = threading.local()

    def _recreate_cm(self) -> _Held:
        # Each decorated call gets its own holder, so one decorator serves many threads.
        return _Held(self._scope, self._timeout)

    def __enter__(self) -> None:
        lock, _ = self._scope._enter("session_lock", self._timeout)  # let go in __exit__
        stack: list[ScopeLock] = self._held.__dict__.setdefault("stack", [])
        stack.append(lock)

    def __exit__(self, *exc: object) -> None:
        self._held.stack.pop().release()
