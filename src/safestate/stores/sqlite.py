"""``sqlite:///path/to/file.db``: durable, safe for several processes on one machine.

WAL mode lets readers run beside one writer; ``busy_timeout`` makes a writer wait
for another instead of failing; every commit is one ``BEGIN IMMEDIATE`` transaction,
so it is all or nothing even if the process is killed half-way. ``synchronous=NORMAL``
in WAL mode survives a killed process (the OS still has the write); only a power
loss can drop the last commits.

The file is opened by the first call that needs it, so an unreachable file fails
the calls that need it, not ``configure()``. If the file at the path is removed or
replaced while the app runs, the next call notices (one ``stat`` per round trip),
retires the connections to the old file and opens the file now at the path; a write
that went into the old file is refused, never acknowledged.

Every commit, drop and expiry swept also appends a row to a change log (namespace,
version, key names, the writing Store object's id) in its own transaction. A store
with subscribers polls the log from a thread of its own every ``?poll=`` seconds (0.1
by default), reading it only when ``PRAGMA data_version`` says another connection
wrote. Writers prune the log now and then: the last LOG_ROWS rows, and any younger
than LOG_SECONDS, are kept.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, quote, urlsplit

from .. import _events
from ..errors import StoreUnavailable, StoreURLError, VersionConflict
from .base import (
    EVERYTHING,
    Callback,
    Committed,
    FaultLog,
    Listener,
    Snapshot,
    Store,
    Subscription,
    next_version,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS safestate_namespaces (
    ns TEXT PRIMARY KEY, version INTEGER NOT NULL, expires_at REAL
);
CREATE TABLE IF NOT EXISTS safestate_items (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key)
);
CREATE TABLE IF NOT EXISTS safestate_changes (
    seq INTEGER PRIMARY KEY, ns TEXT NOT NULL, version INTEGER NOT NULL,
    keys TEXT, origin TEXT NOT NULL, at REAL NOT NULL
);
"""
# A row's seq is the largest so far plus one (pruning never removes the newest rows, so
# none is used twice): commits, one at a time, take them in order with no holes (a
# rolled-back insert gives its seq back), so a poller that finds a hole after the last seq
# it read knows rows were pruned unread. (Not AUTOINCREMENT: its counter costs a commit
# another page write, half the cost of the log.)

#: Seconds between two looks at the change log, unless the URL says ``?poll=``.
POLL = 0.1
#: Rows of the change log always kept, and the age (seconds) under which a row is kept.
LOG_ROWS, LOG_SECONDS = 10_000, 60.0
#: The log is pruned by the commit that writes every PRUNE_EVERY-th row.
PRUNE_EVERY = 1_000
#: Seconds the poller waits after its first failure; doubling, at most RETRY_MAX.
RETRY_MAX = 2.0

_FileId = tuple[int, int]  # (st_dev, st_ino): which file a path names


def _file_id(path: str, unseen: _FileId | None) -> _FileId | None:
    """The identity of the file at ``path``, None when there is none, ``unseen`` when it cannot
    be told (a passing stat error, e.g. on NFS, must not count as a removal: that would
    delete a live file's WAL)."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return unseen
    return found.st_dev, found.st_ino


class SQLiteStore(Store):
    """Namespaces in two tables of one SQLite file, over a small pool of connections."""

    kind = "sqlite"

    def __init__(self, url: str, busy_timeout: float = 10.0, pool_size: int = 8) -> None:
        """Check the URL; the file is opened on first use. Raises StoreURLError."""
        parts = urlsplit(url)
        # As SQLAlchemy does: sqlite:///x.db is relative, sqlite:////tmp/x.db absolute.
        path = parts.path[1:]
        if parts.netloc or not path:
            raise StoreURLError(url, "write sqlite:///relative.db or sqlite:////absolute/path.db")
        if ":memory:" in path or "mode=memory" in parts.query:
            # Each pooled connection would open a database of its own ("no such table").
            raise StoreURLError(url, "an in-memory SQLite database is per connection, so the "
                                "pooled connections would not share it; use memory:// for "
                                "state kept in this process")
        raw_poll = dict(parse_qsl(parts.query, keep_blank_values=True)).get("poll")
        try:
            self.poll = POLL if raw_poll is None else float(raw_poll)
        except ValueError:
            self.poll = math.nan
        if not (math.isfinite(self.poll) and self.poll > 0):
            raise StoreURLError(url, f"poll={raw_poll!r} is no positive number of seconds; "
                                "write e.g. ?poll=0.1")
        self.url = url
        self.path = path
        self._uri = ("file://" if path.startswith("/") else "file:") + quote(path)
        self._busy_timeout = busy_timeout
        self._pool_size = pool_size
        # A small pool: each Streamlit rerun runs on a new thread, and opening a
        # connection per thread would cost more than the query. A generation is the
        # connections to one file; when the path names another file, it is retired.
        self._lock = threading.Condition(threading.Lock())
        self._idle: list[sqlite3.Connection] = []
        self._generation = 0
        self._file: _FileId | None = None  # the file of the current generation; None: not open
        self._in_use = 0  # connections of the current generation in a round trip
        self._retired_in_use = 0  # connections of older generations still in one
        self._reopening = False
        self._origin = secrets.token_hex(8)  # tells this object's own log rows from others'
        self._listener = Listener(self, self._watch, catches_up=True)
        self._listen_faults = FaultLog()  # the poller's own: its retries are not calls' faults
        #: (file, seq) of the change log when the poller was asked for: it reads on from there.
        self._start: tuple[_FileId, int] | None = None

    def _checkout(self, writing: bool) -> tuple[int, _FileId, sqlite3.Connection | None]:
        """The current generation, its file, and an idle connection to it (None: open one).

        Raises sqlite3.Error, StoreUnavailable.
        """
        found = _file_id(self.path, self._file)  # the one stat of a round trip
        with self._lock:
            while self._reopening:
                self._lock.wait()
            if self._file is None or found != self._file:
                self._reopen()
            generation, file = self._generation, self._file
            if file is None:  # removed again as soon as it was created
                raise self._moved(writing)
            self._in_use += 1
            return generation, file, self._idle.pop() if self._idle else None

    def _checkin(self, generation: int, db: sqlite3.Connection | None) -> None:
        """Give a connection back: to the pool, or closed if its generation was retired."""
        if db is not None and db.in_transaction:  # an error left it open: never keep the lock
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        with self._lock:
            if generation == self._generation:
                self._in_use -= 1
                if db is not None and len(self._idle) < self._pool_size:
                    self._idle.append(db)
                    return
            else:
                self._retired_in_use -= 1
                self._lock.notify_all()
            if db is not None:  # closed with the lock held: before the old file's WAL can go
                db.close()

    def _retire(self) -> None:
        """Start a new generation: close idle connections, those in use when given back.

        Called with the lock held.
        """
        self._generation += 1
        self._retired_in_use += self._in_use
        self._in_use = 0
        self._file = None
        idle, self._idle = self._idle, []
        for db in idle:
            db.close()

    def _reopen(self) -> None:
        """Open the file at the path as a new generation and create the schema in it.

        Called with the lock held. Raises sqlite3.Error.
        """
        held = self._file
        if held is not None and _file_id(self.path, held) == held:
            return  # another thread reopened it meanwhile
        self._reopening = True
        try:
            if held is not None:
                _events.log.warning("safestate: SQLite file %r was removed or replaced while "
                                    "in use; opening the file now at that path", self.path)
            self._retire()
            # Round trips still on the old file finish first (a write there is refused),
            # so that no connection to it is open when the new file appears beside it.
            # Bounded: a round trip waits for a lock at most the busy timeout.
            deadline = time.monotonic() + self._busy_timeout
            while self._retired_in_use and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)
            if held is not None and _file_id(self.path, held) is None:
                # A new database must not replay the old one's WAL: that resurrects old
                # pages or corrupts the new file. (Where it cannot be removed, the new
                # file cannot be created either: that error names the directory.)
                for stale in (self.path + "-wal", self.path + "-shm"):
                    with contextlib.suppress(OSError):
                        os.remove(stale)
            db = self._connect(None)
            try:
                db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
            self._idle.append(db)
            self._file = _file_id(self.path, None)
        finally:
            self._reopening = False
            self._lock.notify_all()

    def _connect(self, file: _FileId | None, writing: bool = False) -> sqlite3.Connection:
        """A new connection in WAL mode to ``file``, or (None, a new generation) to the path.

        Only a new generation may create the file. Raises sqlite3.Error, StoreUnavailable
        when the path no longer names ``file``.
        """
        db = sqlite3.connect(f"{self._uri}?mode={'rwc' if file is None else 'rw'}", uri=True,
                             timeout=self._busy_timeout, isolation_level=None,
                             check_same_thread=False)
        try:
            if file is not None and _file_id(self.path, file) != file:
                # Before it reads, and so recovers, a WAL that is not its generation's.
                raise self._moved(writing)
            db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            self._use_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        return db

    def _use_wal(self, db: sqlite3.Connection) -> None:
        """Put the file in WAL mode (it stays so: a no-op after the first connection).

        A switch that meets another connection's (two stores opening a new file at once)
        fails with "database is locked" at once: SQLite calls no busy handler for it. So
        it is tried again, as the handler would, until the busy timeout. Raises
        sqlite3.Error.
        """
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.001
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "is locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)  # a back-off between tries, as SQLite's own busy handler
            pause = min(pause * 2, 0.05)

    def _unavailable(self, exc: BaseException, file: _FileId | None,
                     writing: bool) -> StoreUnavailable:
        """The error for ``exc``, with the check that fits the path's state."""
        if file is not None and _file_id(self.path, file) != file:
            return self._moved(writing, f"{type(exc).__name__}: {exc}")
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            check = f"that the directory {folder!r} exists (SQLite does not create it)"
        elif not os.access(folder, os.W_OK | os.X_OK):
            check = (f"that the directory {folder!r} is writable: SQLite creates the file "
                     "and its -wal and -shm files there")
        else:
            check = f"that {self.path!r} is writable and its disk not full"
        return StoreUnavailable(self.url, f"{type(exc).__name__}: {exc}", check)

    def _moved(self, writing: bool, cause: str = "") -> StoreUnavailable:
        """The error for a call whose file was removed or replaced under it."""
        what = "writing, so this write was not saved" if writing else "reading"
        return StoreUnavailable(
            self.url,
            f"the file {self.path!r} was removed or replaced while {what}"
            + (f" ({cause})" if cause else ""),
            "what removes or replaces it while the app runs; the next call opens the file "
            "then at that path",
        )

    @contextlib.contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction on a pooled connection: committed, or rolled back on any error.

        ``BEGIN IMMEDIATE`` takes the write lock at once (no deadlock upgrading a read).
        A write is acknowledged only if the path still names the file it went into.
        Raises StoreUnavailable.
        """
        writing = begin != "BEGIN"
        self.round_trips += 1
        file: _FileId | None = None
        try:
            generation, file, db = self._checkout(writing)
            try:
                if db is None:
                    db = self._connect(file, writing)
                db.execute(begin)
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            finally:
                self._checkin(generation, db)
        except sqlite3.Error as exc:
            raise self._unavailable(exc, file, writing) from exc
        if writing and _file_id(self.path, file) != file:
            raise self._moved(writing)

    def load(self, namespace: str) -> Snapshot:
        with self._transaction("BEGIN") as db:  # one consistent read of version and items
            row = db.execute(
                "SELECT version FROM safestate_namespaces WHERE ns = ? "
                "AND (expires_at IS NULL OR expires_at > ?)", (namespace, time.time()),
            ).fetchone()
            items = [] if row is None else db.execute(
                "SELECT key, value FROM safestate_items WHERE ns = ?", (namespace,)
            ).fetchall()
        if row is None:
            return Snapshot()
        return Snapshot({k: bytes(v) for k, v in items}, int(row[0]))

    def get(self, namespace: str, key: str) -> bytes | None:
        with self._transaction("BEGIN") as db:
            row = db.execute(
                "SELECT i.value FROM safestate_items i JOIN safestate_namespaces n "
                "ON n.ns = i.ns WHERE i.ns = ? AND i.key = ? "
                "AND (n.expires_at IS NULL OR n.expires_at > ?)", (namespace, key, time.time()),
            ).fetchone()
        return None if row is None else bytes(row[0])

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
        now = time.time()
        deletes = list(deletes)  # read twice: to delete, and to log
        with self._transaction() as db:
            row = db.execute(
                "SELECT version, expires_at FROM safestate_namespaces WHERE ns = ?",
                (namespace,),
            ).fetchone()
            live = row is not None and (row[1] is None or row[1] > now)
            version = row[0] if live else 0
            if row is not None and not live:  # expired: start it afresh
                db.execute("DELETE FROM safestate_items WHERE ns = ?", (namespace,))
            if expected_version is not None and expected_version != version:
                raise VersionConflict(namespace, expected_version, version)
            db.executemany(
                "INSERT INTO safestate_items (ns, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                [(namespace, k, v) for k, v in sets.items()],
            )
            db.executemany("DELETE FROM safestate_items WHERE ns = ? AND key = ?",
                           [(namespace, k) for k in deletes])
            new_version = next_version(version)
            db.execute(
                "INSERT INTO safestate_namespaces (ns, version, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (ns) DO UPDATE SET version = excluded.version, "
                "expires_at = excluded.expires_at",
                (namespace, new_version, None if ttl is None else now + ttl),
            )
            # A namespace that starts afresh (new, or expired unheard) changed every key.
            keys = None if not version else json.dumps(list(dict.fromkeys([*sets, *deletes])))
            self._log(db, namespace, new_version, keys, now, echo)
        return new_version

    def drop(self, namespace: str) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM safestate_items WHERE ns = ?", (namespace,))
            gone = db.execute("DELETE FROM safestate_namespaces WHERE ns = ?",
                              (namespace,)).rowcount
            if gone:
                self._log(db, namespace, 0, None, time.time())
        return bool(gone)

    def cleanup(self) -> int:
        with self._transaction() as db:
            expired = [r[0] for r in db.execute(
                "SELECT ns FROM safestate_namespaces WHERE expires_at IS NOT NULL "
                "AND expires_at <= ?", (time.time(),))]
            db.executemany("DELETE FROM safestate_items WHERE ns = ?", [(n,) for n in expired])
            db.executemany("DELETE FROM safestate_namespaces WHERE ns = ?",
                           [(n,) for n in expired])
            now = time.time()
            for namespace in expired:
                self._log(db, namespace, 0, None, now)
        return len(expired)

    def _log(self, db: sqlite3.Connection, namespace: str, version: int, keys: str | None,
             now: float, echo: bool = False) -> None:
        """Append a change to the log, in the caller's transaction; now and then prune it.

        An echo (``Committed.echo``) is marked by a "!" after the origin.
        """
        seq = db.execute(
            "INSERT INTO safestate_changes (ns, version, keys, origin, at) VALUES (?, ?, ?, ?, ?)",
            (namespace, version, keys, self._origin + ("!" if echo else ""), now),
        ).lastrowid
        if seq is not None and seq % PRUNE_EVERY == 0:
            db.execute("DELETE FROM safestate_changes WHERE seq <= ? AND at < ?",
                       (seq - LOG_ROWS, now - LOG_SECONDS))

    def subscribe(self, callback: Callback) -> Subscription:
        if self._listener.thread is None:
            # Where the log stands, read here rather than on the poller's thread: however
            # late that thread starts, it reads on from this row, so no commit made after
            # subscribe() returns goes unheard. If the file cannot be read now, the poller
            # starts from the log's end when it can (as it always did).
            with contextlib.suppress(sqlite3.Error, StoreUnavailable):
                generation, file, db = self._checkout(False)
                try:
                    db = db or self._connect(file)
                    self._start = (file, self._log_top(db))
                finally:
                    self._checkin(generation, db)
        return self._listener.subscribe(callback)

    def _watch(self, stop: threading.Event) -> None:
        """The poller thread: every ``poll`` seconds, other writers' new log rows to the
        callbacks, until ``stop``. On a failure it tries again after a pause that doubles up
        to RETRY_MAX, then reads on from the last row it read, so nothing is lost; only
        another file at the path (its log is another) is reported as a gap."""
        db: sqlite3.Connection | None = None
        file: _FileId | None = None  # the file whose log ``last`` counts in
        last = 0  # the seq of the last row read
        seen: int | None = None  # the data_version when the log was last read
        pause = 0.0
        try:
            while not stop.is_set():
                try:
                    if db is None or _file_id(self.path, file) != file:
                        if db is not None:
                            db.close()
                            db = None
                        db, opened = self._watcher()
                        start, self._start = self._start, None
                        # Another file than the one read at subscribe() (or than the last):
                        # commits to it may have gone unheard.
                        gap = opened != (file if file is not None else
                                         start[0] if start is not None else opened)
                        if file is None and start is not None and start[0] == opened:
                            file, last = opened, start[1]  # on from where subscribe() read
                        elif opened != file:  # the first file, or another: its log from now on
                            file, last = opened, self._log_top(db)
                        seen = None
                        self._listen_faults.recovered(self)
                        self._listener.listening(gap)
                    version = db.execute("PRAGMA data_version").fetchone()[0]
                    if version != seen:  # another connection committed: read what it logged
                        last = self._read_log(db, last)
                        seen = version
                    pause = 0.0
                    stop.wait(self.poll)
                except (sqlite3.Error, StoreUnavailable) as exc:
                    if db is not None:
                        db.close()
                        db = None
                    # Until a first file was read, where its log stood is unknown.
                    self._listener.interrupted(lost=file is None)
                    self._listen_faults.failed("listen", exc if isinstance(
                        exc, StoreUnavailable) else self._unavailable(exc, file, False))
                    pause = min(RETRY_MAX, max(self.poll, pause * 2))
                    stop.wait(pause)
        finally:
            if db is not None:
                db.close()

    def _watcher(self) -> tuple[sqlite3.Connection, _FileId]:
        """A connection of the poller's own (``data_version`` counts other connections'
        commits only), to the file at the path, made by the pool first if need be.

        Raises sqlite3.Error, StoreUnavailable.
        """
        generation, file, db = self._checkout(False)
        self._checkin(generation, db)
        return self._connect(file), file

    @staticmethod
    def _log_top(db: sqlite3.Connection) -> int:
        """The last seq the log gave out (0: none). Raises sqlite3.Error."""
        return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM safestate_changes").fetchone()[0])

    def _read_log(self, db: sqlite3.Connection, last: int) -> int:
        """Call back with the log's rows after ``last`` written by others; the last seq now.

        Raises sqlite3.Error.
        """
        rows = db.execute(
            "SELECT seq, ns, version, keys, origin FROM safestate_changes WHERE seq > ? "
            "ORDER BY seq", (last,)).fetchall()
        if not rows:
            top = self._log_top(db)
            if top != last:  # the log started again (another database at the path), or
                self._listener.notify(EVERYTHING)  # its rows were deleted unread
            return top
        if rows[0][0] != last + 1:  # rows pruned before they were read
            self._listener.notify(EVERYTHING)
        for _, namespace, version, keys, origin in rows:
            if origin.rstrip("!") != self._origin:
                self._listener.notify(Committed(namespace, version, _keys(keys),
                                                origin.endswith("!")))
        return int(rows[-1][0])

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            self._retire()


def _keys(logged: str | None) -> tuple[str, ...] | None:
    """The key names a log row holds; None (every key) if it holds none, or no list."""
    if logged is None:
        return None
    try:
        keys = json.loads(logged)
    except ValueError:
        return None
    return tuple(str(k) for k in keys) if isinstance(keys, list) else None
