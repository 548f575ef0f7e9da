"""``sqlite:///path/to/file.db``: durable, safe for several processes on one machine.

WAL mode lets readers run beside one writer; ``busy_timeout`` makes a writer wait
for another instead of failing; every commit is one ``BEGIN IMMEDIATE`` transaction,
so it is all or nothing even if the process is killed half-way. ``synchronous=NORMAL``
in WAL mode survives a killed process (the OS still has the write); only a power
loss can drop the last commits.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from ..errors import StoreUnavailable, StoreURLError, VersionConflict
from .base import Snapshot, Store

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

    def __init__(self, url: str, busy_timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        # As SQLAlchemy does: sqlite:///x.db is relative, sqlite:////tmp/x.db absolute.
        path = parts.path[1:]
        if parts.netloc or not path:
            raise StoreURLError(url, "write sqlite:///relative.db or sqlite:////absolute/path.db")
        self.url = url
        self.path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        with self._connection() as db:
            db.executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=self._busy_timeout,
                                     isolation_level=None, check_same_thread=True)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from exc
            self._local.db = db
        return db

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(self.url, f"{type(exc).__name__}: {exc}",
                                f"that {self.path!r} is writable and its disk not full")

    def load(self, namespace: str) -> Snapshot:
        db = self._connection()
        self.round_trips += 1
        try:
            db.execute("BEGIN")  # one consistent read of version and items
            try:
                row = db.execute(
                    "SELECT version FROM safestate_namespaces WHERE ns = ? "
                    "AND (expires_at IS NULL OR expires_at > ?)", (namespace, time.time()),
                ).fetchone()
                if row is None:
                    return Snapshot()
                items = db.execute("SELECT key, value FROM safestate_items WHERE ns = ?",
                                   (namespace,)).fetchall()
            finally:
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        return Snapshot({k: bytes(v) for k, v in items}, int(row[0]))

    def get(self, namespace: str, key: str) -> bytes | None:
        db = self._connection()
        self.round_trips += 1
        try:
            row = db.execute(
                "SELECT i.value FROM safestate_items i JOIN safestate_namespaces n "
                "ON n.ns = i.ns WHERE i.ns = ? AND i.key = ? "
                "AND (n.expires_at IS NULL OR n.expires_at > ?)", (namespace, key, time.time()),
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
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
        db = self._connection()
        self.round_trips += 1
        now = time.time()
        try:
            db.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock
            try:
                row = db.execute(
                    "SELECT version, expires_at FROM safestate_namespaces WHERE ns = ?",
                    (namespace,),
                ).fetchone()
                version = 0 if row is None or (row[1] is not None and row[1] <= now) else row[0]
                if row is not None and version == 0:  # expired: start it afresh
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
                db.execute(
                    "INSERT INTO safestate_namespaces (ns, version, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (ns) DO UPDATE SET version = excluded.version, "
                    "expires_at = excluded.expires_at",
                    (namespace, version + 1, None if ttl is None else now + ttl),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        return version + 1

    def drop(self, namespace: str) -> bool:
        db = self._connection()
        self.round_trips += 1
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM safestate_items WHERE ns = ?", (namespace,))
            gone = db.execute("DELETE FROM safestate_namespaces WHERE ns = ?",
                              (namespace,)).rowcount
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        return bool(gone)

    def cleanup(self) -> int:
        db = self._connection()
        self.round_trips += 1
        try:
            db.execute("BEGIN IMMEDIATE")
            expired = [r[0] for r in db.execute(
                "SELECT ns FROM safestate_namespaces WHERE expires_at IS NOT NULL "
                "AND expires_at <= ?", (time.time(),))]
            db.executemany("DELETE FROM safestate_items WHERE ns = ?", [(n,) for n in expired])
            db.executemany("DELETE FROM safestate_namespaces WHERE ns = ?",
                           [(n,) for n in expired])
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        return len(expired)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
