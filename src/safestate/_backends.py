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
        """The backends in force, configured from the deployment on first use."""
        current = self.current
        return current if current is not None else self._first()

    def swap(self, new: Backends) -> Backends | None:
        """Put ``new`` in force in one step; return the backends it replaces."""
        with self._lock:
            old, self.current = self.current, new
        return old
