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
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import _compat, _events, identity
from ._keys import DELETE, MISSING
from ._locks import ScopeLock, Turn
from ._record import SessionRecord
from .errors import (
    StaleWriteError,
    StoreUnavailable,
    UnreadableValueError,
    VersionConflict,
    WriteInDoubt,
)
from .live import LiveUpdates
from .serialization import Serializer
from .storage import Change, LocalStorage, apply_changes
from .stores.base import Committed, Snapshot, Store

#: Seconds between attempts to load a session's state from a failing store.
LOAD_RETRY = 5.0
#: How many times a transaction's commit tries again after other processes committed
#: keys it did not read.
COMMIT_ATTEMPTS = 50
_log = _events.log


@dataclass(slots=True, eq=False)
class PersistedSession:
    """Persistence's part of a session's record (see ``Persistence.session_view``)."""

    #: The persistence (configuration) this part was last loaded for.
    persistence: Persistence | None = None
    #: The script run the identity was last worked out in (``_compat.current_run_marker``).
    run: object = None
    #: The session's identity ("browser:<token>", "user:<email>", ...), once worked out.
    identity: str | None = None
    #: The namespace in force, loaded; None while a load is due.
    namespace: str | None = None
    #: The namespace whose values the session's cache holds.
    loaded: str | None = None
    #: When the last load failed (monotonic seconds) and why.
    load_failed_at: float | None = None
    load_error: StoreUnavailable | None = None
    #: A write's outcome is unknown: the next load makes the cache match the store exactly.
    in_doubt: bool = False
    #: identity="user" fell back to this session alone, and the developer was told.
    warned_no_user: bool = False


@dataclass(slots=True, eq=False)
class SessionViews:
    """Persistence's other part of a session's record: the session's kept views.

    Apart from ``PersistedSession`` because a view refers to that part: kept there, the two
    would refer to each other and an ended session would wait for a garbage collection.
    """

    #: The script's view, kept while the persistence and the namespace are.
    script: PersistentView | None = None
    #: The view its worker threads write through.
    worker: PersistentView | None = None


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
        live: LiveUpdates | None = None,
    ) -> None:
        self.store = store
        self.serializer = serializer
        self.persists = keys
        self.identity_mode = identity_mode
        self.secret = secret
        self.query_param = query_param
        self.ttl = ttl
        #: Reruns the sessions that read a key when it changes (None: nobody is rerun).
        self.live = live
        # The newest version of each namespace this process knows of: a session's cache
        # older than that is stale and is read again on its next read. Writes here set
        # it at once; the store reports other processes' commits (``_committed``).
        self.latest: dict[str, int] = {}
        #: Bumped when anything may have changed unseen (a drop, a listener's gap).
        self.generation = 0
        # One turn per namespace: the read-modify-writes of every session of an identity
        # (tabs, threads) take turns in this process instead of conflicting in the store.
        self._turns: weakref.WeakValueDictionary[str, ScopeLock] = (
            weakref.WeakValueDictionary())
        self._turns_lock = threading.Lock()
        self._subscription = store.subscribe(self._committed)

    def turn_of(self, namespace: str) -> ScopeLock:
        """The turn of ``namespace``'s read-modify-writes in this process (see Turn)."""
        with self._turns_lock:
            turn = self._turns.get(namespace)
            if turn is None:
                turn = self._turns[namespace] = ScopeLock(
                    "turn", "the read-modify-writes of one identity's state")
            return turn

    def echo(self) -> bool:
        """Whether the calling run was started by a live update (its writes rerun nobody)."""
        return self.live is not None and self.live.echo_now()

    def _newest(self, namespace: str, version: int) -> None:
        with self._turns_lock:  # the listener thread and writers: never backwards
            if version > self.latest.get(namespace, 0):
                self.latest[namespace] = version

    def wrote(self, namespace: str, version: int, keys: Iterable[str]) -> None:
        """A commit from this process: other sessions' caches of ``namespace`` are stale now,
        and the sessions that read ``keys`` rerun (not the writer)."""
        self._newest(namespace, version)
        if self.live is not None:
            self.live.changed(namespace, keys)

    def _committed(self, change: Committed) -> None:
        """Another process committed (the store's listener thread): caches catch up on their
        next read, and the sessions that read a changed key rerun."""
        namespace = change.namespace
        if namespace is None or change.keys is None:
            self.generation += 1  # a drop, or messages missed: every cache reads again
        if namespace is not None:
            self._newest(namespace, change.version)
        if self.live is not None and not change.echo:
            self.live.changed(namespace, change.keys, by_caller=False)

    def close(self) -> None:
        """Stop hearing of other processes' commits (the settings are being replaced)."""
        self._subscription.close()

    def session_view(self, record: SessionRecord, worker: bool = False) -> PersistentView:
        """The session's state with persistence, loaded for its identity.

        Called with the session lock held. The identity is worked out once per script
        run (a login, a pasted link or a page switch can change it between runs) and
        the state is loaded again when it changes; the previous identity's persisted
        keys leave the session first. A worker before any script run gets this session
        alone, not marked loaded. A failed load is retried at most every ``LOAD_RETRY``
        seconds, so a hung store does not stall every call. ``worker``: the view for a
        thread without a script run context (it writes through ``record.worker``).
        """
        part = record.part(PersistedSession)
        if part.persistence is not self:
            # configure() ran since this session last loaded: what it knew of the old
            # settings' store (its namespace, its failure, its views) no longer applies.
            part.namespace = part.load_failed_at = part.load_error = None
            record.reset(SessionViews)
            part.persistence = self
        run = _compat.current_run_marker()
        if run is not None and part.run is not run:
            self._work_out_identity(record, part, run)
        elif part.namespace is None and run is None:
            # A worker before the script's first run: the script's next run works the
            # identity out; until then this session alone, refreshed, not marked loaded.
            known = part.identity or "session:" + record.session_id
            view = self._view(record, part, identity.namespace_for(known), worker)
            view.refresh_quietly()
            return view
        namespace = part.namespace
        if namespace is None:
            return self._load(record, part, worker)
        kept = self._view(record, part, namespace, worker)  # the steady state: the kept view
        kept.load_error = None
        return kept

    def _work_out_identity(self, record: SessionRecord, part: PersistedSession, run: object,
                           ) -> None:
        """A script run's first call: whose state it is now (a namespace to load, if new)."""
        who = identity.resolve(self.identity_mode, record.session_id, self.secret,
                               self.query_param, part.identity)
        part.run, part.identity = run, who
        if identity.namespace_for(who) != part.namespace:
            # A new identity: until it loads, nothing reads or writes the old one's.
            part.namespace = None
        if self.identity_mode == "user" and who.startswith("session:"):
            _warn_no_user(part)

    def _load(self, record: SessionRecord, part: PersistedSession, worker: bool,
              ) -> PersistentView:
        """Load the identity's namespace into the session's cache; its view either way."""
        assert part.identity is not None  # worked out in this script run or an earlier one
        namespace = identity.namespace_for(part.identity)
        view = self._view(record, part, namespace, worker)
        if part.loaded is not None and part.loaded != namespace:
            # Another identity's values must never be seen by this one, even when the
            # new identity's load fails or does not hold every key.
            self._forget(view.cache)
            part.loaded = None
        failed_at = part.load_failed_at
        if failed_at is not None and time.monotonic() - failed_at < LOAD_RETRY:
            view.load_error = part.load_error
            return view
        try:
            view.refresh(self.store.load(namespace), exact=part.in_doubt)
        except StoreUnavailable as exc:
            # The page goes on: keys that are not persisted still work; persisted ones
            # raise this until a later load succeeds.
            view.load_error = part.load_error = exc
            part.load_failed_at = time.monotonic()
            return view
        view.load_error = part.load_error = part.load_failed_at = None
        part.in_doubt = False
        part.namespace = part.loaded = namespace
        return view

    def _view(self, record: SessionRecord, part: PersistedSession, namespace: str,
              worker: bool) -> PersistentView:
        """The session's view of ``namespace``: the one kept in its ``SessionViews``, or a new
        one kept there. (A read-modify-write commits only through the view it read with.)"""
        views = record.part(SessionViews)
        kept = views.worker if worker else views.script
        if kept is not None and kept.namespace == namespace:
            return kept
        local = record.worker if worker else record.local
        assert local is not None  # made with the record by the session manager
        view = PersistentView(self, namespace, local, part)
        if worker:
            views.worker = view
        else:
            views.script = view
        return view

    def _forget(self, local: LocalStorage) -> None:
        """Take every persisted key out of a session's cache; declared defaults come back."""
        for key in local.user_keys():
            if self.persists(key):
                with contextlib.suppress(KeyError):
                    del local[key]
        for key, declared in self.serializer.schema.fields.items():
            if self.persists(key) and declared.has_default():
                # A widget drawn this run refuses the write: its key stays unset, and a
                # typed read gives the default then.
                with contextlib.suppress(Exception):
                    local[key] = declared.make_default()


def _warn_no_user(part: PersistedSession) -> None:
    """Say once per session that identity="user" fell back to this session alone."""
    if part.warned_no_user:
        return
    part.warned_no_user = True
    fix = ("Call st.login() first, or use identity='browser'." if _compat.at_least(
        _compat.ST_LOGIN) else f"Streamlit {_compat.STREAMLIT_VERSION} has no st.login "
        f"(it came in {_compat.ST_LOGIN}): upgrade Streamlit, or use identity='browser'.")
    message = ("safestate: identity='user' but nobody is logged in (st.user): this "
               "session's persisted state is kept for this session only and a reload "
               f"starts afresh. {fix}")
    _log.warning("%s (%s)", message, _compat.current_label())
    if _compat.show_developer_notes():
        _compat.toast(message.removeprefix("safestate: "), icon=":material/person_off:")


class PersistentView:
    """A scope's state seen through persistence: a ``Storage`` whose persisted keys are in a store.

    A session's view caches them in the session's memory (``cache``), loaded by
    ``Persistence.session_view``; the shared state's view has no cache and reads the store.
    """

    __slots__ = ("_cache", "_p", "_part", "_turn", "generation", "load_error", "namespace",
                 "version")
    #: Persisted keys are read with the store's version (a key kept in memory has none).
    versioned = True

    def __init__(self, persistence: Persistence, namespace: str, cache: LocalStorage | None,
                 part: PersistedSession | None = None) -> None:
        self._p = persistence
        self.namespace = namespace
        self._cache = cache  # None: read everything from the store (shared)
        self._part = part  # the session's persistence bookkeeping, if a session's
        self._turn = persistence.turn_of(namespace)  # kept: the registry holds it weakly
        #: Why the session's last load failed; persisted reads raise it until one succeeds.
        self.load_error: StoreUnavailable | None = None
        #: The store's version the cache holds, and the persistence's generation it was read
        #: in; older than the newest known, the cache is read again before a read.
        self.version = 0
        self.generation = persistence.generation

    @property
    def cache(self) -> LocalStorage:
        """The session's memory this view caches persisted keys in."""
        assert self._cache is not None, "the shared state's view has no cache"
        return self._cache

    def persisted(self, key: str) -> bool:
        """Whether ``key`` lives in the store (every key of a view without a local cache)."""
        return self._cache is None or self._p.persists(key)

    def refresh(self, snap: Snapshot, exact: bool = False) -> None:
        """Put the store's persisted values into the local cache.

        ``exact`` also drops cached persisted keys the store does not hold (after a write
        whose outcome was unknown, the store is the only truth).
        """
        cache = self._cache
        if cache is None:
            return
        values = self._decoded(snap)
        if exact:
            for key in cache.user_keys():
                if self._p.persists(key) and key not in snap.values:
                    with contextlib.suppress(KeyError):
                        del cache[key]
        for key, value in values.items():
            if self._p.persists(key):
                # A widget drawn in this run keeps the value it shows (Streamlit refuses the
                # write); the next run's read brings the new one.
                with contextlib.suppress(Exception):
                    cache[key] = value
        self.version = snap.version

    def _stale(self) -> bool:
        """Whether another session or process committed since the cache was read."""
        p = self._p
        return self.version < p.latest.get(self.namespace, 0) or self.generation != p.generation

    def catch_up(self) -> None:
        """Read the namespace again if another session or process changed it since.

        Raises StoreUnavailable (a stale value is never served as current).
        """
        if self._cache is not None and self._stale():
            generation = self._p.generation  # before the load: a later change reads again
            self.refresh(self._p.store.load(self.namespace), exact=True)
            self.generation = generation

    def refresh_quietly(self) -> None:
        """refresh(), leaving the cache as it is if the store cannot be read now."""
        try:
            generation = self._p.generation
            self.refresh(self._p.store.load(self.namespace))
            self.generation = generation
            self.load_error = None
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

    # -- Storage --------------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        p = self._p
        if self._cache is not None:
            if p.persists(key):
                if self.load_error is not None:
                    raise self.load_error
                if self.version < p.latest.get(self.namespace, 0) or (
                        self.generation != p.generation):
                    self.catch_up()
                if p.live is not None:
                    p.live.read(self.namespace, key)
            return self._cache[key]
        if p.live is not None:
            p.live.read(self.namespace, key)
        data = self._p.store.get(self.namespace, key)
        if data is None:
            raise KeyError(key)
        return self._p.serializer.loads(key, data)

    def __setitem__(self, key: str, value: Any) -> None:
        self.apply([(key, value)])

    def __delitem__(self, key: str) -> None:
        # KeyError when absent, as a mapping does; a value that no longer decodes can go.
        if self._cache is not None:
            self[key]
        elif self._p.store.get(self.namespace, key) is None:
            raise KeyError(key)
        self.apply([(key, DELETE)])

    def user_keys(self) -> list[str]:
        """The keys set here, without decoding a value."""
        if self._cache is not None:
            self.catch_up()
            return self._cache.user_keys()
        return list(self._p.store.load(self.namespace).values)

    def snapshot(self) -> dict[str, Any]:
        """Every key and value: the session's cache, or the shared state's store."""
        if self._cache is not None:
            self.catch_up()
            return self._cache.snapshot()
        snap = self._p.store.load(self.namespace)
        return {k: self._p.serializer.loads(k, v) for k, v in snap.values.items()}

    def clear(self) -> None:
        """Remove every key: the cache's, and the namespace from the store (one round trip)."""
        if self._cache is not None:
            self.apply([(k, DELETE) for k in self.user_keys()])
        else:
            self._p.store.drop(self.namespace)

    def apply(self, changes: Iterable[Change], expected_version: int | None = None) -> None:
        """Apply (key, value-or-DELETE) pairs: one store commit for the persisted ones.

        All or nothing: values are encoded first, the local cache is changed with an
        undo log, and undone if the store refuses. Raises VersionConflict,
        StoreUnavailable, NotSerializableError.
        """
        changes = list(changes)
        dumps = self._p.serializer.dumps
        sets = {k: dumps(k, v) for k, v in changes if v is not DELETE and self.persisted(k)}
        deletes = [k for k, v in changes if v is DELETE and self.persisted(k)]
        p = self._p
        if self._cache is None:
            version = p.store.commit(self.namespace, sets, deletes,
                                     expected_version=expected_version, ttl=p.ttl,
                                     echo=p.echo())
            p.wrote(self.namespace, version, [*sets, *deletes])
            return
        # The cache first (Streamlit may refuse a key, e.g. a widget drawn this run), then
        # the store; if the store refuses, the cache is put back: raising changes nothing.
        undo = apply_changes(self._cache, changes)
        try:
            if sets or deletes:
                version = p.store.commit(self.namespace, sets, deletes,
                                         expected_version=expected_version, ttl=p.ttl,
                                         echo=p.echo())
                if version == self.version + 1 and not self._stale():
                    self.version = version  # nobody else committed in between: still current
                p.wrote(self.namespace, version, [*sets, *deletes])
        except WriteInDoubt:
            undo()
            if self._part is not None:
                # The store may hold the write or not: the next call reads it back, so
                # the cache shows what the store holds, whichever it is.
                self._part.namespace = None
                self._part.in_doubt = True
            raise
        except BaseException:
            undo()
            raise

    def noted(self, key: str) -> None:
        """Note a read of ``key`` for live updates (a transaction's read)."""
        if self._p.live is not None and self.persisted(key):
            self._p.live.read(self.namespace, key)

    def transaction_reads(self) -> PersistedReads:
        """What a transaction reads: loaded from the store on its first read only."""
        return PersistedReads(self)

    def snapshot_versioned(
        self, unreadable: dict[str, UnreadableValueError] | None = None
    ) -> tuple[dict[str, Any], int]:
        """A consistent read for a transaction: (values, version).

        The store's persisted values over the local cache, without writing the cache
        (a persisted key may belong to a widget already drawn in this run). Values that
        do not decode go into ``unreadable``.
        """
        snap = self._p.store.load(self.namespace)
        stored = self._decoded(snap, unreadable)
        if self._cache is None:
            return stored, snap.version
        merged = self._cache.snapshot()
        merged.update((k, v) for k, v in stored.items() if self._p.persists(k))
        return merged, snap.version

    def read(self, key: str, default: Any) -> tuple[Any, int | None]:
        """``key``'s value in the store (``default`` when unset) and the version read.

        One round trip for a persisted key; a commit with that version refuses if another
        writer came first. A key kept in the session only is read from its memory,
        unversioned. Raises StoreUnavailable, UnreadableValueError.
        """
        if not self.persisted(key):
            return self.cache.read(key, default)
        snap = self._p.store.load(self.namespace)
        data = snap.values.get(key)
        return (default if data is None else self._p.serializer.loads(key, data)), snap.version

    def turn(self, key: str | None) -> Turn | None:
        """The scope's turn for read-modify-writes of a stored key (they read outside its lock)."""
        if key is not None and not self.persisted(key):
            return None
        return Turn(self._turn)


def _equal(a: Any, b: Any) -> bool:
    """Whether two decoded values are equal (one that cannot say, e.g. an array, is not)."""
    try:
        return a is b or bool(a == b)
    except Exception:
        return False


class PersistedReads(Mapping[str, Any]):
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
        # What the block read (key -> value, MISSING when unset); None: every key (iterated).
        self._read: dict[str, Any] | None = {}

    def _loaded(self) -> dict[str, Any]:
        if self._values is None:
            self._values, self.version = self._view.snapshot_versioned(self._unreadable)
        return self._values

    def __getitem__(self, key: str) -> Any:
        values = self._loaded()
        if key in self._unreadable:  # a read must not take an unreadable value for unset
            raise self._unreadable[key]
        if self._read is not None:
            self._read[key] = values.get(key, MISSING)
        self._view.noted(key)
        return values[key]

    def __iter__(self) -> Iterator[str]:
        self._read = None
        return iter([*self._loaded(), *self._unreadable])

    def __len__(self) -> int:
        self._read = None
        return len(self._loaded()) + len(self._unreadable)

    def commit(self, changes: list[Change]) -> None:
        """Apply the transaction's changes, checking the version if anything was read.

        When another process committed since the read, the changes still apply if every
        value the block read is unchanged (they were computed from current values);
        otherwise StaleWriteError, with nothing applied.
        """
        version = self.version
        for _ in range(COMMIT_ATTEMPTS):
            try:
                self._view.apply(changes, expected_version=version)
                return
            except VersionConflict:
                now, version = self._view.snapshot_versioned({})
                read = self._read
                before = self._values or {}
                if read is None:
                    changed = sorted(k for k in {*now, *before}
                                     if not _equal(now.get(k, MISSING), before.get(k, MISSING)))
                else:
                    changed = [k for k, v in read.items() if not _equal(now.get(k, MISSING), v)]
                if changed:
                    raise StaleWriteError(changed, "block") from None
        raise VersionConflict(self._view.namespace, version or 0, -1)
