"""Persisted state: declared keys written through to a store, loaded back by identity.

A session's persisted keys live in the store under its identity's namespace and,
as a cache, in its ``st.session_state``: loaded on the session's first call,
written through on every write (one round trip), so a reload, a restart or another
replica with the same identity finds them. Read-modify-writes (``mutate``,
``increment``, transactions) check the namespace's version when they commit and
start over when another process got there first, so no update is lost between
processes. With a store configured, ``shared`` lives wholly in the store.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from . import _compat, _events, identity
from ._locks import ScopeLock
from .errors import StoreUnavailable, VersionConflict
from .serialization import Serializer
from .stores.base import Snapshot, Store
from .transaction import _DELETE, apply_changes

_MISSING: Any = object()
MAX_ATTEMPTS = 200
LOAD_RETRY = 5.0  # seconds between attempts to load a session's state from a failing store
_log = _events.log


def _backoff(attempt: int) -> None:
    # Contending writers in other processes: step aside for a random moment.
    time.sleep(random.uniform(0, min(0.001 * attempt, 0.02)))


class Persistence:
    """What is persisted, where, for whom; shared by the manager and its handles."""

    def __init__(
        self,
        store: Store,
        serializer: Serializer,
        keys: Callable[[str], bool],
        identity_mode: identity.IdentityMode,
        secret: bytes | None,
        query_param: str,
        ttl: float | None,
    ) -> None:
        self.store = store
        self.serializer = serializer
        self.persists = keys
        self.identity_mode = identity_mode
        self.secret = secret
        self.query_param = query_param
        self.ttl = ttl

    def session_view(self, lock: ScopeLock, local: Any, session_id: str) -> PersistentView:
        """The session's state with persistence, loaded for its identity.

        Called with the session lock held. The identity is worked out once per script
        run (a login, a pasted link or a page switch can change it between runs) and
        the state is loaded again when it changes. A worker before any script run gets
        this session alone, not cached. A failed load is retried at most every
        ``LOAD_RETRY`` seconds, so a hung store does not stall every call.
        """
        extra = lock.extra if lock.extra is not None else {}
        run = _compat.current_run_marker()
        namespace = extra.get("namespace")
        if run is not None and extra.get("run") is not run:
            who = identity.resolve(self.identity_mode, session_id, self.secret,
                                   self.query_param, extra.get("identity"))
            extra["run"], extra["identity"] = run, who
            if identity.namespace_for(who) != namespace:
                namespace = None  # a new identity: load it
        elif namespace is None and run is None:
            known = extra.get("identity") or "session:" + session_id
            view = PersistentView(self, identity.namespace_for(str(known)), local)
            view.refresh_quietly()
            return view  # not cached: the script's next run works the identity out
        lock.extra = extra
        if isinstance(namespace, str):
            return PersistentView(self, namespace, local)
        namespace = identity.namespace_for(str(extra["identity"]))
        view = PersistentView(self, namespace, local)
        failed_at = extra.get("load_failed_at")
        if isinstance(failed_at, float) and time.monotonic() - failed_at < LOAD_RETRY:
            view.load_error = extra.get("load_error")  # type: ignore[assignment]
            return view
        try:
            view.refresh(self.store.load(namespace))
        except StoreUnavailable as exc:
            # The page goes on: keys that are not persisted still work; persisted ones
            # raise this until a later load succeeds.
            view.load_error = exc
            extra["load_failed_at"], extra["load_error"] = time.monotonic(), exc
            return view
        extra.pop("load_failed_at", None)
        extra["namespace"] = namespace
        return view


class PersistentView:
    """A scope's state seen through persistence: local cache (a session) or none (shared)."""

    __slots__ = ("_local", "_p", "load_error", "namespace")

    def __init__(self, persistence: Persistence, namespace: str, local: Any) -> None:
        self._p = persistence
        self.namespace = namespace
        self._local = local  # None: read everything from the store (shared)
        self.load_error: StoreUnavailable | None = None

    def _persisted(self, key: str) -> bool:
        return self._local is None or self._p.persists(key)

    def refresh(self, snap: Snapshot) -> None:
        """Put the store's persisted values into the local cache."""
        if self._local is None:
            return
        for key, value in self._decoded(snap).items():
            if self._p.persists(key):
                self._local[key] = value

    def refresh_quietly(self) -> None:
        """refresh(), leaving the cache as it is if the store cannot be read now."""
        try:
            self.refresh(self._p.store.load(self.namespace))
        except StoreUnavailable as exc:
            self.load_error = exc

    def _decoded(self, snap: Snapshot) -> dict[str, Any]:
        # One value that no longer decodes (say, written by another serializer) must not
        # lock its identity out of everything else: skip it, naming the key only.
        values = {}
        for key, data in snap.values.items():
            try:
                values[key] = self._p.serializer.loads(key, data)
            except Exception as exc:
                _log.warning("safestate: stored value of %r could not be read (%s); skipped",
                             key, type(exc).__name__)
        return values

    # -- the mapping the scopes use -----------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if self._local is not None:
            if self.load_error is not None and self._p.persists(key):
                raise self.load_error
            return self._local[key]
        data = self._p.store.get(self.namespace, key)
        if data is None:
            raise KeyError(key)
        return self._p.serializer.loads(key, data)

    def __setitem__(self, key: str, value: Any) -> None:
        self.apply([(key, value)])

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError when absent, as a mapping does
        self.apply([(key, _DELETE)])

    @property
    def filtered_state(self) -> dict[str, Any]:
        if self._local is not None:
            return _compat.snapshot(self._local)
        snap = self._p.store.load(self.namespace)
        return {k: self._p.serializer.loads(k, v) for k, v in snap.values.items()}

    # -- several keys at once ---------------------------------------------------------------
    def apply(
        self, changes: Iterable[tuple[str, Any]], expected_version: int | None = None
    ) -> None:
        """Apply (key, value-or-_DELETE) pairs: one store commit for the persisted ones.

        All or nothing: values are encoded first, the local cache is changed with an
        undo log, and undone if the store refuses. Raises VersionConflict,
        StoreUnavailable, NotSerializableError.
        """
        changes = list(changes)
        dumps = self._p.serializer.dumps
        sets = {k: dumps(k, v) for k, v in changes if v is not _DELETE and self._persisted(k)}
        deletes = [k for k, v in changes if v is _DELETE and self._persisted(k)]
        if self._local is None:
            self._p.store.commit(self.namespace, sets, deletes,
                                 expected_version=expected_version, ttl=self._p.ttl)
            return
        # The cache first (Streamlit may refuse a key, e.g. a widget drawn this run), then
        # the store; if the store refuses, the cache is put back: raising changes nothing.
        undo = apply_changes(self._local, changes)
        try:
            if sets or deletes:
                self._p.store.commit(self.namespace, sets, deletes,
                                     expected_version=expected_version, ttl=self._p.ttl)
        except BaseException:
            undo()
            raise

    def transaction_reads(self) -> TransactionReads:
        """What a transaction reads: loaded from the store on its first read only."""
        return TransactionReads(self)

    def snapshot(self) -> tuple[dict[str, Any], int]:
        """A consistent read for a transaction: (values, version).

        The store's persisted values over the local cache, without writing the cache
        (a persisted key may belong to a widget already drawn in this run).
        """
        snap = self._p.store.load(self.namespace)
        stored = self._decoded(snap)
        if self._local is None:
            return stored, snap.version
        merged = _compat.snapshot(self._local)
        merged.update((k, v) for k, v in stored.items() if self._p.persists(k))
        return merged, snap.version

    def mutate(self, key: str, fn: Callable[[Any], Any], default: Any,
               check: Callable[[str, Any], Any]) -> Any:
        """Read-modify-write that loses nothing to other processes (optimistic, retried).

        ``fn`` may run more than once when others write the same namespace meanwhile.
        """
        if not self._persisted(key):
            current = self[key] if self._has(key) else default
            new = check(key, fn(current))
            self[key] = new
            return new
        for attempt in range(MAX_ATTEMPTS):
            snap = self._p.store.load(self.namespace)
            data = snap.values.get(key)
            current = default if data is None else self._p.serializer.loads(key, data)
            new = check(key, fn(current))
            try:
                self.apply([(key, new)], expected_version=snap.version)
            except VersionConflict:
                _backoff(attempt)
                continue
            return new
        raise VersionConflict(self.namespace, -1, -1)

    def _has(self, key: str) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True


class TransactionReads(Mapping[str, Any]):
    """A transaction's view of a persisted scope, read in one round trip on first use.

    A transaction that only writes never reads the store: its commit is its one
    round trip. One that reads commits with the version it read (VersionConflict,
    with nothing applied, if another process wrote meanwhile).
    """

    def __init__(self, view: PersistentView) -> None:
        self._view = view
        self._values: dict[str, Any] | None = None
        self.version: int | None = None

    def _loaded(self) -> dict[str, Any]:
        if self._values is None:
            self._values, self.version = self._view.snapshot()
        return self._values

    def __getitem__(self, key: str) -> Any:
        return self._loaded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def commit(self, changes: list[tuple[str, Any]]) -> None:
        """Apply the transaction's changes, checking the version if anything was read."""
        self._view.apply(changes, expected_version=self.version)
