"""What the plain pages share, written as most Streamlit apps are: st.session_state directly."""

from __future__ import annotations

import pathlib
import time
from typing import Any

import streamlit as st

HERE = pathlib.Path(__file__).parents[1]

#: This session's keys and their defaults (the safestate demo declares them as a model).
DEFAULTS: dict[str, Any] = {"my_clicks": 0, "board_clicks": 0, "nickname": ""}


def load_css() -> None:
    """Read the stylesheet once per session and emit it every run (as the demo does)."""
    if not st.session_state.get("css_loaded", False):
        st.session_state.css = (HERE / "style.css").read_text()
        st.session_state.css_loaded = True
    st.html(f"<style>{st.session_state.css}</style>")


class Container:
    """The app's service container."""

    def __init__(self) -> None:
        self.services = {"clock": time.time, "greeting": "Hello"}


class MasterUseCase:
    """The app's main use case, built from the container."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def greet(self, name: str) -> str:
        return f"{self.container.services['greeting']}, {name or 'there'}!"


def register_dependencies() -> None:
    """Build this session's services on its first run and keep them in session state."""
    if "contenedor" not in st.session_state:
        st.session_state.contenedor = Container()
    if "caso_uso_maestro" not in st.session_state:
        st.session_state.caso_uso_maestro = MasterUseCase(st.session_state.contenedor)


def state() -> Any:
    """This session's state, with its keys defaulted on the first run."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    return st.session_state


@st.cache_resource
def board_store() -> dict[str, Any]:
    """The board every session shares: one dict per process, no lock (the usual pattern)."""
    return {"board_total": 0, "board_messages": []}
