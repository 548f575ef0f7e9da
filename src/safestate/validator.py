"""SessionValidator: declared keys, dependencies, page guards and health reports."""

from __future__ import annotations

import contextlib
import copy
import functools
import sys
from collections.abc import Callable, Iterable, Mapping
from contextlib import ContextDecorator
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, TypeVar, cast

from . import _events
from ._compat import current_run, snapshot, user_keys
from ._events import session_label
from ._scope import Scope, check_key
from .dependencies import (
    DependencyRegistry,
    DependencyReport,
    DependencyStatus,
    _has,
    _reason,
)
from .errors import (
    DependencyNotReady,
    InvalidArgumentError,
    MissingStateError,
    NoSessionError,
    StoreUnavailable,
    UnreadableValueError,
)
from .manager import SessionStateManager
from .persistence import PersistentView
from .recovery import Problem, show_recovery
from .schema import TypedState
from .transaction import _DELETE, apply_changes

M = TypeVar("M")
OnMissing = Literal["recover", "raise", "return"]
_MISSING: Any = object()

#: The design's names for its app's dependencies.
CASO_USO_MAESTRO = "caso_uso_maestro"
CONTENEDOR = "contenedor"
IA_SYSTEM = "ia_system"


@dataclass
class InitReport:
    """What ``ensure_session_initialized`` found and did."""

    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)  # optional dependencies that failed

    @property
    def ok(self) -> bool:
        """Nothing required is missing."""
        return not self.missing

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class HealthReport:
    """Health of one session or of the whole app: key names, types and sizes, never values."""

    scope: Literal["session", "app"]
    ok: bool
    keys: list[dict[str, Any]] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    dependencies: list[DependencyStatus] = field(default_factory=list)
    sessions: int = 0
    sessions_missing_keys: dict[str, int] = field(default_factory=dict)
    sessions_failing_dependencies: dict[str, int] = field(default_factory=dict)
    session_label: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON or a monitoring page."""
        return {
            "scope": self.scope,
            "ok": self.ok,
            "session": self.session_label,
            "keys": self.keys,
            "missing_keys": self.missing_keys,
            "dependencies": [d.as_row() for d in self.dependencies],
            "sessions": self.sessions,
            "sessions_missing_keys": self.sessions_missing_keys,
            "sessions_failing_dependencies": self.sessions_failing_dependencies,
        }

    def render(self) -> None:
        """Draw the report in the current Streamlit page."""
        import streamlit as st

        (st.success if self.ok else st.error)(
            "Healthy" if self.ok else "Needs attention",
            icon=":material/check_circle:" if self.ok else ":material/error:",
        )
        if self.scope == "app":
            a, b, c = st.columns(3)
            a.metric("Sessions", self.sessions)
            b.metric("Sessions missing keys", sum(self.sessions_missing_keys.values()))
            c.metric("Failing dependency checks", sum(self.sessions_failing_dependencies.values()))
            if self.sessions_missing_keys:
                st.dataframe([{"key": k, "sessions missing it": n}
                              for k, n in self.sessions_missing_keys.items()], hide_index=True)
        else:
            if self.missing_keys:
                st.warning("Missing: " + ", ".join(f"`{k}`" for k in self.missing_keys))
            if self.keys:
                st.dataframe(self.keys, hide_index=True)
        if self.dependencies:
            st.dataframe([d.as_row() for d in self.dependencies], hide_index=True)


class _Guard(ContextDecorator):
    """Turns a missing key or dependency inside a block into the recovery panel."""

    def __init__(self, validator: SessionValidator) -> None:
        self._validator = validator

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc is not None and isinstance(exc, self._validator.recoverable):
            self._validator._recover([self._validator._problem_of(exc)])


class SessionValidator:
    """Declared session keys, dependencies, page guards and health reports (the design's names)."""

    #: Errors that ``guard()`` turns into the recovery panel.
    recoverable: tuple[type[BaseException], ...] = (
        DependencyNotReady, MissingStateError, StoreUnavailable, UnreadableValueError,
    )

    def __init__(self, manager: SessionStateManager) -> None:
        self._manager = manager
        self.dependencies = DependencyRegistry(manager)
        # Keys every session should have: the fields of typed() schemas (they get defaults
        # in every session, so a missing one was deleted). Pages' own needs are not here.
        self._declared: dict[str, None] = {}

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
    ) -> None:
        """Register what a page may need: built lazily by ``factory``, once per session or app.

        ``health_check(value)`` returning False or raising marks it unhealthy. Optional
        (``required=False``) dependencies degrade with a warning instead of stopping a page.
        Raises TypeError for a non-callable factory or check, ValueError for a bad scope,
        InvalidKeyError/EmptyKeyError for a bad name.
        """
        self.dependencies.register(name, factory, health_check=health_check, required=required,
                                   scope=scope, description=description)

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

        Never raises for an unhealthy dependency: the report says it.
        """
        state = self._state("validate_session_dependencies")
        for name in self.dependencies.names():
            dep = self.dependencies.lookup(name)
            present = self.dependencies.status(dep, state).present
            if present or build:
                # The failure is recorded in the status the report shows.
                with contextlib.suppress(DependencyNotReady):
                    self.dependencies.get(name, validate=True)
        return DependencyReport(self.dependencies.session_statuses(state))

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

    # -- declared keys -------------------------------------------------------------------------
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
            raise ValueError(
                f"on_missing must be 'recover', 'raise' or 'return', got {on_missing!r}"
            )
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, Iterable) or isinstance(keys, (bytes, bytearray)):
            raise InvalidArgumentError(
                "ensure_session_initialized() takes key names (a list of str, or one str) or "
                "a mapping of name -> default or factory, e.g. "
                f"ensure_session_initialized({{'cart': []}}); got {type(keys).__name__}")
        if isinstance(keys, Mapping):
            report = self._init_mapping({check_key(k): v for k, v in keys.items()})
        else:
            report = self._init_names([check_key(k) for k in keys])
        if report.ok or on_missing == "return":
            return report
        if on_missing == "raise":
            raise MissingStateError(report.missing, errors=report.errors)
        # With a failed step, the keys left unset only wait for it: name the failures.
        shown = [k for k in report.missing if k in report.errors] or report.missing
        self._recover([self._key_problem(k, report.errors.get(k)) for k in shown])

    def _init_mapping(self, items: dict[str, Any]) -> InitReport:
        schema = self._manager._schema
        report = InitReport()
        lock, state = self._locked("ensure_session_initialized")
        try:
            built: list[tuple[str, Any]] = []
            for key, default in items.items():
                if _has(state, key):
                    report.present.append(key)
                    continue
                try:
                    value = default() if callable(default) else copy.deepcopy(default)
                except Exception as exc:
                    report.errors[key] = _reason(exc)
                    report.missing.append(key)
                    continue
                built.append((key, schema.check(key, value)))
            if not report.missing:
                apply_changes(state, built)
                report.created = [k for k, _ in built]
            else:
                report.missing += [k for k, _ in built]  # not written: all or nothing
        finally:
            lock.release()
        return report

    def _init_names(self, names: list[str]) -> InitReport:
        report = InitReport()
        state = self._state("ensure_session_initialized")
        with self._manager.session_lock():
            for name in names:
                if self.dependencies.is_registered(name):
                    try:
                        self.dependencies.get(name, validate=True)
                        report.present.append(name)
                    except DependencyNotReady as exc:
                        # An optional dependency degrades; only a required one is missing.
                        if self.dependencies.lookup(name).required:
                            report.missing.append(name)
                        else:
                            report.degraded.append(name)
                        report.errors[name] = exc.reason
                elif _has(state, name):
                    report.present.append(name)
                else:
                    report.missing.append(name)
        return report

    def typed(self, model: type[M], scope: Scope | None = None) -> M:
        """Declare the session's keys as ``model``'s fields; return attribute access typed as it.

        ``model`` is a pydantic BaseModel subclass (primary; its Field constraints apply)
        or a dataclass. Unset keys get their defaults now when called in a session (so
        widgets bound to them with ``key=`` start from the default), or on first read
        otherwise. ``scope`` is a
        SessionHandle for worker threads. Raises TypeError for another kind of class,
        SchemaConflictError when a key is already declared with another type.
        """
        keys = self._manager._schema.declare(model)
        self._declared.update(dict.fromkeys(k.name for k in keys))
        proxy: TypedState[M] = TypedState(model, scope or self._manager, keys)
        if scope is not None or self._manager._in_session():
            proxy.initialize()
        return cast("M", proxy)

    # -- pages -------------------------------------------------------------------------------
    def require(self, *names: str) -> dict[str, Any]:
        """What a page needs, by name (dependencies or session keys); their values by name.

        A missing or unhealthy required one shows the recovery panel ("Retry",
        "Reset my session") and stops the page; an optional dependency that fails
        shows a warning and maps to None, and the page goes on.
        Raises UnknownDependencyError never: unknown names are treated as session keys.
        """
        self._state("require")
        values: dict[str, Any] = {}
        problems: list[Problem] = []
        for name in map(check_key, names):
            if self.dependencies.is_registered(name):
                dep = self.dependencies.lookup(name)
                try:
                    values[name] = self.dependencies.get(name, validate=True)
                except DependencyNotReady as exc:
                    if dep.required:
                        problems.append(self._problem_of(exc))
                    else:
                        import streamlit as st

                        st.warning(f"**{dep.label}** is unavailable: {exc.reason}. The parts "
                                   "of this page that need it are turned off.",
                                   icon=":material/power_off:")
                        values[name] = None
            else:
                value = self._manager.safe_get(name, _MISSING)
                if value is _MISSING:
                    problems.append(self._key_problem(name, None))
                else:
                    values[name] = value
        if problems:
            self._recover(problems)
        return values

    def guard(self) -> _Guard:
        """Context manager and decorator: a missing key or dependency inside it shows the
        recovery panel and stops the page, instead of a traceback."""
        return _Guard(self)

    def retry(self, names: Iterable[str]) -> None:
        """Drop failed built instances of ``names`` so the next use builds them again."""
        names = list(names)
        _events.log.info("safestate: retry of %s (%s)", ", ".join(names), _events.current_label())
        for name in names:
            if self.dependencies.is_registered(name):
                self.dependencies.discard_if_failed(name)

    def reset_session(self) -> int:
        """Clear every key of the calling session's state (widgets' too); return how many.

        Persisted keys go from the store too, in one commit.
        """
        lock, state = self._locked("reset_session")
        try:
            keys = user_keys(state)
            if type(state) is PersistentView:
                state.apply([(k, _DELETE) for k in keys])
            else:
                for key in keys:
                    with contextlib.suppress(KeyError):
                        del state[key]
            lock.extra = None  # this session's recorded dependency checks
        finally:
            lock.release()
        _events.log.info("safestate: session reset, %d key(s) cleared (%s)", len(keys),
                         _events.current_label())
        return len(keys)

    def _problem_of(self, exc: BaseException) -> Problem:
        if isinstance(exc, DependencyNotReady):
            what = exc.description or f"`{exc.name}`"
            return Problem(exc.name, "dependency", f"**{what}** is not ready: {exc.reason}")
        if isinstance(exc, MissingStateError):
            first = exc.keys[0] if exc.keys else "?"
            return self._key_problem(first, exc.errors.get(first))
        if isinstance(exc, UnreadableValueError):
            return Problem(exc.key, "key", f"**Saved value `{exc.key}` can't be read**: it "
                           "was written by another version of the app or is damaged. Reset "
                           "it from the app, or use **Reset my session**.")
        if isinstance(exc, StoreUnavailable):
            return Problem("store", "store", "**Saved data is out of reach right now**: "
                           f"{exc}. Your other work on this page is not affected.")
        return Problem(type(exc).__name__, "error", str(exc))

    def _key_problem(self, name: str, error: str | None) -> Problem:
        if self.dependencies.is_registered(name):
            dep = self.dependencies.lookup(name)
            reason = f": {error}" if error else ""
            return Problem(name, "dependency", f"**{dep.label}** is not ready{reason}.")
        detail = f" (its setup failed: {error})" if error else ""
        return Problem(name, "key", f"Session value `{name}` is missing{detail}.")

    def _recover(self, problems: list[Problem]) -> NoReturn:
        names = [p.name for p in problems]
        _events.log.warning("safestate: recovery panel shown for %s (%s)", ", ".join(names),
                            _events.current_label())
        show_recovery(problems, functools.partial(self.retry, names), self._reset)

    def _reset(self) -> None:  # a button callback returns None
        self.reset_session()

    # -- health ------------------------------------------------------------------------------
    def _locked(self, op: str) -> tuple[Any, Any]:
        """The calling session's lock (taken) and state. Raises NoSessionError naming ``op``."""
        self._state(op)
        return self._manager._enter(op)

    @staticmethod
    def _state(op: str) -> Any:
        """The calling session's state object. Raises NoSessionError naming ``op``."""
        run = current_run()
        if run is None:
            raise NoSessionError(op, script_only=True)
        return run[1]

    def health_report(self, scope: Literal["session", "app"] = "session") -> HealthReport:
        """Health of the calling session, or ("app") of every session safestate tracks.

        Only key names, types and sizes appear, never values. Raises ValueError for
        another scope, NoSessionError for "session" outside a session.
        """
        if scope == "session":
            return self._session_health()
        if scope == "app":
            return self._app_health()
        raise ValueError(f"health_report scope must be 'session' or 'app', got {scope!r}")

    def _session_health(self) -> HealthReport:
        lock, state = self._locked("health_report")
        sid = lock.key
        try:
            values = snapshot(state)
        finally:
            lock.release()
        keys = [_describe(k, v) for k, v in sorted(values.items())]
        missing = [k for k in list(self._declared) if k not in values]
        deps = self.dependencies.session_statuses(state)
        ok = not missing and not any(d.required and d.failed for d in deps)
        return HealthReport("session", ok, keys, missing, deps, session_label=session_label(sid))

    def _app_health(self) -> HealthReport:
        # Presence checks only (single dict reads): no other session's lock is needed,
        # and no value leaves its session.
        entries = [e for e in self._manager._registry.entries() if e.state is not None]
        missing: dict[str, int] = {}
        failing: dict[str, int] = {}
        declared = list(self._declared)
        for entry in entries:
            for key in declared:
                if not _has(entry.state, key):
                    missing[key] = missing.get(key, 0) + 1
            for status in self.dependencies.session_statuses(entry.state, entry):
                if status.scope == "session" and status.required and status.failed:
                    failing[status.name] = failing.get(status.name, 0) + 1
        deps = [self.dependencies.lookup(n) for n in self.dependencies.names()]
        app_deps = [self.dependencies.status(d, None) for d in deps if d.scope == "app"]
        for status in app_deps:
            if status.required and status.failed:
                failing[status.name] = failing.get(status.name, 0) + 1
        ok = not failing and not missing
        return HealthReport("app", ok, dependencies=app_deps, sessions=len(entries),
                            sessions_missing_keys=missing, sessions_failing_dependencies=failing)


def _describe(key: str, value: Any) -> dict[str, Any]:
    try:
        length: int | None = len(value)
    except TypeError:
        length = None
    return {"key": key, "type": type(value).__name__, "length": length,
            "bytes": sys.getsizeof(value)}
