"""safestate: thread-safe, validated session state for multi-user Streamlit apps.

``session_manager`` is the calling session's state; ``shared`` is the app's.
The module-level functions are ``session_manager``'s methods.
"""

from __future__ import annotations

from .errors import (
    EmptyKeyError,
    InvalidKeyError,
    LockTimeoutError,
    NoSessionError,
    NotAMappingError,
    SafestateError,
    StreamlitCompatibilityError,
    TransactionClosedError,
)
from .manager import SessionHandle, SessionStateManager
from .shared import SharedState
from .transaction import Transaction

#: The app-wide state shared by every session of this process.
shared = SharedState()
#: The calling session's state manager.
session_manager = SessionStateManager(shared)

safe_set = session_manager.safe_set
safe_get = session_manager.safe_get
safe_update = session_manager.safe_update
safe_delete = session_manager.safe_delete
safe_exists = session_manager.safe_exists
mutate = session_manager.mutate
increment = session_manager.increment
transaction = session_manager.transaction
session_lock = session_manager.session_lock
with_session_lock = session_manager.with_session_lock
session_id = session_manager.session_id
current = session_manager.current
start_thread = session_manager.start_thread
cleanup_old_sessions = session_manager.cleanup_old_sessions
get_session_stats = session_manager.get_session_stats

__all__ = [
    "EmptyKeyError",
    "InvalidKeyError",
    "LockTimeoutError",
    "NoSessionError",
    "NotAMappingError",
    "SafestateError",
    "SessionHandle",
    "SessionStateManager",
    "SharedState",
    "StreamlitCompatibilityError",
    "Transaction",
    "TransactionClosedError",
    "cleanup_old_sessions",
    "current",
    "get_session_stats",
    "increment",
    "mutate",
    "safe_delete",
    "safe_exists",
    "safe_get",
    "safe_set",
    "safe_update",
    "session_id",
    "session_lock",
    "session_manager",
    "shared",
    "start_thread",
    "transaction",
    "with_session_lock",
]
