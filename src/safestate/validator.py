"""SessionValidator: the design's facade over declared keys, dependencies, pages and health.

Each job lives in its own module (``init``, ``dependencies``, ``pages``, ``health``); this
class gives them the design's names and decides what a missing key does to a page.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .dependencies import DependencyRegistry, DependencyReport
from .errors import DependencyNotReady, InvalidArgumentError, MissingStateError
from .health import Health, HealthReport
from .init import Initializer, InitReport
from .pages import Guard, Pages

if TYPE_CHECKING:
    from ._scope import Scope
    from .manager import SessionStateManager

M = TypeVar("M")
OnMissing = Literal["recover", "raise", "return"]

#: The design's names for its app's dependencies.
CASO_USO_MAESTRO = "caso_uso_maestro"
CONTENEDOR = "contenedor"
IA_SYSTEM = "ia_system"


class SessionValidator:
    """Declared session keys, dependencies, page guards and health reports (the design's names)."""

    #: Errors that ``guard()`` turns into the recovery panel (or, for an optional
    #: dependency, a warning).
    recoverable = Pages.recoverable

    def __init__(self, manager: SessionStateManager) -> None:
        self._manager = manager
        #: Registered dependencies and their last checks.
        self.dependencies = DependencyRegistry(manager)
        self._init = Initializer(manager, self.dependencies)
        self._pages = Pages(manager, self.dependencies)
        self._health = Health(manager, self.dependencies, lambda: list(self._init.declared))

    # -- dependencies ------------------------------------------------------------------------
    def register_dependency(
        self,
        name: str,
        factory: Callable[[], Any],
        *,
        health_check: Callable[[Any], Any] | None = None,
        required: bool = True,
        scope: Literal["session", "app"] = "session",
        description: str = "",
        teardown: Callable[[Any], None] | None = None,
    ) -> None:
        """Register what a page may need (see ``DependencyRegistry.register``); raises as it."""
        self.dependencies.register(name, factory, health_check=health_check, required=required,
                                   scope=scope, description=description, teardown=teardown)

    def get_dependency(self, name: str, validate: bool = True) -> Any:
        """The dependency, built on first use; health-checked when ``validate``.

        Raises DependencyNotReady with a message for people, UnknownDependencyError,
        NoSessionError for a session-scoped one outside a session.
        """
        return self.dependencies.get(name, validate)

    def is_ready(self, name: str) -> bool:
        """Whether the dependency can be had and is healthy now (builds it if needed).

        Raises UnknownDependencyError for a name never registered.
        """
        try:
            self.dependencies.get(name, validate=True)
        except DependencyNotReady:
            return False
        return True

    def validate_session_dependencies(self, build: bool = True) -> DependencyReport:
        """Check every dependency for this session (building absent ones when ``build``).

        Never raises for an unhealthy dependency: the report says it. Raises NoSessionError
        outside a script run.
        """
        deps = self.dependencies
        state = self._manager.script_state("validate_session_dependencies")
        for name in deps.names():
            if build or deps.status(deps.lookup(name), state).present:
                # The failure is recorded in the status the report shows.
                with contextlib.suppress(DependencyNotReady):
                    deps.get(name, validate=True)
        return DependencyReport(deps.session_statuses(state))

    # -- design aliases ----------------------------------------------------------------------
    def get_caso_uso_maestro(self, validate: bool = True) -> Any:
        """The design's master use case: ``get_dependency("caso_uso_maestro", validate)``."""
        return self.get_dependency(CASO_USO_MAESTRO, validate)

    def get_contenedor(self, validate: bool = True) -> Any:
        """The design's DI container: ``get_dependency("contenedor", validate)``."""
        return self.get_dependency(CONTENEDOR, validate)

    def is_ia_system_ready(self) -> bool:
        """The design's AI readiness check: ``is_ready("ia_system")``."""
        return self.is_ready(IA_SYSTEM)

    # -- declared keys -----------------------------------------------------------------------
    def ensure_session_initialized(
        self,
        keys: Iterable[str] | Mapping[str, Any] | str,
        *,
        on_missing: OnMissing = "recover",
    ) -> InitReport:
        """Make sure the session has ``keys``.

        With a mapping of name -> default (copied per session) or zero-argument
        factory, missing keys are created once, atomically, under the session lock;
        if a factory raises, none is written. With names, registered dependencies are
        built and checked, and other names must already be set. When something is
        still missing, ``on_missing`` says what happens: "recover" shows the recovery
        panel and stops the page, "raise" raises MissingStateError, "return" only
        reports. Raises InvalidKeyError/EmptyKeyError, StateValidationError for a
        default of the wrong declared type, NoSessionError outside a session.
        """
        if on_missing not in ("recover", "raise", "return"):
            raise InvalidArgumentError(
                f"on_missing must be 'recover', 'raise' or 'return', got {on_missing!r}"
            )
        report = self._init.ensure(keys)
        if report.ok or on_missing == "return":
            return report
        if on_missing == "raise":
            raise MissingStateError(report.missing, errors=report.errors)
        # With a failed step, the keys left unset only wait for it: name the failures.
        shown = [k for k in report.missing if k in report.errors] or report.missing
        self._pages.recover([self._pages.key_problem(k, report.errors.get(k)) for k in shown])

    def typed(self, model: type[M], scope: Scope | None = None) -> M:
        """Declare the session's keys as ``model``'s fields; return attribute access typed as it.

        ``model`` is a pydantic BaseModel subclass (primary; its Field constraints apply)
        or a dataclass. Unset keys get their defaults now when called in a session (so
        widgets bound to them with ``key=`` start from the default), or on first read
        otherwise. ``scope`` is a SessionHandle for worker threads. Raises TypeError for
        another kind of class, SchemaConflictError when a key is already declared with
        another type.
        """
        return self._init.typed(model, scope)

    # -- pages -------------------------------------------------------------------------------
    def require(self, *names: str) -> dict[str, Any]:
        """What a page needs, by name (dependencies or session keys); their values by name.

        A missing or unhealthy required one shows the recovery panel ("Retry",
        "Reset my session") and stops the page; an optional dependency that fails
        shows a warning and maps to None, and the page goes on.
        Raises UnknownDependencyError never: unknown names are treated as session keys.
        """
        return self._pages.require(*names)

    def guard(self) -> Guard:
        """Context manager and decorator: a missing key or required dependency inside it shows
        the recovery panel and stops the page, instead of a traceback.

        An optional dependency (``required=False``) that fails inside it shows ``require()``'s
        warning instead: the rest of the block is skipped (a decorated function returns None)
        and the page goes on after it. Other errors pass through.
        """
        return self._pages.guard(self.recoverable)

    def retry(self, names: Iterable[str]) -> None:
        """Drop failed built instances of ``names`` so the next use builds them again."""
        self._pages.retry(names)

    def reset_session(self) -> int:
        """Clear every key of the calling session's state (widgets' too); return how many.

        Persisted keys go from the store too, in one commit.
        """
        return self._pages.reset_session()

    # -- health ------------------------------------------------------------------------------
    def health_report(self, scope: Literal["session", "app"] = "session") -> HealthReport:
        """Health of the calling session, or ("app") of every session safestate tracks.

        Only key names, types and sizes appear, never values. Raises ValueError for
        another scope, NoSessionError for "session" outside a session.
        """
        return self._health.report(scope)
