"""``sqlite:///path/to/file.db``: durable, safe for several processes on one machine.

WAL mode lets readers run beside one writer; ``busy_timeout`` makes a writer wait
for another instead of failing; every commit is one ``BEGIN IMMEDIATE`` transaction,
so it is all or nothing even if the process is killed half-way. ``synchronous=NORMAL``
in WAL mode survives a killed process (the OS still has the write); only a power
loss can drop the last commits.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import urlsplit

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


class SQLiteStore(Store):
    """Namespaces in two tables of one SQLite file; one connection per thread."""

    kind = "sqlite"

    def __init__(self, url: str, busy_timeout: float = 10.0, pool_size: int = 8) -> None:
        parts = urlsplit(url)
        # As SQLAlchemy does: sqlite:///x.db is relative, sqlite:////tmp/x.db absolute.
        path = parts.path[1:]
        if parts.netloc or not path:
            raise StoreURLError(url, "write sqlite:///relative.db or sqlite:////absolute/path.db")
        self.url = url
        self.path = path
        self._busy_timeout = busy_timeout
        # A small pool: each Streamlit rerun runs on a new thread, and opening a
        # connection per thread would cost more than the query.
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue(pool_size)
        with self._connection() as db:
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            db = self._pool.get_nowait()
        except queue.Empty:
            try:
                db = sqlite3.connect(self.path, timeout=self._busy_timeout,
                                     isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from exc
        try:
            yield db
        finally:
            if db.in_transaction:  # an error left it open: never keep the write lock
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            try:
                self._pool.put_nowait(db)
            except queue.Full:
                db.close()

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(self.url, f"{type(exc).__name__}: {exc}",
                                f"that {self.path!r} is writable and its disk not full")

    @contextlib.contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction on a pooled connection: committed, or rolled back on any error.

        ``BEGIN IMMEDIATE`` takes the write lock at once (no deadlock upgrading a read).
        """
        self.round_trips += 1
        try:
            with self._connection() as db:
                db.execute(begin)
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc

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
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return
