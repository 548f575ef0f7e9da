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

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from . import _compat, _events, identity
from ._locks import ScopeLock, locks_held
from .errors import StoreUnavailable, UnreadableValueError, WriteInDoubt
from .serialization import Serializer
from .stores.base import Snapshot, Store
from .transaction import _DELETE, apply_changes

_MISSING: Any = object()
MAX_ATTEMPTS = 200
LOAD_RETRY = 5.0  # seconds between attempts to load a session's state from a failing store
_log = _events.log


def backoff(attempt: int) -> None:
    """Sleep a random moment that grows with ``attempt``: a retry after a version conflict."""
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
        #: The shared state's turn for read-modify-writes (see Turn).
        self.shared_turn = ScopeLock("shared", "the shared state's read-modify-writes")

    def session_view(self, lock: ScopeLock, local: Any, session_id: str) -> PersistentView:
        """The session's state with persistence, loaded for its identity.

        Called with the session lock held. The identity is worked out once per script
        run (a login, a pasted link or a page switch can change it between runs) and
        the state is loaded again when it changes; the previous identity's persisted
        keys leave the session first. A worker before any script run gets this session
        alone, not cached. A failed load is retried at most every ``LOAD_RETRY``
        seconds, so a hung store does not stall every call.
        """
        extra = lock.extra if lock.extra is not None else {}
        if extra.get("persistence") is not self:
            # configure() ran since this session last loaded: what it knew of the old
            # settings' store (its namespace, its failure) no longer applies.
            for stale in ("namespace", "load_failed_at", "load_error"):
                extra.pop(stale, None)
            extra["persistence"] = self
        if "turn" not in extra:  # made here, under the session lock: one per session
            extra["turn"] = ScopeLock("turn", "this session's read-modify-writes")
        run = _compat.current_run_marker()
        namespace = extra.get("namespace")
        if run is not None and extra.get("run") is not run:
            who = identity.resolve(self.identity_mode, session_id, self.secret,
                                   self.query_param, extra.get("identity"))
            extra["run"], extra["identity"] = run, who
            if identity.namespace_for(who) != namespace:
                # A new identity: until it loads, nothing reads or writes the old one's.
                namespace = None
                extra.pop("namespace", None)
            if self.identity_mode == "user" and who.startswith("session:"):
                _warn_no_user(extra)
        elif namespace is None and run is None:
            lock.extra = extra  # its turn and in-doubt mark are the session's
            known = extra.get("identity") or "session:" + session_id
            view = PersistentView(self, identity.namespace_for(str(known)), local, extra)
            view.refresh_quietly()
            return view  # not cached: the script's next run works the identity out
        lock.extra = extra
        if isinstance(namespace, str):
            return PersistentView(self, namespace, local, extra)
        namespace = identity.namespace_for(str(extra["identity"]))
        view = PersistentView(self, namespace, local, extra)
        loaded = extra.get("loaded")
        if loaded is not None and loaded != namespace:
            # Another identity's values must never be seen by this one, even when the
            # new identity's load fails or does not hold every key.
            self._forget(local)
            extra["loaded"] = None
        failed_at = extra.get("load_failed_at")
        if isinstance(failed_at, float) and time.monotonic() - failed_at < LOAD_RETRY:
            view.load_error = extra.get("load_error")  # type: ignore[assignment]
            return view
        try:
            view.refresh(self.store.load(namespace), exact=bool(extra.get("in_doubt")))
        except StoreUnavailable as exc:
            # The page goes on: keys that are not persisted still work; persisted ones
            # raise this until a later load succeeds.
            view.load_error = exc
            extra["load_failed_at"], extra["load_error"] = time.monotonic(), exc
            return view
        for done in ("load_failed_at", "load_error", "in_doubt"):
            extra.pop(done, None)
        extra["namespace"] = extra["loaded"] = namespace
        return view

    def _forget(self, local: Any) -> None:
        """Take every persisted key out of a session's cache; declared defaults come back."""
        for key in _compat.user_keys(local):
            if self.persists(key):
                with contextlib.suppress(KeyError):
                    del local[key]
        for key, declared in self.serializer.schema.fields.items():
            if self.persists(key) and declared.has_default():
                # A widget drawn this run refuses the write: its key stays unset, and a
                # typed read gives the default then.
                with contextlib.suppress(Exception):
                    local[key] = declared.make_default()


def _warn_no_user(extra: dict[str, object]) -> None:
    """Say once per session that identity="user" fell back to this session alone."""
    if extra.get("warned_no_user"):
        return
    extra["warned_no_user"] = True
    message = ("safestate: identity='user' but nobody is logged in (st.user): this "
               "session's persisted state is kept for this session only and a reload "
               "starts afresh. Call st.login() first, or use identity='browser'.")
    _log.warning("%s (%s)", message, _events.current_label())
    if _compat.show_developer_notes():
        import streamlit as st

        st.toast(message.removeprefix("safestate: "), icon=":material/person_off:",
                 duration="long")


class PersistentView:
    """A scope's state seen through persistence: local cache (a session) or none (shared)."""

    __slots__ = ("_local", "_p", "_session", "load_error", "namespace")

    def __init__(self, persistence: Persistence, namespace: str, local: Any,
                 session: dict[str, object] | None = None) -> None:
        self._p = persistence
        self.namespace = namespace
        self._local = local  # None: read everything from the store (shared)
        self._session = session  # the session's persistence bookkeeping, if a session's
        self.load_error: StoreUnavailable | None = None

    def persisted(self, key: str) -> bool:
        """Whether ``key`` lives in the store (every key of a view without a local cache)."""
        return self._local is None or self._p.persists(key)

    def refresh(self, snap: Snapshot, exact: bool = False) -> None:
        """Put the store's persisted values into the local cache.

        ``exact`` also drops cached persisted keys the store does not hold (after a write
        whose outcome was unknown, the store is the only truth).
        """
        if self._local is None:
            return
        values = self._decoded(snap)
        if exact:
            for key in _compat.user_keys(self._local):
                if self._p.persists(key) and key not in snap.values:
                    with contextlib.suppress(KeyError):
                        del self._local[key]
        for key, value in values.items():
            if self._p.persists(key):
                self._local[key] = value

    def refresh_quietly(self) -> None:
        """refresh(), leaving the cache as it is if the store cannot be read now."""
        try:
            self.refresh(self._p.store.load(self.namespace))
        except StoreUnavailable as exc:
            self.load_error = exc

    def _decoded(
        self, snap: Snapshot, unreadable: dict[str, UnreadableValueError] | None = None
    ) -> dict[str, Any]:
        # One value that no longer decodes (say, written by another serializer) must not
        # lock its identity out of everything else: skip it, naming the key only, or
        # collect it in ``unreadable`` for a caller that raises when it is read.
        values = {}
        for key, data in snap.values.items():
            try:
                values[key] = self._p.serializer.loads(key, data)
            except UnreadableValueError as exc:
                if unreadable is not None:
                    unreadable[key] = exc
                else:
                    _log.warning("safestate: %s; skipped", exc)
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
        # KeyError when absent, as a mapping does; a value that no longer decodes can go.
        if self._local is not None:
            self[key]
        elif self._p.store.get(self.namespace, key) is None:
            raise KeyError(key)
        self.apply([(key, _DELETE)])

    def user_keys(self) -> list[str]:
        """The keys set here, without decoding a value."""
        if self._local is not None:
            return _compat.user_keys(self._local)
        return list(self._p.store.load(self.namespace).values)

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
        sets = {k: dumps(k, v) for k, v in changes if v is not _DELETE and self.persisted(k)}
        deletes = [k for k, v in changes if v is _DELETE and self.persisted(k)]
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
        except WriteInDoubt:
            undo()
            if self._session is not None:
                # The store may hold the write or not: the next call reads it back, so
                # the cache shows what the store holds, whichever it is.
                self._session.pop("namespace", None)
                self._session["in_doubt"] = True
            raise
        except BaseException:
            undo()
            raise

    def transaction_reads(self) -> TransactionReads:
        """What a transaction reads: loaded from the store on its first read only."""
        return TransactionReads(self)

    def snapshot(
        self, unreadable: dict[str, UnreadableValueError] | None = None
    ) -> tuple[dict[str, Any], int]:
        """A consistent read for a transaction: (values, version).

        The store's persisted values over the local cache, without writing the cache
        (a persisted key may belong to a widget already drawn in this run). Values that
        do not decode go into ``unreadable``.
        """
        snap = self._p.store.load(self.namespace)
        stored = self._decoded(snap, unreadable)
        if self._local is None:
            return stored, snap.version
        merged = _compat.snapshot(self._local)
        merged.update((k, v) for k, v in stored.items() if self._p.persists(k))
        return merged, snap.version

    def read(self, key: str, default: Any) -> tuple[Any, int]:
        """``key``'s value in the store (``default`` when unset) and the version read.

        One round trip; a commit with that version refuses if another writer came
        first. Raises StoreUnavailable, UnreadableValueError.
        """
        snap = self._p.store.load(self.namespace)
        data = snap.values.get(key)
        return (default if data is None else self._p.serializer.loads(key, data)), snap.version

    def turn(self) -> Turn:
        """The scope's turn for read-modify-writes that read outside its lock."""
        if self._session is None:
            return Turn(self._p.shared_turn)
        lock = self._session["turn"]
        assert isinstance(lock, ScopeLock)  # session_view made it
        return Turn(lock)


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


class TransactionReads(Mapping[str, Any]):
    """A transaction's view of a persisted scope, read in one round trip on first use.

    A transaction that only writes never reads the store: its commit is its one
    round trip. One that reads commits with the version it read (VersionConflict,
    with nothing applied, if another process wrote meanwhile).
    """

    def __init__(self, view: PersistentView) -> None:
        self._view = view
        self._values: dict[str, Any] | None = None
        self._unreadable: dict[str, UnreadableValueError] = {}
        self.version: int | None = None

    def _loaded(self) -> dict[str, Any]:
        if self._values is None:
            self._values, self.version = self._view.snapshot(self._unreadable)
        return self._values

    def __getitem__(self, key: str) -> Any:
        values = self._loaded()
        if key in self._unreadable:  # a read must not take an unreadable value for unset
            raise self._unreadable[key]
        return values[key]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._loaded(), *self._unreadable])

    def __len__(self) -> int:
        return len(self._loaded()) + len(self._unreadable)

    def commit(self, changes: list[tuple[str, Any]]) -> None:
        """Apply the transaction's changes, checking the version if anything was read."""
        self._view.apply(changes, expected_version=self.version)
