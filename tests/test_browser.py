"""The demo in real Chromium: several users at once, as people use it.

Playwright drives Debian's Chromium (/usr/bin/chromium; `make test` installs it and
never lets Playwright download a browser of its own) against a real `streamlit
run` of examples/demo. Screenshots of every page go to artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import pathlib
import re
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import playwright.sync_api as playwright_api
import pytest
from conftest import DISCONNECTED_TTL, Server, launch
from google.protobuf.message import DecodeError
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = pathlib.Path(__file__).parents[1]
SHOTS = ROOT / "artifacts" / "screenshots"
ADMIN = "test-admin-password"

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("demo") / "streamlit.log"
    server = Server(ROOT / "examples" / "demo" / "app.py", log,
                    env={"DEMO_ADMIN_PASSWORD": ADMIN})
    yield server
    server.stop()


#: Script runs each page's server finished (its script_finished messages), by page.
FINISHED: dict[Page, list[int]] = {}


def _count_runs(page: Page) -> None:
    count = FINISHED.setdefault(page, [0])

    def on_frame(payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            msg = ForwardMsg()
            with contextlib.suppress(DecodeError):
                msg.ParseFromString(payload)
                if msg.WhichOneof("type") == "script_finished":
                    count[0] += 1

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))


def click_and_wait(page: Page, name: str, timeout_s: float = 20.0) -> None:
    """Click button ``name`` and wait until the server finished a run after it (a click that
    the next action would otherwise supersede: Streamlit drops a trigger whose run a newer
    request stops before it starts)."""
    before = FINISHED[page][0]
    click(page, name)
    deadline = time.monotonic() + timeout_s
    while FINISHED[page][0] <= before:
        assert time.monotonic() < deadline, f"no run finished after clicking {name!r}"
        page.wait_for_timeout(20)  # lets Playwright deliver the frames; a bounded poll


def visit(context: BrowserContext, server: Server, path: str = "") -> Page:
    page = context.new_page()
    _count_runs(page)
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(f"{server.url}/{path}")
    expect(page.get_by_test_id("stSidebar")).to_contain_text("you are session")
    return page


def metric(page: Page, label: str) -> str:
    box = page.get_by_test_id("stMetric").filter(has_text=label)
    return box.get_by_test_id("stMetricValue").inner_text()


def expect_metric(page: Page, label: str, value: str) -> None:
    box = page.get_by_test_id("stMetric").filter(has_text=label)
    expect(box.get_by_test_id("stMetricValue")).to_have_text(value)


def click(page: Page, name: str) -> None:
    page.get_by_role("button", name=name).click()


def test_two_users_never_see_each_others_values(demo: Server, browser: Browser) -> None:
    with browser.new_context() as ada_ctx, browser.new_context() as bob_ctx:
        ada, bob = visit(ada_ctx, demo), visit(bob_ctx, demo)
        ada.get_by_label("Your nickname").fill("Ada")
        ada.get_by_label("Your nickname").press("Enter")
        expect(ada.get_by_text("Hello, Ada!")).to_be_visible()
        for clicks in ("1", "2", "3"):
            click(ada, "Add 1 to my counter")
            expect_metric(ada, "My clicks", clicks)
        click(bob, "Add 1 to my counter")
        expect_metric(bob, "My clicks", "1")
        expect(bob.get_by_text("Hello, there!")).to_be_visible()
        assert "Ada" not in bob.get_by_test_id("stMain").inner_text()
        bob.reload()
        expect_metric(bob, "My clicks", "0")  # a reload is a new session: nothing carried over
        expect_metric(ada, "My clicks", "3")


def test_two_users_clicking_the_shared_counter_lose_nothing(
    demo: Server, browser: Browser
) -> None:
    per_user = 20
    errors: list[BaseException] = []
    ready = threading.Barrier(2)
    baseline: list[int] = []

    def user(name: str) -> None:
        # One Playwright per thread: its sync API objects belong to the thread that made them.
        try:
            with playwright_api.sync_playwright() as pw:
                b = launch(pw)
                page = visit(b.new_context(), demo, "board")
                board = page.get_by_test_id("stMetric").filter(has_text="Shared counter")
                expect(board).to_be_visible()
                baseline.append(int(metric(page, "Shared counter")))
                ready.wait(60)
                for i in range(1, per_user + 1):
                    click(page, "Click the shared counter")
                    expect(page.locator("#my-board-clicks")).to_have_text(str(i))
                b.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(n,)) for n in ("ada", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not errors, errors
    with browser.new_context() as ctx:
        page = visit(ctx, demo, "board")
        expect_metric(page, "Shared counter", str(min(baseline) + 2 * per_user))


def test_worker_progress_reaches_the_page_while_the_user_clicks(
    demo: Server, browser: Browser
) -> None:
    with browser.new_context() as ctx:
        page = visit(ctx, demo, "worker")
        click(page, "Start the worker")
        for clicks in ("1", "2", "3"):
            click(page, "Click me meanwhile")
            expect_metric(page, "My clicks", clicks)
        progress = page.get_by_text(re.compile(r"Worker progress: \d+%"))
        expect(progress).not_to_have_text("Worker progress: 0%")  # it moved while we clicked
        expect(page.get_by_text("Worker progress: 100%")).to_be_visible()


def test_guarded_page_error_retry_and_reset(demo: Server, browser: Browser) -> None:
    user_ctx, admin_ctx = browser.new_context(), browser.new_context()
    try:
        user = visit(user_ctx, demo)
        click(user, "Add 1 to my counter")
        expect_metric(user, "My clicks", "1")
        user.get_by_role("link", name="AI assistant").click()
        expect(user.get_by_text("The AI system is ready")).to_be_visible()

        click(user, "Break the AI")
        panel = user.get_by_test_id("stAlert").filter(has_text="This page can't load yet")
        expect(panel).to_contain_text("The AI system")
        expect(panel).to_contain_text("health check failed")
        expect(user.get_by_role("button", name="Retry")).to_be_visible()
        expect(user.get_by_role("button", name="Reset my session")).to_be_visible()
        click(user, "Retry")  # still broken: still the friendly panel, no traceback
        expect(panel).to_be_visible()
        assert user.get_by_test_id("stException").count() == 0

        other = visit(admin_ctx, demo, "ai")  # another user fixes the AI...
        click(other, "Fix the AI")
        expect(other.get_by_text("The AI system is ready")).to_be_visible()
        # ...and this user's page comes back by itself: it read the shared switch, so the
        # fix reruns it (live updates), with no Retry click.
        expect(user.get_by_text("The AI system is ready")).to_be_visible()

        click(user, "Break the AI")
        expect(panel).to_be_visible()
        click_and_wait(user, "Reset my session")
        expect(panel).to_be_visible()  # the AI is still broken; the session was cleared
        user.get_by_role("link", name="Overview").click()
        expect_metric(user, "My clicks", "0")
    finally:
        fixer = visit(admin_ctx, demo, "ai")  # leave the AI healthy for the other tests
        click(fixer, "Fix the AI")
        expect(fixer.get_by_text("The AI system is ready")).to_be_visible()
        user_ctx.close()
        admin_ctx.close()


def log_in(page: Page) -> None:
    """Open the Sessions page's monitor with the admin password; wait for every table drawn."""
    page.get_by_label("Admin password").fill(ADMIN)
    page.get_by_label("Admin password").press("Enter")
    page.get_by_label("Admin password").blur()  # no focus ring in the screenshots
    expect(page.get_by_text("Your session")).to_be_visible()
    frames = page.get_by_test_id("stDataFrame")
    expect(frames).to_have_count(4)  # sessions, the app's dependencies, your keys, your deps
    # A grid is drawn (its scroller exists) a moment after its frame.
    expect(page.locator("[data-testid='stDataFrame'] .dvn-scroller")).to_have_count(4)


def table_widths(page: Page) -> list[tuple[int, int]]:
    """Each table's (content width, visible width) in pixels: content wider is cut off."""
    widths: list[list[int]] = page.get_by_test_id("stDataFrame").evaluate_all(
        "frames => frames.map(f => { const s = f.querySelector('.dvn-scroller');"
        " return [s.scrollWidth, s.clientWidth]; })")
    return [(scroll, width) for scroll, width in widths]


def test_race_says_what_was_lost_in_words_with_no_delta_arrow(
    demo: Server, browser: Browser
) -> None:
    with browser.new_context() as ctx:
        page = visit(ctx, demo, "race")
        click(page, "Run the race")
        expect(page.locator("#race-safe-outcome")).to_have_text("none lost")
        expect(page.locator("#race-plain-outcome")).to_have_text(
            re.compile(r"^(\d+ updates? lost|none lost)$"))
        expect(metric_box(page, "safestate.mutate").get_by_test_id("stMetricValue")
               ).to_have_text("300 / 300")
        # No delta, so no arrow: a loss was drawn as a green or red arrow up before.
        expect(page.get_by_test_id("stMetricDelta")).to_have_count(0)
        expect(page.locator("[data-testid='stMetric'] svg")).to_have_count(0)


def test_ai_page_shows_its_status_before_the_optional_warning(
    demo: Server, browser: Browser
) -> None:
    with browser.new_context() as ctx:
        page = visit(ctx, demo, "ai")
        ready = page.get_by_test_id("stAlert").filter(has_text="The AI system is ready")
        warning = page.get_by_test_id("stAlert").filter(has_text="Recommendations is unavailable")
        expect(ready).to_be_visible()
        expect(warning).to_be_visible()
        alerts = page.get_by_test_id("stAlert").all_inner_texts()
        assert len(alerts) == 2 and "The AI system is ready" in alerts[0], alerts
        heading = page.get_by_role("heading", name="Recommendations (optional)")
        # Top to bottom: the status banner, the part of the page the warning is about, it.
        assert top(ready) < top(heading) < top(warning)


def test_breaking_the_ai_says_it_is_for_every_user(demo: Server, browser: Browser) -> None:
    ctx, other_ctx = browser.new_context(), browser.new_context()
    try:
        page = visit(ctx, demo, "ai")
        expect(page.get_by_text("The AI system is ready")).to_be_visible()
        button = page.get_by_role("button", name="Break the AI for everyone", exact=True)
        expect(button).to_be_visible()
        button.hover()
        expect(page.get_by_test_id("stTooltipContent")).to_contain_text(
            "Every user of this demo sees it")
        click(page, "Break the AI")
        note = page.get_by_test_id("stAlert").filter(has_text="broken for every user")
        panel = page.get_by_test_id("stAlert").filter(has_text="This page can't load yet")
        expect(note).to_be_visible()
        expect(panel).to_be_visible()
        assert top(note) < top(panel)
        other = visit(other_ctx, demo, "ai")  # and so it is, for another user
        expect(other.get_by_test_id("stAlert").filter(has_text="broken for every user")
               ).to_be_visible()
    finally:
        fixer = visit(other_ctx, demo, "ai")  # leave the AI healthy for the other tests
        click(fixer, "Fix the AI")
        expect(fixer.get_by_text("The AI system is ready")).to_be_visible()
        ctx.close()
        other_ctx.close()


def test_sessions_tables_fit_the_page(demo: Server, browser: Browser) -> None:
    with browser.new_context() as ctx, browser.new_context() as ai_ctx:
        ai = visit(ai_ctx, demo, "ai")  # the optional dependency fails, with a long reason
        expect(ai.get_by_text("Recommendations is unavailable")).to_be_visible()
        page = visit(ctx, demo, "sessions")
        log_in(page)
        widths = table_widths(page)
        assert all(scroll <= width for scroll, width in widths), widths
        # The reason, too long for a cell, is on a line of its own, whole.
        expect(page.get_by_text("recommendations (optional): ConnectionError: the "
                                "recommendations service is switched off in this demo").first
               ).to_be_visible()


def metric_box(page: Page, label: str) -> Locator:
    """The metric labelled ``label``."""
    return page.get_by_test_id("stMetric").filter(has_text=label)


def top(locator: Locator) -> float:
    """Where ``locator``'s element starts, in pixels from the top of the page."""
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not drawn"
    return float(box["y"])


def test_closing_a_browser_frees_that_sessions_lock(demo: Server, browser: Browser) -> None:
    admin_ctx, tab_ctx = browser.new_context(), browser.new_context()
    try:
        admin = visit(admin_ctx, demo, "sessions")
        admin.get_by_label("Admin password").fill(ADMIN)
        admin.get_by_label("Admin password").press("Enter")
        expect(admin.get_by_text("Live sessions")).to_be_visible()
        tab = visit(tab_ctx, demo)
        click(tab, "Add 1 to my counter")
        expect_metric(tab, "My clicks", "1")
        badge = tab.get_by_test_id("stSidebar").get_by_text("you are session").inner_text()
        label = badge.rsplit(" ", 1)[-1]
        table = admin.get_by_test_id("stDataFrame").first
        # The monitor refreshes itself every 2 s.
        expect(table).to_contain_text(label)
        tab_ctx.close()
        closed_at = time.monotonic()
        expect(table).not_to_contain_text(label, timeout=(DISCONNECTED_TTL + 30) * 1000)
        # Freed after Streamlit ended the session, not while the tab could still come back.
        assert time.monotonic() - closed_at >= DISCONNECTED_TTL - 0.5
        expect_metric(admin, "Locks held", "0")
    finally:
        admin_ctx.close()


@pytest.mark.parametrize("path", ["", "ai", "ai-broken", "worker", "race", "board", "sessions"])
def test_screenshot_every_page(demo: Server, browser: Browser, path: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser.new_context() as ctx:
        page = visit(ctx, demo, path.removesuffix("-broken"))
        if path.startswith("ai"):
            expect(page.get_by_text("The AI system is ready")).to_be_visible()
        if path == "ai-broken":
            click(page, "Break the AI")
            expect(page.get_by_text("This page can't load yet")).to_be_visible()
        if path == "sessions":
            page.set_viewport_size({"width": 1280, "height": 1760})  # down to the last table
            log_in(page)
            box = page.get_by_test_id("stMetric").filter(has_text="Live sessions")
            expect(box.get_by_test_id("stMetricValue")).to_have_text(re.compile(r"\d+"))
            assert all(scroll <= width for scroll, width in table_widths(page))
        if path == "race":
            click(page, "Run the race")
            expect(page.locator("#race-safe-outcome")).to_have_text("none lost")
        if path == "worker":
            click(page, "Start the worker")
            expect(page.get_by_text("Worker progress: 100%")).to_be_visible()
        if path == "board":
            page.get_by_label("Message").fill("Hello from the screenshot test")
            click(page, "Post")
            expect(page.get_by_text("Hello from the screenshot test")).to_be_visible()
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)  # no run in progress
        assert page.get_by_test_id("stException").count() == 0
        page.mouse.move(1260, 600)  # off the buttons, in the margin: no tooltip, no hover
        expect(page.get_by_test_id("stTooltipContent")).to_have_count(0)
        page.screenshot(path=str(SHOTS / f"{path or 'home'}.png"), full_page=True)
        if path == "ai-broken":
            click(page, "Fix the AI")
            expect(page.get_by_text("The AI system is ready")).to_be_visible()


def test_a_bound_nickname_survives_page_switches_reloads_and_restarts(
    browser: Browser, tmp_path: pathlib.Path
) -> None:
    # The demo with a store and browser identity, as a deployment sets them (SAFESTATE_*).
    env = {"DEMO_ADMIN_PASSWORD": ADMIN, "SAFESTATE_STORE": f"sqlite:///{tmp_path / 'demo.db'}",
           "SAFESTATE_IDENTITY": "browser", "SAFESTATE_SECRET": "a-browser-test-secret-0123",
           "SAFESTATE_PERSIST": "nickname"}
    app = ROOT / "examples" / "demo" / "app.py"
    server = Server(app, tmp_path / "first.log", env=env)
    ctx, admin_ctx = browser.new_context(), browser.new_context()
    try:
        page = visit(ctx, server)
        nickname = page.get_by_label("Your nickname")
        nickname.fill("Ada")
        nickname.press("Enter")
        expect(page.get_by_text("Hello, Ada!")).to_be_visible()

        page.get_by_role("link", name="Shared board").click()
        expect(page.get_by_role("heading", name="Shared board")).to_be_visible()
        page.get_by_role("link", name="Overview").click()
        expect(nickname).to_have_value("Ada")  # back from another page
        expect(page.get_by_text("Hello, Ada!")).to_be_visible()

        expect(page).to_have_url(re.compile(r"[?&]ss="))  # the browser's identity token
        token = parse_qs(urlsplit(page.url).query)["ss"][0]
        page.reload()  # the same URL: a new session, the same identity
        expect(page.get_by_test_id("stSidebar")).to_contain_text("you are session")
        expect(nickname).to_have_value("Ada")

        server.stop()  # a restart: a new process, the same SQLite file
        server = Server(app, tmp_path / "second.log", env=env)
        page.goto(f"{server.url}/?ss={token}")
        expect(nickname).to_have_value("Ada")
        expect(page.get_by_text("Hello, Ada!")).to_be_visible()

        # Off the nickname's page, a session used to lose it: the health report said so.
        page.get_by_role("link", name="Shared board").click()
        expect(page.get_by_role("heading", name="Shared board")).to_be_visible()
        expect(page.get_by_test_id("stMetric").filter(has_text="Shared counter")).to_be_visible()
        admin = visit(admin_ctx, server, "sessions")
        admin.get_by_label("Admin password").fill(ADMIN)
        admin.get_by_label("Admin password").press("Enter")
        expect(admin.get_by_text("App health")).to_be_visible()
        expect(admin.get_by_test_id("stMetric").filter(has_text="Sessions missing keys")
               .get_by_test_id("stMetricValue")).to_have_text("0")
        expect(admin.get_by_text("Your session")).to_be_visible()
        expect(admin.get_by_text("Healthy", exact=True)).to_have_count(2)  # the app's, its own
        expect(admin.get_by_text("Missing:")).to_have_count(0)
        page.get_by_role("link", name="Overview").click()
        expect(nickname).to_have_value("Ada")
        assert page.get_by_test_id("stException").count() == 0
    finally:
        ctx.close()
        admin_ctx.close()
        server.stop()


def test_a_post_reaches_another_users_board_with_no_click_and_no_polling(
    demo: Server, browser: Browser
) -> None:
    with browser.new_context() as poster_ctx, browser.new_context() as viewer_ctx:
        poster, viewer = visit(poster_ctx, demo, "board"), visit(viewer_ctx, demo, "board")
        expect(viewer.get_by_test_id("stMetric").filter(has_text="Shared counter")).to_be_visible()
        text = f"live {time.monotonic_ns()}"
        poster.get_by_label("Message").fill(text)
        click(poster, "Post")
        # The board fragment has no run_every: the viewer redraws because it read the board.
        expect(viewer.get_by_text(text)).to_be_visible()
        before = int(metric(viewer, "Shared counter"))
        click(poster, "Click the shared counter")
        expect_metric(viewer, "Shared counter", str(before + 1))
