"""What safestate keeps for one session: a record with a part per subsystem.

The lock registry makes a record with each session's entry and drops it with the entry.
Each subsystem defines its own part (persistence's ``PersistedSession``, dependencies'
``DependencyChecks``), gets it with ``record.part(Kind)`` and resets only that one with
``record.reset(Kind)``. So "Reset my session", which forgets the dependency checks,
cannot wipe the cached identity, and a new configuration, which starts persistence
over, cannot forget which dependencies failed. The record knows none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .storage import LocalStorage

P = TypeVar("P")


class SessionRecord:
    """One session's bookkeeping: its state object, its storage and each subsystem's part."""

    __slots__ = ("_parts", "local", "session_id", "state", "worker")

    def __init__(self, session_id: str, state: object, local: LocalStorage | None = None
                 ) -> None:
        self.session_id = session_id
        #: The session's own state object (Streamlit's SessionState): what health reports read.
        self.state = state
        #: The session's state as storage, as the script's thread writes it.
        self.local = local
        #: The same as worker threads write it (``_compat.WorkerStateView``), made on a
        #: worker's first call.
        self.worker: LocalStorage | None = None
        self._parts: dict[type, object] | None = None  # made on first use: most have none

    def part(self, kind: type[P]) -> P:
        """The part a subsystem keeps here, of class ``kind``: made (``kind()``) on first use.

        Called with the session's lock held, like every change to a record.
        """
        parts = self._parts
        if parts is None:
            parts = self._parts = {}
        found = parts.get(kind)
        if found is None:
            found = parts[kind] = kind()
        return found  # type: ignore[return-value]

    def peek(self, kind: type[P]) -> P | None:
        """The part of class ``kind`` if there is one (never makes it)."""
        parts = self._parts
        return None if parts is None else parts.get(kind)  # type: ignore[return-value]

    def reset(self, kind: type) -> None:
        """Forget the part of class ``kind``: the next ``part(kind)`` starts afresh."""
        if self._parts is not None:
            self._parts.pop(kind, None)
