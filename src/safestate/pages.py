"""What a page needs: ``require``, ``guard``, the recovery panel's Retry, and "Reset my session"."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from contextlib import ContextDecorator
from typing import TYPE_CHECKING, Any, NoReturn

from . import _compat, _events
from ._keys import DELETE, MISSING, check_key
from ._markdown import literal
from .dependencies import Dependency, DependencyRegistry
from .errors import DependencyNotReady, MissingStateError, StoreUnavailable, UnreadableValueError
from .recovery import Problem, show_recovery

if TYPE_CHECKING:
    from .manager import SessionStateManager


class Pages:
    """Page guards and recovery for the calling session."""

    #: Errors that ``guard()`` turns into the recovery panel (or, for an optional
    #: dependency, a warning).
    recoverable: tuple[type[BaseException], ...] = (
        DependencyNotReady, MissingStateError, StoreUnavailable, UnreadableValueError,
    )

    def __init__(self, manager: SessionStateManager, dependencies: DependencyRegistry) -> None:
        self._manager = manager
        self._dependencies = dependencies

    def require(self, *names: str) -> dict[str, Any]:
        """What a page needs, by name (dependencies or session keys); their values by name.

        A missing or unhealthy required one shows the recovery panel and stops the page;
        an optional dependency that fails shows a warning and maps to None.
        """
        self._manager.script_state("require")
        deps = self._dependencies
        values: dict[str, Any] = {}
        problems: list[Problem] = []
        for name in map(check_key, names):
            if deps.is_registered(name):
                dep = deps.lookup(name)
                try:
                    values[name] = deps.get(name, validate=True)
                except DependencyNotReady as exc:
                    if dep.required:
                        problems.append(self.problem_of(exc))
                    else:
                        self.warn_unavailable(dep, exc)
                        values[name] = None
            else:
                value = self._manager.safe_get(name, MISSING)
                if value is MISSING:
                    problems.append(self.key_problem(name, None))
                else:
                    values[name] = value
        if problems:
            self.recover(problems)
        return values

    def guard(self, recoverable: tuple[type[BaseException], ...] | None = None) -> Guard:
        """A missing key or required dependency inside the block shows the recovery panel.

        An optional dependency that fails there shows ``require()``'s warning instead: the
        rest of the block (or decorated function, which then returns None) is skipped and
        the page goes on. ``recoverable``: the errors that do either (default:
        ``Pages.recoverable``); other errors pass through.
        """
        return Guard(self, self.recoverable if recoverable is None else recoverable)

    def optional_of(self, exc: DependencyNotReady) -> Dependency | None:
        """The registered optional dependency ``exc`` is about; None for a required one or
        a name never registered."""
        if not self._dependencies.is_registered(exc.name):
            return None
        dep = self._dependencies.lookup(exc.name)
        return None if dep.required else dep

    @staticmethod
    def warn_unavailable(dep: Dependency, exc: DependencyNotReady) -> None:
        """Warn that optional ``dep`` is unavailable and the parts needing it are off."""
        import streamlit as st

        st.warning(f"**{dep.label}** is unavailable: {literal(exc.reason)}. The parts of this page "
                   "that need it are turned off.", icon=":material/power_off:")

    def retry(self, names: Iterable[str]) -> None:
        """Drop failed built instances of ``names`` so the next use builds them again."""
        names = list(names)
        _events.log.info("safestate: retry of %s (%s)", ", ".join(names), _compat.current_label())
        for name in names:
            if self._dependencies.is_registered(name):
                self._dependencies.discard_if_failed(name)

    def reset_session(self) -> int:
        """Clear every key of the calling session's state (widgets' too); return how many.

        Persisted keys go from the store too, in one commit. The session's dependency checks
        are forgotten; its identity and what persistence knows of it stay.
        """
        lock, storage = self._manager.enter("reset_session", script_only=True)
        with lock:
            keys = storage.user_keys()
            storage.apply([(k, DELETE) for k in keys])
            self._dependencies.forget_session_checks(lock.record)
        _events.log.info("safestate: session reset, %d key(s) cleared (%s)", len(keys),
                         _compat.current_label())
        return len(keys)

    def problem_of(self, exc: BaseException) -> Problem:
        """How the recovery panel shows ``exc``: names and a sentence, never a value."""
        if isinstance(exc, DependencyNotReady):
            what = exc.description or f"`{exc.name}`"
            return Problem(exc.name, "dependency",
                           f"**{what}** is not ready: {literal(exc.reason)}")
        if isinstance(exc, MissingStateError):
            first = exc.keys[0] if exc.keys else "?"
            return self.key_problem(first, exc.errors.get(first))
        if isinstance(exc, UnreadableValueError):
            return Problem(exc.key, "key", f"**Saved value `{exc.key}` can't be read**: it "
                           "was written by another version of the app or is damaged. Reset "
                           "it from the app, or use **Reset my session**.")
        if isinstance(exc, StoreUnavailable):
            return Problem("store", "store", "**Saved data is out of reach right now**: "
                           f"{literal(str(exc))}. Your other work on this page is not "
                           "affected.")
        return Problem(type(exc).__name__, "error", literal(str(exc)))

    def key_problem(self, name: str, error: str | None) -> Problem:
        """How the recovery panel shows a missing key or dependency ``name``."""
        if self._dependencies.is_registered(name):
            dep = self._dependencies.lookup(name)
            reason = f": {literal(error)}" if error else ""
            return Problem(name, "dependency", f"**{dep.label}** is not ready{reason}.")
        detail = f" (its setup failed: {literal(error)})" if error else ""
        return Problem(name, "key", f"Session value `{name}` is missing{detail}.")

    def recover(self, problems: list[Problem]) -> NoReturn:
        """Show the recovery panel for ``problems`` and stop the page."""
        names = [p.name for p in problems]
        _events.log.warning("safestate: recovery panel shown for %s (%s)", ", ".join(names),
                            _compat.current_label())
        show_recovery(problems, functools.partial(self.retry, names), self._reset)

    def _reset(self) -> None:  # a button callback returns None
        self.reset_session()


class Guard(ContextDecorator):
    """Turns a missing key or required dependency inside a block into the recovery panel, and
    an optional dependency's failure into a warning that skips the rest of the block."""

    def __init__(self, pages: Pages, recoverable: tuple[type[BaseException], ...]) -> None:
        self._pages = pages
        self._recoverable = recoverable

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> bool:
        """Swallow an optional dependency's failure after warning (True); show the panel for
        the other recoverable errors (stops the run); let anything else through (False)."""
        if exc is None or not isinstance(exc, self._recoverable):
            return False
        if isinstance(exc, DependencyNotReady):
            optional = self._pages.optional_of(exc)
            if optional is not None:
                self._pages.warn_unavailable(optional, exc)
                return True
        self._pages.recover([self._pages.problem_of(exc)])
