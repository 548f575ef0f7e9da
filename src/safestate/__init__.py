"""safestate: thread-safe, validated session state for multi-user Streamlit apps.

``session_manager`` is the calling session's state; ``shared`` is the app's;
``session_validator`` declares keys, dependencies and page guards. The functions here
are their methods. Everything else lives in a named submodule: errors in
``safestate.errors``, metrics in ``safestate.monitoring``, settings in
``safestate.config``, the pieces and how they are built in ``safestate.app``
(``safestate.current_app()`` is the one in use).
"""

from . import _compat, monitoring
from .app import App as _App
from .app import build_app as _build_app
from .errors import SafestateError, StoreUnavailable
from .manager import SessionStateManager
from .validator import SessionValidator


def _distribution_version() -> str:
    """This distribution's version as installed (``version`` in pyproject.toml, the one place
    it is written); ``0+unknown`` for a source tree on ``sys.path`` that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("streamlit-safestate")
    except PackageNotFoundError:
        return "0+unknown"


#: The installed version of the ``streamlit-safestate`` distribution, e.g. ``"0.2.0"``.
__version__: str = _distribution_version()

# Fails loudly, naming the piece and the version, if this Streamlit moved an internal that
# safestate uses: before any state is touched, on versions newer than any tested too.
_compat.verify()
_app = _build_app()

#: The calling session's state manager.
session_manager: SessionStateManager = _app.manager
#: The app-wide state shared by every session of this process.
shared = _app.shared
#: Declared keys, dependencies, page guards and health reports for ``session_manager``.
session_validator: SessionValidator = _app.validator
#: Where state persists and for whom (``safestate.config``); returns the Settings in force.
configure = _app.configuration.configure

safe_get = session_manager.safe_get
safe_set = session_manager.safe_set
safe_update = session_manager.safe_update
safe_delete = session_manager.safe_delete
safe_exists = session_manager.safe_exists
mutate = session_manager.mutate
increment = session_manager.increment
transaction = session_manager.transaction
session_lock = session_manager.session_lock
current = session_manager.current
start_thread = session_manager.start_thread

ensure_session_initialized = session_validator.ensure_session_initialized
typed = session_validator.typed
require = session_validator.require
guard = session_validator.guard
register_dependency = session_validator.register_dependency
get_dependency = session_validator.get_dependency

#: The names above that are the session manager's and the validator's methods.
_MANAGER_METHODS = ("safe_get", "safe_set", "safe_update", "safe_delete", "safe_exists",
                    "mutate", "increment", "transaction", "session_lock", "current",
                    "start_thread")
_VALIDATOR_METHODS = ("ensure_session_initialized", "typed", "require", "guard",
                      "register_dependency", "get_dependency")


def current_app() -> _App:
    """The app the package's names are bound to now (its configuration, its store)."""
    return _app


def _bind(new: _App) -> _App:
    """Bind the package's names to ``new``; return the app they left (``testing.use_app``)."""
    global _app, session_manager, shared, session_validator, configure
    old, _app = _app, new
    session_manager, shared, session_validator = new.manager, new.shared, new.validator
    configure = new.configuration.configure
    names = globals()
    names.update({name: getattr(new.manager, name) for name in _MANAGER_METHODS})
    names.update({name: getattr(new.validator, name) for name in _VALIDATOR_METHODS})
    monitoring.watch(new.manager.stats_now)
    return old


monitoring.watch(_app.manager.stats_now)

__all__ = [
    "SafestateError",
    "SessionStateManager",
    "SessionValidator",
    "StoreUnavailable",
    "configure",
    "current",
    "ensure_session_initialized",
    "get_dependency",
    "guard",
    "increment",
    "mutate",
    "register_dependency",
    "require",
    "safe_delete",
    "safe_exists",
    "safe_get",
    "safe_set",
    "safe_update",
    "session_lock",
    "session_manager",
    "session_validator",
    "shared",
    "start_thread",
    "transaction",
    "typed",
]
