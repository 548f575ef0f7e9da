"""The session record: each subsystem's part is its own, made on use, reset alone."""

from __future__ import annotations

from safestate._record import SessionRecord
from safestate.dependencies import DependencyChecks, DependencyStatus
from safestate.persistence import PersistedSession


def test_a_part_is_made_once_and_kept() -> None:
    record = SessionRecord("sid", object())
    assert record.peek(PersistedSession) is None  # nothing made until a subsystem asks
    part = record.part(PersistedSession)
    assert record.part(PersistedSession) is part and record.peek(PersistedSession) is part


def test_resetting_one_part_leaves_the_others() -> None:
    record = SessionRecord("sid", object())
    persisted = record.part(PersistedSession)
    persisted.identity, persisted.namespace = "custom:alice", "id:abc"
    checks = record.part(DependencyChecks)
    checks["db"] = DependencyStatus("db", "session", True, True, True)
    record.reset(DependencyChecks)  # what "Reset my session" does
    assert record.peek(DependencyChecks) is None and record.part(DependencyChecks) == {}
    kept = record.part(PersistedSession)
    assert kept is persisted and (kept.identity, kept.namespace) == ("custom:alice", "id:abc")
    record.reset(PersistedSession)  # a subsystem starting over touches its part alone
    assert record.part(PersistedSession).identity is None
    assert record.peek(DependencyChecks) == {}
