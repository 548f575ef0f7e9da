"""safestate: thread-safe, validated session state for multi-user Streamlit apps.

``session_manager`` is the calling session's state; ``shared`` is the app's.
The module-level functions are ``session_manager``'s methods.
"""

from __future__ import annotations

from .config import Configuration, Settings
from .dependencies import DependencyReport, DependencyStatus
from .errors import (
    DependencyNotReady,
    EmptyKeyError,
    InvalidKeyError,
    LockTimeoutError,
    MissingStateError,
    NoSessionError,
    NotAMappingError,
    NotSerializableError,
    SafestateError,
    SchemaConflictError,
    StateValidationError,
    StoreUnavailable,
    StoreURLError,
    StreamlitCompatibilityError,
    TransactionClosedError,
    UnknownDependencyError,
    VersionConflict,
)
from .manager import SessionHandle, SessionStateManager
from .monitoring import disable_metrics, enable_metrics, metrics_enabled
from .schema import TypedState
from .shared import SharedState, shared_state
from .transaction import Transaction
from .validator import HealthReport, InitReport, SessionValidator

#: The app-wide state shared by every session of this process.
shared = shared_state
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

#: Where state persists and for whom (see configure()).
configuration = Configuration(session_manager, shared)
session_manager._config = configuration
shared._before_first_use = configuration.ensure
configure = configuration.configure
cleanup_store = configuration.cleanup

#: Declared keys, dependencies, page guards and health reports for ``session_manager``.
session_validator = SessionValidator(session_manager)

ensure_session_initialized = session_validator.ensure_session_initialized
typed = session_validator.typed
register_dependency = session_validator.register_dependency
get_dependency = session_validator.get_dependency
is_ready = session_validator.is_ready
validate_session_dependencies = session_validator.validate_session_dependencies
require = session_validator.require
guard = session_validator.guard
reset_session = session_validator.reset_session
health_report = session_validator.health_report
get_caso_uso_maestro = session_validator.get_caso_uso_maestro
get_contenedor = session_validator.get_contenedor
is_ia_system_ready = session_validator.is_ia_system_ready

__all__ = [
    "Configuration",
    "DependencyNotReady",
    "DependencyReport",
    "DependencyStatus",
    "EmptyKeyError",
    "HealthReport",
    "InitReport",
    "InvalidKeyError",
    "LockTimeoutError",
    "MissingStateError",
    "NoSessionError",
    "NotAMappingError",
    "NotSerializableError",
    "SafestateError",
    "SchemaConflictError",
    "SessionHandle",
    "SessionStateManager",
    "SessionValidator",
    "Settings",
    "SharedState",
    "StateValidationError",
    "StoreURLError",
    "StoreUnavailable",
    "StreamlitCompatibilityError",
    "Transaction",
    "TransactionClosedError",
    "TypedState",
    "UnknownDependencyError",
    "VersionConflict",
    "cleanup_old_sessions",
    "cleanup_store",
    "configuration",
    "configure",
    "current",
    "disable_metrics",
    "enable_metrics",
    "ensure_session_initialized",
    "get_caso_uso_maestro",
    "get_contenedor",
    "get_dependency",
    "get_session_stats",
    "guard",
    "health_report",
    "increment",
    "is_ia_system_ready",
    "is_ready",
    "metrics_enabled",
    "mutate",
    "register_dependency",
    "require",
    "reset_session",
    "safe_delete",
    "safe_exists",
    "safe_get",
    "safe_set",
    "safe_update",
    "session_id",
    "session_lock",
    "session_manager",
    "session_validator",
    "shared",
    "start_thread",
    "transaction",
    "typed",
    "validate_session_dependencies",
    "with_session_lock",
]
