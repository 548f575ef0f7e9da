"""The friendly recovery panel a page shows instead of a traceback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from . import _compat


@dataclass(frozen=True)
class Problem:
    """One thing a page needs that is missing or unhealthy."""

    name: str
    kind: str  # "dependency" or "key"
    message: str


def show_recovery(
    problems: list[Problem], on_retry: Callable[[], None], on_reset: Callable[[], None]
) -> NoReturn:
    """Draw what is wrong with "Retry" and "Reset my session" buttons, then stop the run."""
    import streamlit as st

    lines = "\n".join(f"- {p.message}" for p in problems)
    st.error(f"**This page can't load yet.**\n\n{lines}", icon=":material/error:")
    with _compat.button_row():
        st.button("Retry", key="safestate_recovery_retry", on_click=on_retry, type="primary",
                  icon=":material/refresh:")
        st.button("Reset my session", key="safestate_recovery_reset", on_click=on_reset,
                  icon=":material/restart_alt:")
    st.caption(
        "**Retry** tries again. **Reset my session** clears your data in this app and starts "
        "over; other users are not affected."
    )
    st.stop()
    raise AssertionError("unreachable: st.stop() raises")  # pragma: no cover
