"""``memory://``: this process's memory (the default; no persistence)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from time import monotonic

from ..errors import VersionConflict
from .base import Snapshot, Store, next_version


class MemoryStore(Store):
    """Namespaces in a dict, under one lock."""

    kind = "memory"

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._data: dict[str, tuple[dict[str, bytes], int, float | None]] = {}

    def _live(self, namespace: str) -> tuple[dict[str, bytes], int, float | None] | None:
        found = self._data.get(namespace)
        if found is not None and found[2] is not None and found[2] <= monotonic():
            del self._data[namespace]
            return None
        return found

    def load(self, namespace: str) -> Snapshot:
        with self._lock:
            self.round_trips += 1
            found = self._live(namespace)
            return Snapshot() if found is None else Snapshot(dict(found[0]), found[1])

    def get(self, namespace: str, key: str) -> bytes | None:
        with self._lock:
            self.round_trips += 1
            found = self._live(namespace)
            return None if found is None else found[0].get(key)

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
        with self._lock:
            self.round_trips += 1
            found = self._live(namespace)
            values, version = (dict(found[0]), found[1]) if found else ({}, 0)
            if expected_version is not None and expected_version != version:
                raise VersionConflict(namespace, expected_version, version)
            values.update(sets)
            for key in deletes:
                values.pop(key, None)
            expires = None if ttl is None else monotonic() + ttl
            new_version = next_version(version)
            self._data[namespace] = (values, new_version, expires)
            return new_version

    def drop(self, namespace: str) -> bool:
        with self._lock:
            self.round_trips += 1
            return self._data.pop(namespace, None) is not None

    def cleanup(self) -> int:
        with self._lock:
            self.round_trips += 1
            expired = [ns for ns in list(self._data) if self._live(ns) is None]
            return len(expired)
