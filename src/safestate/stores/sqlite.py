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
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import quote, urlsplit

from .. import _events
from ..errors import StoreUnavailable, StoreURLError, VersionConflict
from .base import Snapshot, Store, next_version

_SCHEMA = """
CREATE TABLE IF NOT EXISTS safestate_namespaces (
    ns TEXT PRIMARY KEY, version INTEGER NOT NULL, expires_at REAL
);
CREATE TABLE IF NOT EXISTS safestate_items (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key)
);
"""

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
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        except BaseException:
            db.close()
            raise
        return db

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
    ) -> int:
        now = time.time()
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
        return new_version

    def drop(self, namespace: str) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM safestate_items WHERE ns = ?", (namespace,))
            gone = db.execute("DELETE FROM safestate_namespaces WHERE ns = ?",
                              (namespace,)).rowcount
        return bool(gone)

    def cleanup(self) -> int:
        with self._transaction() as db:
            expired = [r[0] for r in db.execute(
                "SELECT ns FROM safestate_namespaces WHERE expires_at IS NOT NULL "
                "AND expires_at <= ?", (time.time(),))]
            db.executemany("DELETE FROM safestate_items WHERE ns = ?", [(n,) for n in expired])
            db.executemany("DELETE FROM safestate_namespaces WHERE ns = ?",
                           [(n,) for n in expired])
        return len(expired)

    def close(self) -> None:
        with self._lock:
            self._retire()
