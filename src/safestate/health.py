"""Health reports of the calling session, or of every session the app tracks: names, no values."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._events import session_label
from ._keys import has_key
from .dependencies import DependencyRegistry, DependencyStatus, render_statuses
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .manager import SessionStateManager


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
        render_statuses(self.dependencies)


class Health:
    """Builds health reports from the session manager's records and the dependencies."""

    def __init__(self, manager: SessionStateManager, dependencies: DependencyRegistry,
                 declared: Callable[[], list[str]]) -> None:
        self._manager = manager
        self._dependencies = dependencies
        self._declared = declared  # the typed() keys every session should have

    def report(self, scope: Literal["session", "app"] = "session") -> HealthReport:
        """Health of the calling session, or ("app") of every session safestate tracks.

        Raises InvalidArgumentError (a ValueError) for another scope, NoSessionError for
        "session" outside a script run.
        """
        if scope == "session":
            return self._session()
        if scope == "app":
            return self._app()
        raise InvalidArgumentError(
            f"health_report scope must be 'session' or 'app', got {scope!r}")

    def _session(self) -> HealthReport:
        lock, storage = self._manager.enter("health_report", script_only=True)
        with lock:
            values = storage.snapshot()
            record = lock.record
        keys = [_describe(k, v) for k, v in sorted(values.items())]
        missing = [k for k in self._declared() if k not in values]
        state = None if record is None else record.state
        deps = self._dependencies.session_statuses(state, record)
        ok = not missing and not any(d.required and d.failed for d in deps)
        return HealthReport("session", ok, keys, missing, deps,
                            session_label=session_label(lock.key))

    def _app(self) -> HealthReport:
        # Presence checks only (single dict reads): no other session's lock is needed,
        # and no value leaves its session.
        records = [r for r in self._manager.records() if r.state is not None]
        missing: dict[str, int] = {}
        failing: dict[str, int] = {}
        declared = self._declared()
        deps = self._dependencies
        for record in records:
            for key in declared:
                if not has_key(record.state, key):
                    missing[key] = missing.get(key, 0) + 1
            for status in deps.session_statuses(record.state, record):
                if status.scope == "session" and status.required and status.failed:
                    failing[status.name] = failing.get(status.name, 0) + 1
        app_deps = [deps.status(d, None) for d in map(deps.lookup, deps.names())
                    if d.scope == "app"]
        for status in app_deps:
            if status.required and status.failed:
                failing[status.name] = failing.get(status.name, 0) + 1
        ok = not failing and not missing
        return HealthReport("app", ok, dependencies=app_deps, sessions=len(records),
                            sessions_missing_keys=missing, sessions_failing_dependencies=failing)


def _describe(key: str, value: Any) -> dict[str, Any]:
    try:
        length: int | None = len(value)
    except TypeError:
        length = None
    return {"key": key, "type": type(value).__name__, "length": length,
            "bytes": sys.getsizeof(value)}
