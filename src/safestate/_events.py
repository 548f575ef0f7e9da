"""Where safestate reports what monitoring wants to know: lock waits, store calls, errors.

Each slot is None until ``safestate.enable_metrics()`` fills it. Callers read the
slot and skip everything when it is None, and they only do so on paths that are
already slow (a lock that had to wait, a store round trip, an error), so metrics
that are off cost nothing on the hot path. Log records go to the ``safestate``
logger, which has only a NullHandler until the app configures logging; they name
sessions by label and keys by name, never values.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

log = logging.getLogger("safestate")
log.addHandler(logging.NullHandler())

#: Called with (scope, seconds waited) when a lock was taken after waiting.
lock_wait: Callable[[str, float], None] | None = None
#: Called with (store scheme, operation, seconds, failed) after every store round trip.
store_call: Callable[[str, str, float, bool], None] | None = None
#: Called with the error's class name when safestate raises one of its errors.
error: Callable[[str], None] | None = None


def session_label(session_id: str) -> str:
    """A short, stable name for a session that does not reveal its id (ids resume sessions)."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:8]


def scope_of(lock_key: str) -> str:
    """The scope a lock key belongs to: "shared" or "session"."""
    return "shared" if lock_key == "shared" else "session"


def label_of(lock_key: str) -> str:
    """How logs name the owner of a lock key."""
    return "shared" if lock_key == "shared" else "session " + session_label(lock_key)
