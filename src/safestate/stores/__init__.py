"""Stores for persisted state, chosen by URL: memory://, sqlite:///file.db, redis://host/0.

A new store is one module with a ``Store`` subclass and one line in ``_OPENERS``.
``Store.subscribe`` reports other writers' commits as ``Committed`` changes.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from ..errors import StoreURLError
from .base import Committed, Snapshot, Store, Subscription


def _memory() -> Callable[[str], Store]:
    from .memory import MemoryStore

    return MemoryStore


def _sqlite() -> Callable[[str], Store]:
    from .sqlite import SQLiteStore

    return SQLiteStore


def _redis() -> Callable[[str], Store]:
    # Imported on use: redis-py is only needed by apps that store state in Redis.
    from .redis import RedisStore

    return RedisStore


_OPENERS: dict[str, Callable[[], Callable[[str], Store]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "rediss": _redis,
}


def open_store(url: str) -> Store:
    """The store a URL names: ``memory://``, ``sqlite:///path.db``, ``redis://host:port/db``.

    Raises StoreURLError for another scheme or a malformed URL, StoreUnavailable when
    the store cannot be opened.
    """
    if not isinstance(url, str):
        raise StoreURLError(repr(url), "the store URL must be a string")
    scheme = urlsplit(url).scheme
    opener = _OPENERS.get(scheme)
    if opener is None:
        raise StoreURLError(url, f"unknown scheme {scheme!r}")
    return opener()(url)


__all__ = ["Committed", "Snapshot", "Store", "Subscription", "open_store"]
