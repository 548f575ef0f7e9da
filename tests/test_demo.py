"""The demo app's pages run in AppTest without errors, and their counters count."""

from __future__ import annotations

import pathlib
import time

import pytest
from streamlit.testing.v1 import AppTest

DEMO = pathlib.Path(__file__).parents[1] / "examples" / "demo" / "app.py"


def demo() -> AppTest:
    at = AppTest.from_file(str(DEMO), default_timeout=30).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_home_counts_this_sessions_clicks() -> None:
    at = demo()
    at.button(key="my_counter").click().run()
    at.button(key="my_counter").click().run()
    assert at.metric[0].value == "2"
    assert at.session_state["css_loaded"] is True


def test_worker_progress_arrives_while_the_user_clicks() -> None:
    at = demo()
    at.switch_page("views/worker.py").run()
    at.button(key="start_worker").click().run()
    deadline = time.monotonic() + 20
    while at.session_state["progress"] < 100 and time.monotonic() < deadline:
        at.button(key="meanwhile").click().run()  # the user keeps clicking
    assert at.session_state["progress"] == 100
    assert not at.exception


def test_race_page_loses_nothing_through_safestate() -> None:
    at = demo()
    at.switch_page("views/race.py").run()
    at.button(key="run_race").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["race_safe"] == 300


def test_sessions_page_needs_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAFESTATE_ADMIN_PASSWORD", raising=False)
    at = demo()
    at.switch_page("views/sessions.py").run()
    assert "SAFESTATE_ADMIN_PASSWORD" in at.info[0].value and not at.metric

    monkeypatch.setenv("SAFESTATE_ADMIN_PASSWORD", "s3cret")
    at.run()
    at.text_input(key="admin_password").set_value("guess").run()
    assert at.error[0].value == "Wrong password." and not at.metric
    at.text_input(key="admin_password").set_value("s3cret").run()
    assert not at.exception
    assert [m.label for m in at.metric][:4] == ["Live sessions", "Tracked", "Cleaned up",
                                                "Locks held"]
