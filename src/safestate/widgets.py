"""Widgets bound to state: ``st.text_input("Name", **session_manager.bind("name"))``.

Streamlit 1.67 deletes a widget's key from ``st.session_state`` at the end of every run
that does not draw the widget (another page, a branch not taken), so a value kept only
under a widget's key is gone after a page switch, and it never reaches a store. A bound
widget gets a key of its own instead (``<key>__widget`` unless named): before the widget
is drawn, ``bind`` sets that widget key from the bound key when they differ (Streamlit's
documented way to give a widget its value; a widget's key cannot be set once the widget
is drawn in the run), and the widget's ``on_change`` copies its new value back with
``safe_set``, so a typed key is validated and a persisted one written through. The bound
key is an ordinary key: declared, persisted and read like any other.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import streamlit as st
from streamlit.errors import StreamlitAPIException

from . import _compat, _events
from ._keys import MISSING, check_key
from .errors import (
    InvalidArgumentError,
    NotSerializableError,
    StateValidationError,
    StoreUnavailable,
    WidgetBindingError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._locks import ScopeLock
    from .schema import SchemaRegistry
    from .storage import Storage

#: What ``bind(key)`` appends to ``key`` to name its widget's key, unless given one.
WIDGET_SUFFIX = "__widget"
#: Errors of a write-back that leave the bound key unchanged: shown above the widget, which
#: goes back to the bound key's value. (Anything else is raised, as from any callback.)
REFUSED = (StateValidationError, NotSerializableError, StoreUnavailable)


class BoundSession(Protocol):
    """What binding needs of a session: the session manager's safe_* calls and its lock."""

    @property
    def schema(self) -> SchemaRegistry: ...

    def safe_get(self, key: str, default: Any = None) -> Any: ...

    def safe_set(self, key: str, value: Any) -> None: ...

    def enter(self, op: str, *, script_only: bool = False) -> tuple[ScopeLock, Storage]: ...


@dataclass(slots=True)
class RefusedValues:
    """A session's record part: why a bound widget's last value was refused, by widget key.

    Written by the widget's on_change, with the run it starts (``_compat.current_run_marker``:
    Streamlit runs callbacks after it has reset the run's context); shown by that run's bind,
    dropped by any later one (a reason is news only right after the change).
    """

    reasons: dict[str, tuple[object, str]] = field(default_factory=dict)


def widget_key_for(key: str) -> str:
    """The widget key ``bind(key)`` gives its widget when none is named."""
    return key + WIDGET_SUFFIX


def bind(session: BoundSession, key: str, widget_key: str | None,
         persisted: Callable[[str], bool] | None) -> dict[str, Any]:
    """The widget arguments (``key``, ``on_change``) that bind a widget to ``key``; sets the
    widget key from ``key`` first. ``persisted`` tells the keys kept in a store (None: none).
    See ``SessionStateManager.bind``; raises as it.
    """
    check_key(key)
    wkey = widget_key_for(key) if widget_key is None else check_key(widget_key)
    if wkey == key:
        raise InvalidArgumentError(
            f"bind({key!r}, widget_key={wkey!r}): the widget key must differ from the bound "
            "key; Streamlit deletes a widget's key whenever the widget is not drawn. Leave "
            f"widget_key out (it is then {widget_key_for(key)!r})."
        )
    if wkey in session.schema.fields or (persisted is not None and persisted(wkey)):
        raise InvalidArgumentError(
            f"bind({key!r}): its widget key {wkey!r} is declared or persisted; declare and "
            f"persist {key!r}, the bound key, and name the widget key otherwise."
        )
    lock, _ = session.enter("bind", script_only=True)
    with lock:
        record = lock.record
        refused = None if record is None else record.part(RefusedValues).reasons.pop(wkey, None)
        if refused is not None and refused[0] is not _compat.current_run_marker():
            refused = None  # refused in an earlier run that did not draw the widget: old news
        value = session.safe_get(key, MISSING)
        shown = session.safe_get(wkey, MISSING)
        # An unset bound key leaves the widget alone: it shows its own default until a change.
        if value is not MISSING and (shown is MISSING or not _same(shown, value)):
            _give(session, key, wkey, value)
    if refused is not None:
        st.error(refused[1], icon=":material/error:")
    return {"key": wkey, "on_change": functools.partial(write_back, session, key, wkey)}


def _give(session: BoundSession, key: str, wkey: str, value: Any) -> None:
    """Set the widget key to ``value``; a key Streamlit refuses raises WidgetBindingError."""
    try:
        session.safe_set(wkey, value)
    except StreamlitAPIException as exc:
        if _compat.widget_already_drawn(exc):
            # Streamlit refuses a key whose widget was drawn earlier in this run: bind()
            # came after the widget, or twice for one widget key.
            raise WidgetBindingError(
                key, wkey, "a widget with that key was already drawn in this run") from None
        raise WidgetBindingError(  # any other refusal: named, never silent
            key, wkey, f"Streamlit refused it ({type(exc).__name__})") from None


def _same(shown: Any, value: Any) -> bool:
    """Whether the widget shows ``value`` already (a list read back from JSON is its tuple)."""
    if isinstance(shown, (list, tuple)) and isinstance(value, (list, tuple)):
        return tuple(shown) == tuple(value)
    try:
        return bool(shown == value)
    except Exception:  # a value whose == raises or is ambiguous: set it again
        return False


def write_back(session: BoundSession, key: str, wkey: str) -> None:
    """A bound widget's on_change: copy its value to ``key`` with ``safe_set``.

    A value ``key`` refuses (REFUSED) changes nothing: the reason is shown above the widget
    by the run's bind(), which gives the widget the bound value again. Raises anything else.
    """
    value = session.safe_get(wkey, MISSING)
    if value is MISSING:  # the widget key went meanwhile (a reset): nothing to copy
        return
    try:
        session.safe_set(key, value)
    except REFUSED as exc:
        _events.log.info("safestate: the widget bound to %r changed it to a value it refuses "
                         "(%s); nothing was written (%s)", key, type(exc).__name__,
                         _compat.current_label())
        lock, _ = session.enter("bind", script_only=True)
        with lock:
            if lock.record is not None:
                lock.record.part(RefusedValues).reasons[wkey] = (
                    _compat.current_run_marker(), str(exc))
