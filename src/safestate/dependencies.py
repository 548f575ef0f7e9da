"""Dependencies: objects a page needs (a use case, a DI container, an AI client), built lazily.

Each is built once per scope under the right lock: per session (kept in that
session's ``st.session_state`` under its name) or once for the whole app (kept
here, behind a lock of its own so one slow build does not stall the others). A
factory that raises stores nothing, so the next call builds again.

A dependency may have a teardown (close a connection, free a model): a session-scoped one's
runs with the session's built value once when Streamlit ends the session (after the session
end hooks), an app-wide one's at ``App.close()``; never for one that was not built.

A factory may ask for other dependencies. One that, through others, asks for
itself (a cycle) gets DependencyNotReady naming the cycle instead of a hang: each
thread keeps the names it is building, and before waiting for an app-wide
dependency's lock a thread checks that the builder it waits for is not, in turn,
waiting for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from . import _compat, _events
from ._keys import MISSING, check_key, has_key
from ._locks import note_held
from ._markdown import literal
from .errors import DependencyNotReady, UnknownDependencyError, quote, redact

if TYPE_CHECKING:
    from ._record import SessionRecord
    from .manager import SessionHandle, SessionStateManager

Scope = Literal["session", "app"]
#: Longest reason (type and message) a status or a page quotes from a failure.
REASON_LIMIT = 300


@dataclass(frozen=True)
class Dependency:
    """A registered dependency: how to build it and how to tell it is healthy."""

    name: str
    factory: Callable[[], Any]
    health_check: Callable[[Any], Any] | None
    required: bool
    scope: Scope
    description: str
    #: Called with the built value when its scope ends (see the module's notes).
    teardown: Callable[[Any], None] | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """How a page names it to a person."""
        return self.description or self.name


@dataclass(frozen=True)
class DependencyStatus:
    """What is known of one dependency in one scope. Names and types only, never its value."""

    name: str
    scope: Scope
    required: bool
    present: bool
    healthy: bool
    error: str | None = None
    checked_at: datetime | None = None
    type_name: str | None = None
    description: str = ""

    @property
    def failed(self) -> bool:
        """It was built or checked, and that failed (a dependency never used has not failed)."""
        return not self.healthy and self.checked_at is not None

    @property
    def label(self) -> str:
        """How a page names it to a person."""
        return self.description or self.name

    @property
    def state(self) -> str:
        """One word or two for a table: ready, failed, not built yet, not checked yet."""
        if self.healthy:
            return "ready"
        if self.failed:
            return "failed"
        return "not checked yet" if self.present else "not built yet"

    def as_row(self) -> dict[str, Any]:
        """A table row for reports."""
        return {
            "dependency": self.name,
            "scope": self.scope,
            "required": self.required,
            "present": self.present,
            "healthy": self.healthy,
            "type": self.type_name or "",
            "error": self.error or "",
            "checked": self.checked_at.strftime("%H:%M:%S") if self.checked_at else "",
        }


@dataclass
class DependencyReport:
    """The state of every registered dependency for the calling session."""

    statuses: list[DependencyStatus] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every required dependency is present and healthy."""
        return all(s.healthy for s in self.statuses if s.required)

    @property
    def failing(self) -> list[DependencyStatus]:
        """Required dependencies that are missing or unhealthy."""
        return [s for s in self.statuses if s.required and not s.healthy]

    @property
    def degraded(self) -> list[DependencyStatus]:
        """Optional dependencies that are missing or unhealthy."""
        return [s for s in self.statuses if not s.required and not s.healthy]

    def __getitem__(self, name: str) -> DependencyStatus:
        for status in self.statuses:
            if status.name == name:
                return status
        raise KeyError(name)

    def render(self) -> None:
        """Draw the report in the current Streamlit page."""
        import streamlit as st

        if self.ok and not self.degraded:
            st.success(f"All {len(self.statuses)} dependencies are ready.")
        elif self.ok:
            st.warning("Running with optional parts unavailable: "
                       + ", ".join(s.label for s in self.degraded))
        else:
            st.error("Not ready: " + ", ".join(s.label for s in self.failing))
        render_statuses(self.statuses)


def render_statuses(statuses: list[DependencyStatus]) -> None:
    """Draw dependencies' statuses: a table narrow enough for a page, then each failure's
    reason on a line of its own (a reason is too long for a table cell)."""
    import streamlit as st

    if not statuses:
        return
    st.dataframe([{"dependency": s.name, "scope": s.scope, "required": s.required,
                   "status": s.state, "type": s.type_name or "",
                   "checked": s.checked_at.strftime("%H:%M:%S") if s.checked_at else ""}
                  for s in statuses], hide_index=True)
    failures = [f"- `{s.name}`{'' if s.required else ' (optional)'}: {literal(s.error)}"
                for s in statuses if s.failed and s.error]
    if failures:
        st.caption("\n".join(failures))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def reason_of(exc: BaseException) -> str:
    """A short, shareable reason: the exception's type and message, URL credentials masked."""
    text = redact(str(exc).strip())
    return f"{type(exc).__name__}: {text}"[:REASON_LIMIT] if text else type(exc).__name__


def _cycle_reason(names: list[str], note: str = "") -> str:
    return "depends on itself: " + " -> ".join(quote(n) for n in names) + note


class DependencyChecks(dict[str, DependencyStatus]):
    """Dependencies' part of a session's record: the last check of each, by name."""

    __slots__ = ()


class _Building(threading.local):
    """What the calling thread is building: names, outermost first, and a cycle on its way out.

    ``cycle`` is the cycle error being raised and the stack depth of its outermost member:
    builders at or above that depth pass it on as it is, the ones below wrap it as usual.
    """

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.cycle: tuple[DependencyNotReady, int] | None = None


class DependencyRegistry:
    """Registered dependencies, their app-wide instances and each scope's last check."""

    def __init__(self, manager: SessionStateManager) -> None:
        self._manager = manager
        self._deps: dict[str, Dependency] = {}
        self._app_values: dict[str, Any] = {}
        self._app_locks: dict[str, threading.Lock] = {}
        self._app_status: dict[str, DependencyStatus] = {}
        self._guard = threading.Lock()
        self._building = _Building()
        # The wait-for graph of app-wide builds, under _guard: which thread holds each
        # name's lock, and which name's lock each blocked thread waits for.
        self._builders: dict[str, int] = {}
        self._waiting: dict[int, str] = {}
        self._tearing_down = False  # whether session end runs end_session (under _guard)

    # -- registration ---------------------------------------------------------------------
    def register(
        self,
        name: str,
        factory: Callable[[], Any],
        *,
        health_check: Callable[[Any], Any] | None = None,
        required: bool = True,
        scope: Scope = "session",
        description: str = "",
        teardown: Callable[[Any], None] | None = None,
    ) -> Dependency:
        """Register what a page may need: built lazily by ``factory``, once per session or app.

        ``health_check(value)`` returning False or raising marks it unhealthy. Optional
        (``required=False``) dependencies degrade with a warning instead of stopping a page.
        ``teardown(value)`` runs once when its scope ends, if it was built: the session's end
        (scope="session") or ``App.close()`` (scope="app"); one that raises is logged.
        Re-registering (as every rerun does) replaces its factory and teardown. Raises
        InvalidKeyError/EmptyKeyError for a bad name, TypeError for a non-callable factory,
        health check or teardown, ValueError for an unknown scope or a change of scope.
        """
        check_key(name)
        if not callable(factory):
            raise TypeError(
                f"register_dependency({name!r}, factory): factory must be a zero-argument "
                f"callable that builds it, got {type(factory).__name__}"
            )
        if health_check is not None and not callable(health_check):
            raise TypeError(
                f"register_dependency({name!r}, health_check=...): must be a callable taking "
                f"the dependency, got {type(health_check).__name__}"
            )
        if teardown is not None and not callable(teardown):
            raise TypeError(
                f"register_dependency({name!r}, teardown=...): must be a callable taking "
                f"the dependency, got {type(teardown).__name__}"
            )
        if scope not in ("session", "app"):
            raise ValueError(
                f"register_dependency({name!r}, scope={scope!r}): scope must be 'session' "
                "(one per user session) or 'app' (one for everyone)"
            )
        dep = Dependency(name, factory, health_check, bool(required), scope, description,
                         teardown)
        with self._guard:
            old = self._deps.get(name)
            if old is not None and old.scope != scope:
                raise ValueError(
                    f"dependency {name!r} is already registered with scope={old.scope!r}; "
                    "a name keeps its scope"
                )
            self._deps[name] = dep
            self._app_locks.setdefault(name, threading.Lock())
            if teardown is not None and scope == "session" and not self._tearing_down:
                # Only once one needs it: without hooks, a sweep just frees ended sessions.
                self._manager.session_end.add_cleanup(self.end_session)
                self._tearing_down = True
        return dep

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._deps)

    def lookup(self, name: str) -> Dependency:
        """The registered dependency. Raises UnknownDependencyError."""
        dep = self._deps.get(name) if isinstance(name, str) else None
        if dep is None:
            check_key(name)
            raise UnknownDependencyError(name, self.names())
        return dep

    def is_registered(self, name: str) -> bool:
        """Whether ``name`` is a registered dependency."""
        return name in self._deps

    # -- building and checking -------------------------------------------------------------
    def get(self, name: str, validate: bool = True) -> Any:
        """The dependency, built once per scope.

        Raises DependencyNotReady (build failed or unhealthy), UnknownDependencyError.
        """
        dep = self.lookup(name)
        stack = self._building.stack
        if name in stack:  # asked for by its own factory, directly or through others
            start = stack.index(name)
            self._raise_cycle(dep, start, _cycle_reason([*stack[start:], name]))
        if dep.scope == "app":
            return self._get_app(dep, validate)
        return self._get_session(dep, validate)

    def _raise_cycle(self, dep: Dependency, start: int, reason: str) -> NoReturn:
        """Raise DependencyNotReady for a cycle whose outermost member here is ``dep``."""
        exc = DependencyNotReady(dep.name, reason, dep.description)
        self._building.cycle = (exc, start)
        raise exc

    def _get_session(self, dep: Dependency, validate: bool) -> Any:
        # Under the session lock: racing threads of one session build it once.
        lock, storage = self._manager.enter("get_dependency", script_only=True)
        with lock:
            record = lock.record
            try:
                value = storage[dep.name]
            except KeyError:
                value = self._build(dep, record)
                storage[dep.name] = value
            if validate:
                self._check(dep, value, record)
            return value

    def _get_app(self, dep: Dependency, validate: bool) -> Any:
        value = self._app_values.get(dep.name, MISSING)
        if value is MISSING:
            with self._app_lock(dep):
                value = self._app_values.get(dep.name, MISSING)
                if value is MISSING:
                    value = self._build(dep, None)
                    self._app_values[dep.name] = value
        if validate:
            self._check(dep, value, None)
        return value

    @contextlib.contextmanager
    def _app_lock(self, dep: Dependency) -> Iterator[None]:
        """Hold ``dep``'s app lock for a block, unless waiting for it would close a cycle of
        builders. Raises DependencyNotReady naming the cycle."""
        self._lock_app(dep)
        try:
            yield
        finally:
            with self._guard:
                del self._builders[dep.name]
            self._app_locks[dep.name].release()
            note_held(-1)

    def _lock_app(self, dep: Dependency) -> None:
        """Take ``dep``'s app lock, unless waiting for it would close a cycle of builders.

        Raises DependencyNotReady naming the cycle.
        """
        lock, me = self._app_locks[dep.name], threading.get_ident()
        with self._guard:
            if lock.acquire(False):
                self._builders[dep.name] = me
                note_held(1)  # the factory runs under it: safestate must know (see locks_held)
                return
            # Follow who holds what we want, and what that thread waits for, back to us.
            # Checked and recorded under one guard, so of two threads closing a cycle at
            # once, the second sees the first waiting.
            chain, owner = [dep.name], self._builders.get(dep.name)
            while owner is not None and owner != me and len(chain) <= len(self._waiting):
                wanted = self._waiting.get(owner)
                if wanted is None:
                    break
                chain.append(wanted)
                owner = self._builders.get(wanted)
            if owner != me:
                self._waiting[me] = dep.name
        if owner == me:
            # ``chain`` ends with a name this thread is building: the cycle runs from there.
            stack = self._building.stack
            mine = chain[-1]
            start = stack.index(mine) if mine in stack else len(stack)
            self._raise_cycle(self._deps.get(mine, dep), start,
                              _cycle_reason([*stack[start:], *chain], " (across threads)"))
        acquired = False
        try:
            acquired = lock.acquire()  # no cycle: whoever holds it finishes and lets go
        finally:
            with self._guard:
                del self._waiting[me]
                if acquired:
                    self._builders[dep.name] = me
                    note_held(1)

    def _build(self, dep: Dependency, record: SessionRecord | None) -> Any:
        building = self._building
        depth = len(building.stack)
        building.stack.append(dep.name)
        try:
            return dep.factory()
        except Exception as exc:
            cycle = building.cycle
            if cycle is not None and cycle[0] is exc and depth >= cycle[1]:
                # A member of the cycle: the error names the cycle, wrapping would bury it.
                self._record(dep, record, present=False, healthy=False, error=cycle[0].reason,
                             logged="depends on itself")
                raise
            reason = reason_of(exc)
            # The exception's type only in logs: its message may quote the app's data.
            self._record(dep, record, present=False, healthy=False, error=reason,
                         logged=f"could not be built: {type(exc).__name__}")
            raise DependencyNotReady(dep.name, f"could not be built ({reason})",
                                     dep.description) from exc
        finally:
            building.stack.pop()
            if building.cycle is not None and depth <= building.cycle[1]:
                building.cycle = None  # out of the cycle's outermost member: done with it

    def _check(self, dep: Dependency, value: Any, record: SessionRecord | None) -> None:
        error = None
        if dep.health_check is not None:
            # Returning False or raising means unhealthy; any other result (None too, for
            # checks that raise on failure) means healthy.
            try:
                if dep.health_check(value) is False:
                    error = "its health check failed"
            except Exception as exc:
                error = f"its health check raised {reason_of(exc)}"
        self._record(dep, record, present=True, healthy=error is None, error=error,
                     type_name=type(value).__name__, logged="is unhealthy")
        if error is not None:
            raise DependencyNotReady(dep.name, error, dep.description)

    def _record(self, dep: Dependency, record: SessionRecord | None, *, present: bool,
                healthy: bool, error: str | None, logged: str, type_name: str | None = None,
                ) -> None:
        status = DependencyStatus(dep.name, dep.scope, dep.required, present, healthy, error,
                                  _now(), type_name, dep.description)
        if dep.scope == "app":
            with self._guard:
                before = self._app_status.get(dep.name)
                self._app_status[dep.name] = status
        else:
            # Called under the session lock: the record's dependency part is ours to change.
            checks = {} if record is None else record.part(DependencyChecks)
            before = checks.get(dep.name)
            checks[dep.name] = status
        # Logged when health changes, not on every rerun that finds it still down.
        if not healthy and (before is None or before.healthy):
            _events.log.warning("safestate: dependency %s %s (%s)", quote(dep.name), logged,
                                _compat.current_label())
        elif healthy and before is not None and not before.healthy:
            _events.log.info("safestate: dependency %s is ready again (%s)", quote(dep.name),
                             _compat.current_label())

    @staticmethod
    def forget_session_checks(record: SessionRecord | None) -> None:
        """Forget a session's recorded checks (its values were reset): its part only."""
        if record is not None:
            record.reset(DependencyChecks)

    def discard_if_failed(self, name: str) -> bool:
        """Drop the built instance if its last check failed, so the next use builds it anew.

        Checked and dropped under the lock it is built under, so an instance another
        thread has just rebuilt healthy is kept.
        """
        dep = self.lookup(name)
        if dep.scope == "app":
            with self._app_locks[name]:
                status = self._app_status.get(name)
                if name in self._app_values and status is not None and status.failed:
                    del self._app_values[name]
                    return True
            return False
        lock, storage = self._manager.enter("retry")
        with lock:
            if self.status(dep, storage, lock.record).failed and has_key(storage, name):
                del storage[name]
                return True
            return False

    # -- teardown --------------------------------------------------------------------------
    def end_session(self, session: SessionHandle) -> None:
        """Tear down the ended ``session``'s built session-scoped dependencies (a session end
        cleanup: the sweeper calls it once per session, after the hooks). Never raises."""
        for dep in list(self._deps.values()):
            if dep.scope != "session" or dep.teardown is None:
                continue
            try:
                value = session.safe_get(dep.name, MISSING)
            except Exception as exc:  # its state cannot be read (a store down): the next goes on
                self._log_teardown(dep, exc, session.session_id)
                continue
            if value is not MISSING:  # never built (or reset): nothing to tear down
                self._teardown(dep, value, session.session_id)

    def close(self) -> None:
        """Tear down every built app-wide dependency that has a teardown, and drop it (the
        next use builds it anew). Never raises."""
        for dep in list(self._deps.values()):
            if dep.scope != "app" or dep.teardown is None:
                continue
            with self._app_locks[dep.name]:  # not while another thread builds it
                value = self._app_values.pop(dep.name, MISSING)
            if value is not MISSING:
                self._teardown(dep, value, None)

    def _teardown(self, dep: Dependency, value: Any, session_id: str | None) -> None:
        assert dep.teardown is not None
        try:
            dep.teardown(value)
        except Exception as exc:
            self._log_teardown(dep, exc, session_id)

    @staticmethod
    def _log_teardown(dep: Dependency, exc: Exception, session_id: str | None) -> None:
        # The exception's type only: its message may quote the app's data.
        _events.log.error("safestate: dependency %s teardown raised %s (%s)", quote(dep.name),
                          type(exc).__name__,
                          "app" if session_id is None else _events.label_of(session_id))

    # -- reporting -------------------------------------------------------------------------
    def status(
        self, dep: Dependency, state: Any, record: SessionRecord | None = None
    ) -> DependencyStatus:
        """The last known status of ``dep`` in the session owning ``state`` (or the app).

        ``record`` is that session's record, when the caller has it at hand.
        """
        if dep.scope == "app":
            present = dep.name in self._app_values
            known = self._app_status.get(dep.name)
        else:
            present = has_key(state, dep.name)
            if record is None:
                record = self._manager.record_of(state)
            checks = None if record is None else record.peek(DependencyChecks)
            known = None if checks is None else checks.get(dep.name)
        if known is not None and known.present == present:
            return known
        return DependencyStatus(dep.name, dep.scope, dep.required, present, False,
                                None if present else "not built yet", None, None,
                                dep.description)

    def session_statuses(
        self, state: Any, record: SessionRecord | None = None
    ) -> list[DependencyStatus]:
        """Every dependency's last known status for one session."""
        if record is None:
            record = self._manager.record_of(state)
        return [self.status(dep, state, record) for dep in self._deps.values()]
