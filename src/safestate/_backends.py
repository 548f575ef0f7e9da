"""The backends in force: settings, store and persistence, as one immutable value.

``configure()`` builds a new ``Backends`` and swaps it into the ``BackendSlot`` in one
assignment, so a call sees either the old settings whole or the new ones whole, never
half of each. The session manager and ``shared`` read the slot on each call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from .persistence import Persistence, PersistentView
from .settings import Settings
from .stores import open_store
from .stores.base import Store


@dataclass(frozen=True)
class Backends:
    """Where state lives and for whom, under one set of settings."""

    settings: Settings
    store: Store
    #: Persistence of session keys; None when no key is persisted.
    sessions: Persistence | None
    #: The shared state's storage in the store; None when it lives in this process's memory.
    shared: PersistentView | None


def in_memory() -> Backends:
    """Backends that keep everything in this process's memory, persisting nothing: the
    defaults, with no deployment settings read (a manager built on its own)."""
    return Backends(Settings(), open_store("memory://"), None, None)


class BackendSlot:
    """Holds the backends in force; empty until the first call fills it from ``first``.

    ``first`` applies the deployment's settings (secrets, environment) when the app has
    not called ``configure()`` before its first call.
    """

    def __init__(self, first: Callable[[], Backends]) -> None:
        self._first = first
        self._lock = threading.Lock()
        #: The backends in force, or None before the first configuration. Read it (one
        #: attribute read on the hot path); only ``swap`` writes it.
        self.current: Backends | None = None

    def get(self) -> Backends:
        """The backends in force, made by ``first`` on first use."""
        current = self.current
        if current is None:
            made = self._first()  # a Configuration swaps its own in; a plain factory returns one
            with self._lock:
                if self.current is None:
                    self.current = made
                current = self.current
        return current

    def swap(self, new: Backends) -> Backends | None:
        """Put ``new`` in force in one step; return the backends it replaces."""
        with self._lock:
            old, self.current = self.current, new
        return old
