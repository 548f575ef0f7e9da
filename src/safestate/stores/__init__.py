"""Stores for persisted state, chosen by URL: memory://, sqlite:///file.db, redis://host/0."""

from .base import Snapshot, Store, open_store

__all__ = ["Snapshot", "Store", "open_store"]
