"""The operations every state scope offers, written once.

A scope is somewhere state lives behind one lock: the calling session
(``session_manager``), a given session reached from a worker thread
(``SessionHandle``), or the app-wide ``shared`` state. Subclasses say how to find
the lock and the underlying mapping; everything else is here.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ContextDecorator, contextmanager
from typing import Any, TypeVar, cast, overload

from ._compat import user_keys, yield_point
from ._locks import ScopeLock, check_timeout
from .errors import EmptyKeyError, InvalidKeyError, NotAMappingError, VersionConflict
from .persistence import MAX_ATTEMPTS, PersistentView, Turn, backoff
from .schema import SchemaRegistry
from .transaction import Transaction, apply_changes

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_MISSING: Any = object()


def _unchecked(key: str, value: Any) -> Any:
    return value


def _read_and_commit(state: PersistentView, key: str, fn: Callable[[Any], Any], default: Any,
                     check: Callable[[str, Any], Any]) -> tuple[bool, Any]:
    """Read, compute and commit with the version read: (committed, new value)."""
    current, version = state.read(key, default)
    new = check(key, fn(current))
    try:
        state.apply([(key, new)], expected_version=version)
    except VersionConflict:
        return False, None
    return True, new


def check_key(key: object) -> str:
    """Return ``key`` if it is a non-empty str. Raises InvalidKeyError, EmptyKeyError."""
    if type(key) is str and key:
        return key
    if not isinstance(key, str):
        raise InvalidKeyError(key)
    if not key:
        raise EmptyKeyError()
    return key


class Scope:
    """State behind one lock, with the safe_* / mutate / transaction API."""

    #: How errors and stats name this scope.
    scope_name = "state"
    #: Declared (typed) keys whose writes are validated; None for scopes without schemas.
    _schema: SchemaRegistry | None = None

    # -- what a subclass provides ---------------------------------------------
    def _enter(self, op: str, timeout: float | None = None) -> tuple[ScopeLock, Any]:
        """Take the scope's lock; return it and the mapping it guards."""
        raise NotImplementedError

    # -- reads ------------------------------------------------------------------
    def safe_get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is not set.

        Raises InvalidKeyError/EmptyKeyError for a bad key, NoSessionError outside a session.
        """
        check_key(key)
        lock, state = self._enter("safe_get")
        try:
            lock.ops += 1
            try:
                return state[key]
            except KeyError:
                return default
        finally:
            lock.release()

    def safe_exists(self, key: str) -> bool:
        """Whether ``key`` is set. Raises as safe_get."""
        return self.safe_get(key, _MISSING) is not _MISSING

    # -- writes -----------------------------------------------------------------
    def safe_set(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value``.

        Raises StateValidationError if ``key`` is declared with another type, and as safe_get.
        """
        check_key(key)
        schema = self._schema
        if schema is not None and schema.fields:
            value = schema.check(key, value)
        lock, state = self._enter("safe_set")
        try:
            lock.ops += 1
            state[key] = value
        finally:
            lock.release()

    def safe_update(self, updates: Mapping[str, Any]) -> None:
        """Set several keys at once: all of them or, if any fails, none.

        Raises NotAMappingError for a non-mapping, InvalidKeyError/EmptyKeyError
        naming a bad key (nothing written), NoSessionError outside a session.
        """
        if not isinstance(updates, Mapping):
            raise NotAMappingError(updates)
        changes = [(check_key(k), v) for k, v in updates.items()]
        schema = self._schema
        if schema is not None and schema.fields:
            changes = [(k, schema.check(k, v)) for k, v in changes]
        lock, state = self._enter("safe_update")
        try:
            lock.ops += 1
            if type(state) is PersistentView:
                state.apply(changes)
            else:
                apply_changes(state, changes)
        finally:
            lock.release()

    def safe_delete(self, key: str) -> bool:
        """Delete ``key``: True if it was set, False (no error) if not. Raises as safe_get."""
        check_key(key)
        lock, state = self._enter("safe_delete")
        try:
            lock.ops += 1
            try:
                del state[key]
            except KeyError:
                return False
            return True
        finally:
            lock.release()

    # -- read-modify-write --------------------------------------------------------
    def mutate(self, key: str, fn: Callable[[Any], T], default: Any = None) -> T:
        """Atomically replace ``key``'s value by ``fn(value)`` and return the new value.

        ``fn`` gets ``default`` when the key is not set. If ``fn`` raises, the state
        is unchanged and the exception propagates. For a key kept in a store, ``fn`` may
        run more than once when another writer commits first (optimistic, retried).
        Raises TypeError if ``fn`` is not callable, StateValidationError if the result
        breaks a declared type, and as safe_get.
        """
        check_key(key)
        if not callable(fn):
            raise TypeError(f"mutate({key!r}, fn): fn must be callable, got {type(fn).__name__}")
        schema = self._schema
        check = schema.check if schema is not None and schema.fields else _unchecked
        for attempt in range(MAX_ATTEMPTS):
            lock, state = self._enter("mutate")
            try:
                if attempt == 0:
                    lock.ops += 1
                if type(state) is not PersistentView or not state.persisted(key):
                    try:
                        current = state[key]
                    except KeyError:
                        current = default
                    new = check(key, fn(current))
                    state[key] = new
                    return cast("T", new)
                if lock.depth > 1:
                    # The caller holds the lock already (a locked block, a transaction):
                    # read and commit under it, as it asked.
                    done, new = _read_and_commit(state, key, fn, default, check)
                    if done:
                        return cast("T", new)
                    turn = None
                else:
                    turn = state.turn()
            finally:
                lock.release()
            if turn is not None:
                done, new = self._turn_commit(turn, key, fn, default, check, state)
                if done:
                    return cast("T", new)
            backoff(attempt)  # another process wrote first: read again
        raise VersionConflict(key, -1, -1)

    def _turn_commit(self, turn: Turn, key: str, fn: Callable[[Any], Any], default: Any,
                     check: Callable[[str, Any], Any], read_from: PersistentView,
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
            lock, state = self._enter("mutate")
            try:
                if type(state) is not PersistentView or state.namespace != read_from.namespace:
                    return False, None  # reconfigured or another identity meanwhile: again
                try:
                    state.apply([(key, new)], expected_version=version)
                except VersionConflict:
                    return False, None
            finally:
                lock.release()
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

        return self.mutate(key, add, 0)

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
        lock, state = self._enter("transaction", timeout)
        try:
            lock.ops += 1
            if type(state) is PersistentView:
                # Reads come from one snapshot, loaded on the first read; the commit checks
                # its version (VersionConflict if another process wrote meanwhile).
                reads = state.transaction_reads()
                tx = Transaction(reads, self._schema, reads.commit)  # type: ignore[arg-type]
            else:
                tx = Transaction(state, self._schema)
            try:
                yield tx
                # A run Streamlit superseded during the block applies nothing: its user
                # has moved past these writes (Streamlit would have stopped it at any st.*).
                yield_point()
            except BaseException:
                tx.close()
                raise
            tx.commit()
        finally:
            lock.release()

    # -- locks ----------------------------------------------------------------------
    def session_lock(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold this scope's re-entrant lock for a block. Raises LockTimeoutError, as safe_get."""
        return _Held(self, timeout)

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
        lock, state = self._enter("keys")
        try:
            return sorted(user_keys(state))
        finally:
            lock.release()


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
        lock, _ = self._scope._enter("session_lock", self._timeout)
        stack: list[ScopeLock] = self._held.__dict__.setdefault("stack", [])
        stack.append(lock)

    def __exit__(self, *exc: object) -> None:
        self._held.stack.pop().release()
