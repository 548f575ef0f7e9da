"""What every page of the demo shares: style, dependencies, the session's typed state."""

from __future__ import annotations

import os
import pathlib
import time

import streamlit as st
from pydantic import BaseModel

import safestate

HERE = pathlib.Path(__file__).parent


class DemoState(BaseModel):
    """This session's own keys, declared once: defaults, types, autocompletion."""

    my_clicks: int = 0
    board_clicks: int = 0
    nickname: str = ""
    progress: int = 0
    worker_running: bool = False


def load_css() -> None:
    """Style the app; the stylesheet is read and built once per session (the design's css_loaded).

    Streamlit redraws every element on every run, so the <style> tag itself is emitted
    each run; what the flag saves is building it.
    """
    if not safestate.safe_get("css_loaded", False):
        css = (HERE / "style.css").read_text()
        safestate.safe_update({"css": css, "css_loaded": True})
    st.html(f"<style>{safestate.safe_get('css')}</style>")


class Container:
    """The design's `contenedor`: the app's dependency-injection container."""

    def __init__(self) -> None:
        self.services = {"clock": time.time, "greeting": "Hello"}


class MasterUseCase:
    """The design's `caso_uso_maestro`: the app's main use case, built from the container."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def greet(self, name: str) -> str:
        return f"{self.container.services['greeting']}, {name or 'there'}!"


class AIModel:
    """A stand-in AI system that takes a moment to start and can be broken from the UI."""

    def __init__(self) -> None:
        time.sleep(1.0)  # a model takes a moment to load
        self.loaded_at = time.strftime("%H:%M:%S")

    def answer(self, question: str) -> str:
        words = question.split()
        return f"You asked {len(words)} word(s); the longest is '{max(words, key=len)}'." if words \
            else "Ask me something."


def register_dependencies() -> None:
    """Register what the pages need (every run re-registers; built instances are kept)."""
    safestate.register_dependency("contenedor", Container, description="The service container")
    safestate.register_dependency(
        "caso_uso_maestro",
        lambda: MasterUseCase(safestate.get_contenedor()),
        description="The main use case",
    )
    safestate.register_dependency(
        "ia_system",
        AIModel,
        health_check=lambda model: safestate.shared.safe_get("ai_healthy", True),
        description="The AI system",
    )
    safestate.register_dependency(
        "recommendations",
        _connect_recommendations,
        required=False,
        description="Recommendations",
        scope="app",
    )


def _connect_recommendations() -> list[str]:
    if not safestate.shared.safe_get("recs_up", False):
        raise ConnectionError("the recommendations service is switched off in this demo")
    return ["Try the race page", "Open a second browser window"]


def admin_password() -> str | None:
    """The monitor password: secrets["safestate_admin_password"] or $SAFESTATE_ADMIN_PASSWORD."""
    try:
        secret = st.secrets.get("safestate_admin_password")
    except Exception:  # no secrets.toml at all
        secret = None
    return str(secret) if secret else os.environ.get("SAFESTATE_ADMIN_PASSWORD") or None


def state() -> DemoState:
    """This session's typed state."""
    return safestate.typed(DemoState)
