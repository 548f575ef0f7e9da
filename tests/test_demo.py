"""The demo app runs, and its counters and worker do what they show."""

from __future__ import annotations

import pathlib
import time

from streamlit.testing.v1 import AppTest

DEMO = pathlib.Path(__file__).parents[1] / "examples" / "demo" / "app.py"


def test_demo_counts_and_worker_progress() -> None:
    at = AppTest.from_file(str(DEMO), default_timeout=30).run()
    assert not at.exception
    at.button[0].click().run()
    at.button[0].click().run()
    assert at.metric[0].value == "2"
    at.button[2].click().run()
    deadline = time.monotonic() + 20
    while at.session_state["progress"] < 100 and time.monotonic() < deadline:
        time.sleep(0.1)  # polling interval of a bounded wait
        at.run()
    assert at.session_state["progress"] == 100
    assert not at.exception
