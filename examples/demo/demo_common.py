"""What every page of the demo shares: style, dependencies, the session's typed state."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import pathlib
import secrets
import time
from typing import Literal

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
        lambda: MasterUseCase(safestate.session_validator.get_contenedor()),
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


#: Where Streamlit looks for secrets.toml (the app's folder and the user's).
SECRETS_FILES = (pathlib.Path(".streamlit/secrets.toml"),
                 pathlib.Path.home() / ".streamlit" / "secrets.toml")


def admin_password() -> str | None:
    """The monitor password: secrets["safestate_admin_password"] or $DEMO_ADMIN_PASSWORD."""
    secret = None
    # Only with a secrets file: without one, Streamlit before 1.44 draws "No secrets found"
    # on the page when st.secrets is read, even inside a try.
    if any(path.exists() for path in SECRETS_FILES):
        try:
            secret = st.secrets.get("safestate_admin_password")
        except Exception:  # a secrets file Streamlit cannot read
            secret = None
    return str(secret) if secret else os.environ.get("DEMO_ADMIN_PASSWORD") or None


#: Wrong admin passwords a session may try in a row before it has to wait.
FREE_TRIES = 2
#: The longest wait between two tries, in seconds.
BACKOFF_CAP = 60.0
#: The first wait when $DEMO_ADMIN_BACKOFF_SECONDS is unset or not a number of seconds.
BACKOFF_DEFAULT = 1.0
ATTEMPTS_KEY = "admin_attempts"
# Fingerprints tell "the same input again" (every rerun resubmits the box) from a new
# try without keeping what was typed; the key lives and dies with the process.
_PEPPER = secrets.token_bytes(32)


def admin_backoff_seconds() -> float:
    """The first wait after too many wrong admin passwords: $DEMO_ADMIN_BACKOFF_SECONDS, or 1 s."""
    try:
        seconds = float(os.environ.get("DEMO_ADMIN_BACKOFF_SECONDS", BACKOFF_DEFAULT))
    except ValueError:
        return BACKOFF_DEFAULT
    return seconds if math.isfinite(seconds) and seconds >= 0 else BACKOFF_DEFAULT


def backoff_delay(failures: int, base: float) -> float:
    """Seconds to wait after ``failures`` wrong tries in a row: none, then doubling to a cap."""
    if failures <= FREE_TRIES:
        return 0.0
    return min(BACKOFF_CAP, base * 2.0 ** min(failures - FREE_TRIES - 1, 32))


def admin_attempt(given: str, expected: str) -> tuple[Literal["ok", "wrong", "wait"], float]:
    """Judge a submitted admin password; return the verdict and the seconds left to wait.

    "wait": a back-off is running, so the input is not checked (nor counted), right or
    wrong. An input already judged keeps its verdict: reruns are not new tries. The
    record is read and written in one transaction, so parallel reruns lose no failure.
    """
    mark = hmac.new(_PEPPER, hashlib.sha256(expected.encode()).digest() + given.encode(),
                    hashlib.sha256).hexdigest()
    now = time.monotonic()
    with safestate.transaction() as tx:
        record = tx.get(ATTEMPTS_KEY) or {"failures": 0, "retry_at": 0.0, "checked": "",
                                          "ok": False}
        wait = max(0.0, record["retry_at"] - now)
        if hmac.compare_digest(record["checked"], mark):
            return ("ok" if record["ok"] else "wrong"), wait
        if wait > 0:
            return "wait", wait
        ok = hmac.compare_digest(given.encode(), expected.encode())  # constant time
        failures = 0 if ok else record["failures"] + 1
        delay = backoff_delay(failures, admin_backoff_seconds())
        tx.set(ATTEMPTS_KEY, {"failures": failures, "retry_at": now + delay, "checked": mark,
                              "ok": ok})
    return ("ok" if ok else "wrong"), delay


def state() -> DemoState:
    """This session's typed state."""
    return safestate.typed(DemoState)
