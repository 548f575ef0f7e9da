"""The demo app's pages run in AppTest without errors, and their counters count."""

from __future__ import annotations

import pathlib
import re
import time
from typing import Any

import pytest
from conftest import APPTEST_NAVIGATION, PARALLEL_FRAGMENTS
from streamlit.testing.v1 import AppTest

from safestate import _compat

DEMO = pathlib.Path(__file__).parents[1] / "examples" / "demo" / "app.py"
#: The demo's pages come from st.navigation.
pytestmark = APPTEST_NAVIGATION


@pytest.fixture(autouse=True)
def demo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # `streamlit run` puts the script's folder on sys.path; AppTest does so since 1.5x only.
    monkeypatch.syspath_prepend(str(DEMO.parent))


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


def test_race_page_says_which_streamlit_it_needs_where_it_cannot_race() -> None:
    at = demo()
    at.switch_page("views/race.py").run()
    assert not at.exception, [e.message for e in at.exception]
    needs = [i.value for i in at.info if "Streamlit 1.58" in i.value]
    assert bool(needs) is not _compat.at_least(_compat.PARALLEL_FRAGMENTS)
    assert at.button(key="run_race").disabled is bool(needs)


@PARALLEL_FRAGMENTS
def test_race_page_loses_nothing_through_safestate() -> None:
    at = demo()
    at.switch_page("views/race.py").run()
    at.button(key="run_race").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["race_safe"] == 300
    at.run()  # the results, once every lane is done
    # The outcome is said in words, never as a metric delta (an arrow up on a loss).
    assert [(m.label, m.delta or None) for m in at.metric] == [
        ("Plain st.session_state", None), ("safestate.mutate", None)]
    outcomes = [m.value for m in at.markdown if "ss-outcome" in m.value]
    assert len(outcomes) == 2 and "race-safe-outcome'>none lost<" in outcomes[1]
    assert re.search(r"race-plain-outcome'>(none|\d+ updates?) lost<", outcomes[0])


def elements(at: AppTest) -> list[tuple[str, str]]:
    """The main area's elements in page order: (kind, text) of alerts, headings, buttons."""
    shown = []
    for e in at.main:
        kind = type(e).__name__
        if kind in ("Success", "Warning", "Error", "Info", "Subheader", "Title"):
            shown.append((kind, str(e.value)))
        elif kind == "Button":
            shown.append((kind, e.label))
    return shown


def test_ai_page_shows_its_status_first_and_the_optional_warning_in_its_part() -> None:
    at = demo()
    at.switch_page("views/ai.py").run()
    assert not at.exception, [e.message for e in at.exception]
    kinds = [kind for kind, _ in elements(at)]
    assert kinds == ["Title", "Button", "Button", "Success", "Subheader", "Warning"], kinds
    texts = dict(elements(at))
    assert texts["Success"].startswith("The AI system is ready")
    assert texts["Subheader"] == "Recommendations (optional)"
    assert texts["Warning"].startswith("**Recommendations** is unavailable")


def test_breaking_the_ai_says_it_is_for_every_user() -> None:
    at = demo()
    at.switch_page("views/ai.py").run()
    button = at.button(key="break_ai")
    assert button.label == "Break the AI for everyone"
    assert "Every user of this demo" in button.help
    assert "every user" in at.button(key="fix_ai").help.lower()
    button.click().run()
    try:
        kinds = [kind for kind, _ in elements(at)]
        # The note first, then the panel; no optional warning (the page stopped before it).
        assert kinds == ["Title", "Button", "Button", "Info", "Error", "Button", "Button"], kinds
        assert "broken for **every user** of this demo" in at.info[0].value
        assert "This page can't load yet" in at.error[0].value
    finally:
        at.button(key="fix_ai").click().run()  # the switch is shared: leave it healthy
    assert not at.info and at.success


def password_box(at: AppTest) -> Any:
    """The Sessions page's password field (it has no key: see views/sessions.py)."""
    return next(t for t in at.text_input if t.label == "Admin password")


def test_sessions_page_needs_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    at = demo()
    at.switch_page("views/sessions.py").run()
    assert "DEMO_ADMIN_PASSWORD" in at.info[0].value and not at.metric

    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "s3cret")
    at.run()
    password_box(at).set_value("guess").run()
    assert at.error[0].value == "Wrong password." and not at.metric
    password_box(at).set_value("s3cret").run()
    assert not at.exception
    # The password is in no session key, so the page's key report cannot show its length.
    assert "admin_password" not in at.session_state
    assert [m.label for m in at.metric][:4] == ["Live sessions", "Tracked", "Cleaned up",
                                                "Locks held"]


BACKED_OFF = re.compile(r"Too many wrong tries: wait (\d+) s before trying again\.")


def shown(at: AppTest) -> str:
    """Every text the page shows."""
    kinds = (at.title, at.caption, at.markdown, at.info, at.success, at.warning, at.error)
    return "\n".join(str(e.value) for kind in kinds for e in kind)


@pytest.mark.timeout(120)
def test_sessions_page_backs_off_after_wrong_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    base = 3
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "s3cret")
    monkeypatch.setenv("DEMO_ADMIN_BACKOFF_SECONDS", str(base))
    at = demo()
    at.switch_page("views/sessions.py").run()
    texts: list[str] = []

    def submit(password: str) -> None:
        password_box(at).set_value(password).run()
        assert not at.exception, [e.message for e in at.exception]
        texts.append(shown(at))

    submit("guess-1")
    submit("guess-2")
    assert [e.value for e in at.error] == ["Wrong password."] and not at.metric
    submit("guess-3")  # the third wrong try in a row starts the back-off
    assert [e.value for e in at.error] == [f"Wrong password. Wait {base} s before the next try."]
    submit("guess-4")  # refused unchecked: it does not count
    assert BACKED_OFF.fullmatch(at.error[0].value) and not at.metric
    assert at.session_state["admin_attempts"]["failures"] == 3

    submit("s3cret")  # even the right password waits its turn
    assert len(at.error) == 1 and not at.metric
    match = BACKED_OFF.fullmatch(at.error[0].value)
    assert match and 1 <= int(match[1]) <= base, at.error[0].value

    deadline = time.monotonic() + base + 20  # the back-off ends, then the next run checks it
    while not at.metric and time.monotonic() < deadline:
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        texts.append(shown(at))
    assert [m.label for m in at.metric][:1] == ["Live sessions"]
    # (The health reports below may show errors of their own: only the password's count here.)
    assert not [e.value for e in at.error
                if e.value.startswith("Wrong password") or BACKED_OFF.fullmatch(e.value)]
    assert at.session_state["admin_attempts"]["failures"] == 0
    for text in texts:
        assert "s3cret" not in text and "guess-" not in text


def test_admin_backoff_doubles_up_to_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DEMO.parent))
    import demo_common

    monkeypatch.setenv("DEMO_ADMIN_BACKOFF_SECONDS", "1")
    base = demo_common.admin_backoff_seconds()
    assert [demo_common.backoff_delay(n, base) for n in range(1, 11)] == [
        0, 0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert demo_common.backoff_delay(10_000, base) == 60
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv("DEMO_ADMIN_BACKOFF_SECONDS", bad)
        assert demo_common.admin_backoff_seconds() == 1.0
    monkeypatch.setenv("DEMO_ADMIN_BACKOFF_SECONDS", "0.25")
    assert demo_common.admin_backoff_seconds() == 0.25
