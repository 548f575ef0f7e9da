"""The demo behind a real load balancer, as `make cluster` runs it: HAProxy, two replicas, Redis.

Debian's Chromium and the load test's websocket users reach the replicas only through
HAProxy, as a deployment's users do. A cookie pins a browser to a replica (HAProxy's
``cookie ss_replica insert``); a test pins one by setting that cookie. One replica is
killed with SIGKILL while users click.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field

from _loadrun import BoardUser, Tally, clicker, close_all, enter_all
from cluster import COOKIE, Cluster
from conftest import free_port, wait_for
from playwright.sync_api import Browser, BrowserContext, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

DEPLOY = pathlib.Path(__file__).parents[1] / "deploy"
BUTTON = "Click the shared counter"
OWN = "#my-board-clicks"

expect.set_options(timeout=20_000)


# -- what a test does in a browser -----------------------------------------------------------------
def pin(context: BrowserContext, cluster: Cluster, replica: int) -> None:
    """Send this browser to replica ``replica`` (1-based), as HAProxy's cookie does."""
    context.add_cookies([{"name": COOKIE, "value": f"replica{replica}", "url": cluster.url}])


def replica_of(context: BrowserContext) -> str:
    """The replica HAProxy last pinned this browser to."""
    return next(c["value"] for c in context.cookies() if c["name"] == COOKIE)


def load(page: Page, url: str) -> str:
    """Load ``url`` in ``page``; the replica that served it (HAProxy's X-Replica header)."""
    response = page.goto(url)
    assert response is not None and response.ok, url
    expect(page.locator(OWN)).to_be_visible()
    expect(page).to_have_url(re.compile(r"[?&]ss="))  # the signed identity token
    return response.headers["x-replica"]


def open_board(context: BrowserContext, url: str, replica: str | None = None) -> Page:
    """A new tab on the board; ``replica``: the one that must have served it."""
    page = context.new_page()
    served = load(page, f"{url}/board")
    assert replica is None or served == replica, (served, replica)
    return page


def shown(page: Page) -> int:
    return int(page.locator(OWN).inner_text())


def shared_counter(page: Page) -> str:
    box = page.get_by_test_id("stMetric").filter(has_text="Shared counter")
    return box.get_by_test_id("stMetricValue").inner_text()


def expect_shared(page: Page, value: int) -> None:
    box = page.get_by_test_id("stMetric").filter(has_text="Shared counter")
    expect(box.get_by_test_id("stMetricValue")).to_have_text(f"{value:,}")


# -- the tests -------------------------------------------------------------------------------------
def test_two_browsers_on_different_replicas_see_one_board_live(
    cluster: Cluster, browser: Browser
) -> None:
    with browser.new_context() as a_ctx, browser.new_context() as b_ctx:
        pin(a_ctx, cluster, 1)
        pin(b_ctx, cluster, 2)
        a = open_board(a_ctx, cluster.url, "replica1")
        b = open_board(b_ctx, cluster.url, "replica2")
        status = cluster.status()
        assert int(status["replica1"]["scur"]) >= 1 and int(status["replica2"]["scur"]) >= 1
        before = int(shared_counter(b).replace(",", ""))
        a.get_by_role("button", name=BUTTON).click()
        expect(a.locator(OWN)).to_have_text("1")
        expect_shared(b, before + 1)  # B did nothing: replica2 heard it from Redis and redrew
        b.get_by_label("Message").fill("hello from replica2")
        b.get_by_role("button", name="Post").click()
        expect(a.get_by_text("anonymous: hello from replica2")).to_be_visible()


def test_a_users_state_is_the_same_whichever_replica_serves_them(
    cluster: Cluster, browser: Browser
) -> None:
    with browser.new_context() as ctx:
        pin(ctx, cluster, 1)
        page = open_board(ctx, cluster.url, "replica1")
        for clicks in ("1", "2", "3"):
            page.get_by_role("button", name=BUTTON).click()
            expect(page.locator(OWN)).to_have_text(clicks)
        pin(ctx, cluster, 2)  # the next load goes to the other replica
        assert load(page, page.url) == "replica2"  # the URL carries the identity token
        expect(page.locator(OWN)).to_have_text("3")
        page.get_by_role("button", name=BUTTON).click()
        expect(page.locator(OWN)).to_have_text("4")
        pin(ctx, cluster, 1)
        assert load(page, page.url) == "replica1"
        expect(page.locator(OWN)).to_have_text("4")


@dataclass
class BrowserUser:
    """A Chromium tab clicking the board; its acknowledged clicks are the ones it saw counted."""

    context: BrowserContext
    page: Page
    start: int = 0
    #: The highest own count the page has shown: every click up to it was acknowledged.
    best: int = 0
    sent: int = 0
    acked_at: list[float] = field(default_factory=list)

    def click(self, timeout_ms: float = 5_000) -> None:
        try:
            # While the tab is disconnected Streamlit disables its buttons: no click is sent.
            self.page.get_by_role("button", name=BUTTON).click(timeout=timeout_ms)
        except PlaywrightTimeout:
            return
        self.sent += 1
        try:
            self.page.wait_for_function(
                "([sel, n]) => { const e = document.querySelector(sel);"
                " return e !== null && Number(e.textContent) > n; }",
                arg=[OWN, self.best], timeout=timeout_ms)
        except PlaywrightTimeout:
            return  # in doubt: the replica may have died with it
        self.best = max(self.best, shown(self.page))
        self.acked_at.append(time.monotonic())


def _websocket_users(port: int, users: int, seconds: float, out: dict[str, object]) -> None:
    """``users`` load-test sessions clicking through the load balancer (in this thread)."""
    async def run() -> None:
        tally = Tally()
        out["tally"] = tally
        group = [BoardUser(port, tally, 10.0) for _ in range(users)]
        entered = await enter_all(group, users)
        out["entered"] = len(entered)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(clicker(u, start, start + seconds, 0.5, 1000, random.Random(i))
                               for i, u in enumerate(entered)))
        for u in group:
            u.settle()
        await close_all(group)

    asyncio.run(run())


def _read_counter(port: int) -> int:
    async def read() -> int:
        reader = BoardUser(port, Tally(), 20.0)
        assert await reader.enter(), reader.tally.errors
        value = (await reader.reload()).shared_counter()
        await reader.close()
        assert value is not None
        return value

    # In a thread of its own: Playwright's sync API holds this thread's event loop.
    got: list[int] = []
    thread = threading.Thread(target=lambda: got.append(asyncio.run(read())))
    thread.start()
    thread.join(60)
    assert got, "reading the shared counter failed (see the captured log)"
    return got[0]


def test_killing_a_replica_loses_no_acknowledged_click(
    cluster: Cluster, browser: Browser
) -> None:
    cluster.wait_up([0, 1])
    users: list[BrowserUser] = []
    for replica in (1, 1, 2):
        ctx = browser.new_context()
        pin(ctx, cluster, replica)
        page = open_board(ctx, cluster.url, f"replica{replica}")
        users.append(BrowserUser(ctx, page, start=shown(page), best=shown(page)))
    before = _read_counter(cluster.port)
    out: dict[str, object] = {}
    ws = threading.Thread(target=_websocket_users, args=(cluster.port, 8, 12.0, out))
    ws.start()
    wait_for(lambda: "tally" in out and out["tally"].acked >= 20,  # type: ignore[attr-defined]
             "the websocket users' first 20 clicks")
    killed_at = time.monotonic()
    cluster.kill(0)  # replica1: SIGKILL while clicks are in flight
    try:
        deadline = killed_at + 10.0
        while time.monotonic() < deadline or any(not u.acked_at or u.acked_at[-1] < killed_at
                                                 for u in users[:2]):
            assert time.monotonic() < killed_at + 60, "a user never clicked again after the kill"
            for user in users:
                user.click()
        ws.join(60)
        assert not ws.is_alive()
        tally: Tally = out["tally"]  # type: ignore[assignment]
        # Every user's next page load is served by the live replica, with their own count.
        for user in users:
            assert load(user.page, user.page.url) == "replica2"
            final = shown(user.page)
            assert user.best <= final <= user.start + user.sent, (user.best, final, user.sent)
            assert replica_of(user.context) == "replica2"
        after = _read_counter(cluster.port)
        acked = tally.acked + sum(u.best - u.start for u in users)
        sent = tally.acked + tally.in_doubt + sum(u.sent for u in users)
        recovery = [next(t for t in u.acked_at if t > killed_at) - killed_at for u in users[:2]]
        print(f"\nkill -9 of replica1: {acked} acknowledged clicks, {tally.in_doubt} websocket "
              f"clicks in doubt, shared counter +{after - before}; the affected browsers' first "
              f"click after the kill was counted {', '.join(f'{r:.2f}' for r in recovery)} s "
              "after it")
        assert tally.lost_own == 0 and tally.phantom_own == 0
        assert acked <= after - before <= sent  # every acknowledged click is in the counter
        assert tally.entered == 8 and tally.errors.total() >= 1  # some sessions were on replica1
    finally:
        for user in users:
            user.context.close()
        cluster.start_replica(0)
        cluster.wait_up([0])


def test_a_restarted_replica_rejoins_and_gets_new_users(
    cluster: Cluster, browser: Browser
) -> None:
    cluster.kill(0)
    cluster.wait_status([0], up=False)
    keep = browser.new_context()  # a user on replica2, so a new one goes to the emptier one
    new = browser.new_context()
    try:
        pin(keep, cluster, 2)
        kept = open_board(keep, cluster.url, "replica2")
        cluster.start_replica(0)
        cluster.wait_up([0])
        # leastconn: the restarted replica has no connection, replica2 has this module's
        page = open_board(new, cluster.url, "replica1")
        assert replica_of(new) == "replica1"
        page.get_by_role("button", name=BUTTON).click()
        expect(page.locator(OWN)).to_have_text("1")
        # The user on the other replica sees the same board: both pages come to show one
        # count. (Not the count read from `page` at once: a websocket client of the test
        # before may land a late click meanwhile, and both pages then show that one too.)
        clicked = int(shared_counter(page).replace(",", ""))
        wait_for(lambda: shared_counter(kept) == shared_counter(page)
                 and int(shared_counter(kept).replace(",", "")) >= clicked,
                 "both replicas' pages to show one shared count", timeout=20)
    finally:
        keep.close()
        new.close()


def test_make_cluster_prints_one_url_restarts_a_dead_replica_and_stops_everything(
    tmp_path: pathlib.Path,
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(DEPLOY / "cluster.py"), "--replicas", "1", "--port", str(port),
         "--session-ttl", "5", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("Ctrl-C" in line for line in lines) or proc.poll() is not None,
                 "make cluster to start", timeout=90)
        assert f"  Open http://127.0.0.1:{port}\n" in lines, "".join(lines)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200
            assert f"{COOKIE}=replica1" in resp.headers["Set-Cookie"]
        children = json.loads((tmp_path / "pids.json").read_text())["children"]
        replica_pid = int(next(re.search(r"pid (\d+)", line).group(1)  # type: ignore[union-attr]
                               for line in lines if line.startswith("  replica1:")))
        os.kill(replica_pid, signal.SIGKILL)
        wait_for(lambda: any("replica1 exited" in line for line in lines),
                 "the dead replica to be started again", timeout=30)
        pids = tmp_path / "pids.json"
        wait_for(lambda: len(_recorded(pids)) == len(children)
                 and replica_pid not in _recorded(pids), "the new replica's pid", timeout=60)
        wait_for(lambda: _health(opener, port), "the load balancer to serve again", timeout=60)
        children = _recorded(pids)
        stop = subprocess.run([sys.executable, str(DEPLOY / "cluster.py"), "stop", "--workdir",
                               str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0, stop.stderr
        proc.wait(30)
        wait_for(lambda: not any(_alive(pid) for pid in children), "every part to stop")
        assert not pids.exists()
    finally:
        if proc.poll() is None:  # a failure above: stop what it started, then it
            subprocess.run([sys.executable, str(DEPLOY / "cluster.py"), "stop", "--workdir",
                            str(tmp_path)], capture_output=True, timeout=60, check=False)
            proc.kill()
            proc.wait(10)


def _recorded(pids: pathlib.Path) -> list[int]:
    """The children ``make cluster`` recorded in its pid file (none while it rewrites it)."""
    try:
        return list(json.loads(pids.read_text())["children"])
    except (OSError, ValueError, KeyError):
        return []


def _health(opener: urllib.request.OpenerDirector, port: int) -> bool:
    try:
        with opener.open(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child of an ended parent that nobody reaped yet is gone for our purposes.
    stat = pathlib.Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rpartition(")")[2].split()[0] != "Z"
