"""What the load test does to a running demo: N users clicking the shared board, and churn.

A user opens the Shared board page and clicks its button on a schedule (closed
loop: the next click waits for the previous run to finish). A click counts once
its run finished without an exception; its latency is request to script_finished.
At the end one more session reads the shared counter: every counted click must be
in it, and each user's own count must match what its page drew.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from _loadclient import TIMEOUTS, Drawn, ProtocolError, Tab, trigger
from _loadserver import DemoServer
from websockets.exceptions import WebSocketException

TRACKED = "safestate_sessions_tracked"
ACTIVE = 'safestate_sessions{status="active"}'


@dataclass
class Tally:
    """What a group of users saw."""

    latencies_ms: list[float] = field(default_factory=list)
    acked: int = 0
    #: Clicks sent whose run never answered (timeout, dropped connection): applied or not.
    in_doubt: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    #: Per user: counted clicks its own page did not show (lost) or showed extra (phantom).
    lost_own: int = 0
    phantom_own: int = 0
    entered: int = 0

    def error_count(self) -> int:
        return sum(self.errors.values())


def _kind(exc: BaseException) -> str:
    if isinstance(exc, TIMEOUTS):
        return "timeout"
    if isinstance(exc, (OSError, WebSocketException)):
        return "connection"
    return "protocol"


def _problem(drawn: Drawn) -> str | None:
    """Why a board run does not count as a clean run, or None."""
    if drawn.exceptions:
        return "exception"
    if drawn.status != "FINISHED_SUCCESSFULLY":
        return "status"
    if drawn.page_not_found or "board_click" not in drawn.widgets or drawn.my_clicks() is None:
        return "protocol"
    return None


class BoardUser:
    """One tab on the Shared board page that clicks its button."""

    def __init__(self, port: int, tally: Tally, timeout: float) -> None:
        self.tab = Tab(port)
        self.tally = tally
        self.timeout = timeout
        self.button = ""
        self.start_clicks = 0
        self.acked = 0
        self.shown = 0
        self.alive = False
        self.last: Drawn | None = None

    async def enter(self) -> bool:
        """Open the tab on the board page; False (and an error counted) if that fails."""
        try:
            await self.tab.open(self.timeout)
            drawn = await self.tab.run(page_name="board", timeout=self.timeout)
        except (*TIMEOUTS, OSError, WebSocketException, ProtocolError) as exc:
            self.tally.errors[_kind(exc)] += 1
            return False
        problem = _problem(drawn)
        if problem:
            self.tally.errors[problem] += 1
            return False
        self.button = drawn.widgets["board_click"]
        self.start_clicks = self.shown = drawn.my_clicks() or 0
        self.alive = True
        self.last = drawn
        self.tally.entered += 1
        return True

    async def click(self) -> bool:
        """Click the board button once; False (the user stops) on any error."""
        start = time.perf_counter()
        try:
            drawn = await self.tab.run(widgets=[trigger(self.button)], timeout=self.timeout)
        except (*TIMEOUTS, OSError, WebSocketException, ProtocolError) as exc:
            # A failed click is in the latencies too, at the time it took to fail (a
            # timeout at the timeout): leaving the slowest out would flatter p99.
            self.tally.latencies_ms.append((time.perf_counter() - start) * 1000)
            return self._fail(_kind(exc))
        elapsed = time.perf_counter() - start
        self.tally.latencies_ms.append(elapsed * 1000)
        problem = _problem(drawn)
        if problem:
            return self._fail(problem)
        self.acked += 1
        self.tally.acked += 1
        self.shown = drawn.my_clicks() or 0
        self.last = drawn
        return True

    async def reload(self) -> Drawn:
        """Rerun the page without clicking (to read the shared counter)."""
        drawn = await self.tab.run(timeout=self.timeout)
        if _problem(drawn):
            raise ProtocolError(f"reading the board failed: {drawn}")
        return drawn

    def _fail(self, kind: str) -> bool:
        self.tally.errors[kind] += 1
        self.tally.in_doubt += 1
        self.alive = False
        return False

    def settle(self) -> None:
        """Add this user's own-count check to the tally (call once, after its last click)."""
        own = self.shown - self.start_clicks
        self.tally.lost_own += max(0, self.acked - own)
        self.tally.phantom_own += max(0, own - self.acked)

    async def close(self) -> None:
        # The server ends the session after its TTL whether the close handshake worked or not.
        with contextlib.suppress(*TIMEOUTS, OSError, WebSocketException):
            await asyncio.wait_for(self.tab.close(), self.timeout)


async def clicker(
    user: BoardUser, start_at: float, stop_at: float, interval: float, max_clicks: int,
    rng: random.Random,
) -> None:
    """Click every ``interval`` s from a random phase until ``stop_at`` or ``max_clicks``."""
    loop = asyncio.get_running_loop()
    next_at = start_at + rng.uniform(0, interval)
    for _ in range(max_clicks):
        delay = next_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the click rate, not synchronization
        if loop.time() >= stop_at or not await user.click():
            return
        # Closed loop: a late run delays the next click instead of piling clicks up.
        next_at = max(next_at + interval, loop.time())


async def enter_all(users: list[BoardUser], parallel: int) -> list[BoardUser]:
    """Open every user's tab, at most ``parallel`` at once; the ones that made it."""
    gate = asyncio.Semaphore(parallel)

    async def enter(user: BoardUser) -> bool:
        async with gate:
            return await user.enter()

    ok = await asyncio.gather(*(enter(u) for u in users))
    return [u for u, entered in zip(users, ok, strict=True) if entered]


async def close_all(users: list[BoardUser]) -> None:
    await asyncio.gather(*(u.close() for u in users))


class Registry:
    """safestate's session bookkeeping as the server's Prometheus gauges report it.

    None for the plain demo, which has no safestate. Scraping sweeps ended sessions
    first, so the counts are current.
    """

    def __init__(self, server: DemoServer) -> None:
        self.server = server
        self.source = "/metrics"

    async def read(self) -> dict[str, int] | None:
        if self.server.variant != "safestate" or self.server.metrics_port is None:
            return None
        scraped = await asyncio.to_thread(self.server.scrape)
        if scraped is None or TRACKED not in scraped:
            raise RuntimeError(f"no {TRACKED} at http://127.0.0.1:{self.server.metrics_port}"
                               "/metrics: is SAFESTATE_METRICS_PORT applied?")
        return {"tracked": int(scraped[TRACKED]), "active": int(scraped.get(ACTIVE, -1))}

    async def close(self) -> None:
        """Nothing to close: kept so callers need not know how counts are read."""


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank), NaN when there are no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class LoadResult:
    """One load run: N users clicking for a while against one fresh server."""

    variant: str
    n: int
    seconds: float
    interval: float
    entered: int
    clicks: int
    in_doubt: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors: int
    error_kinds: dict[str, int]
    lost_shared: int
    #: With clicks in doubt (sent, no clean answer), lost_shared is only known to lie
    #: between lost_shared and this: an in-doubt click the server applied hides a loss.
    lost_shared_max: int
    lost_own: int
    phantom: int
    counter_before: int
    counter_after: int
    rss_base_kib: int
    #: RSS with the N sessions connected, before any click.
    rss_connected_kib: int
    rss_kib: int
    rss_peak_kib: int
    server_cpu_pct: float
    #: Server CPU time during the load per acknowledged click.
    server_cpu_ms_per_click: float
    client_cpu_pct: float
    connect_s: float
    tracked: int | None
    latencies_ms: list[float] = field(repr=False, default_factory=list)

    @property
    def lost(self) -> int:
        return self.lost_shared + self.lost_own

    @property
    def rss_per_session_kib(self) -> float:
        """What one more connected session costs the server, before its clicks."""
        return (self.rss_connected_kib - self.rss_base_kib) / max(1, self.entered)

    def summary(self) -> dict[str, Any]:
        row = asdict(self)
        del row["latencies_ms"]
        return row


async def _sample_rss(server: DemoServer, stop: asyncio.Event, peak: list[int]) -> None:
    """Track the server's peak RSS once a second until ``stop`` is set."""
    while not stop.is_set():
        peak[0] = max(peak[0], server.rss_kib())
        with contextlib.suppress(*TIMEOUTS):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _reader(server: DemoServer, timeout: float) -> tuple[BoardUser, int | None]:
    """A warm-up session that reads the shared counter (and stays to read it at the end).

    It runs before any baseline, so the server has imported and built everything by then.
    """
    reader = BoardUser(server.port, Tally(), timeout)
    if not await reader.enter():
        raise RuntimeError(f"the warm-up session failed: {reader.tally.errors}")
    return reader, (await reader.reload()).shared_counter()


async def load_run(
    server: DemoServer, n: int, seconds: float, interval: float, *, timeout: float = 30.0,
    parallel: int = 20, rng: random.Random | None = None,
) -> LoadResult:
    """N users click the board every ``interval`` s for ``seconds``; what they and it saw."""
    rng = rng or random.Random(0)
    loop = asyncio.get_running_loop()
    registry = Registry(server)
    reader, counter_before = await _reader(server, timeout)
    await registry.read()
    rss_base = server.rss_kib()

    tally = Tally()
    users = [BoardUser(server.port, tally, timeout) for _ in range(n)]
    t0 = loop.time()
    entered = await enter_all(users, parallel)
    connect_s = loop.time() - t0
    rss_connected = server.rss_kib()

    stop = asyncio.Event()
    peak = [server.rss_kib()]
    sampler = asyncio.create_task(_sample_rss(server, stop, peak))
    cpu0, client0, wall0 = server.cpu_seconds(), time.process_time(), loop.time()
    start_at = loop.time() + 0.2
    stop_at = start_at + seconds
    max_clicks = math.ceil(seconds / interval) + 2
    await asyncio.gather(*(clicker(u, start_at, stop_at, interval, max_clicks, rng)
                           for u in entered))
    wall = loop.time() - wall0
    cpu = server.cpu_seconds() - cpu0
    server_cpu = cpu / wall * 100
    client_cpu = (time.process_time() - client0) / wall * 100
    stop.set()
    await sampler

    rss = server.rss_kib()  # all N still connected
    counts = await registry.read()
    after = await reader.reload()
    counter_after = after.shared_counter()
    for user in users:
        user.settle()
    await close_all(users)
    await reader.close()
    await registry.close()
    if counter_before is None or counter_after is None:
        raise ProtocolError("the shared counter was not drawn")
    applied = counter_after - counter_before
    lat = tally.latencies_ms
    return LoadResult(
        variant=server.variant, n=n, seconds=seconds, interval=interval,
        entered=len(entered), clicks=tally.acked, in_doubt=tally.in_doubt,
        p50_ms=percentile(lat, 50), p99_ms=percentile(lat, 99),
        mean_ms=statistics.fmean(lat) if lat else math.nan,
        errors=tally.error_count(), error_kinds=dict(tally.errors),
        lost_shared=max(0, tally.acked - applied),
        lost_shared_max=max(0, tally.acked + tally.in_doubt - applied),
        lost_own=tally.lost_own,
        phantom=max(0, applied - tally.acked - tally.in_doubt) + tally.phantom_own,
        counter_before=counter_before, counter_after=counter_after,
        rss_base_kib=rss_base, rss_connected_kib=rss_connected, rss_kib=rss,
        rss_peak_kib=max(peak[0], rss),
        server_cpu_pct=server_cpu,
        server_cpu_ms_per_click=cpu * 1000 / tally.acked if tally.acked else math.nan,
        client_cpu_pct=client_cpu, connect_s=connect_s,
        tracked=None if counts is None else counts["tracked"],
        latencies_ms=lat,
    )


@dataclass
class Wave:
    """One churn wave, measured after its users left."""

    index: int
    t_s: float
    entered: int
    clicks: int
    errors: int
    rss_kib: int
    tracked: int | None
    active: int | None


@dataclass
class ChurnResult:
    """Waves of users that come, click and leave; does the server return to where it was?"""

    variant: str
    seconds: float
    wave_size: int
    waves: list[Wave]
    sessions: int
    clicks: int
    errors: int
    error_kinds: dict[str, int]
    lost: int
    rss_base_kib: int
    rss_end_kib: int
    tracked_base: int | None
    tracked_end: int | None
    #: Seconds from the last wave's departure until tracked was back at its baseline.
    returned_after_s: float | None
    registry_source: str

    def rss_slope_kib_per_wave(self) -> float:
        """Least-squares RSS growth per wave over the second half of the waves."""
        tail = self.waves[len(self.waves) // 2:]
        if len(tail) < 2:
            return math.nan
        xs = [w.index for w in tail]
        ys = [w.rss_kib for w in tail]
        return statistics.linear_regression(xs, ys).slope


async def churn(
    server: DemoServer, seconds: float, wave_size: int, clicks: int, interval: float, *,
    timeout: float = 30.0, return_timeout: float = 90.0, parallel: int = 20,
    rng: random.Random | None = None,
) -> ChurnResult:
    """Waves of ``wave_size`` users for ``seconds``: each opens the board, clicks ``clicks``
    times, closes its tab. Then wait (bounded) until safestate tracks only the baseline."""
    rng = rng or random.Random(0)
    loop = asyncio.get_running_loop()
    registry = Registry(server)
    reader, counter_before = await _reader(server, timeout)
    base = await registry.read()
    rss_base = server.rss_kib()

    tally = Tally()
    waves: list[Wave] = []
    t0 = loop.time()
    end = t0 + seconds
    max_waves = int(seconds) + 1  # a wave takes well over a second
    for index in range(max_waves):
        if loop.time() >= end:
            break
        users = [BoardUser(server.port, tally, timeout) for _ in range(wave_size)]
        acked_before, errors_before = tally.acked, tally.error_count()
        entered = await enter_all(users, parallel)
        start_at = loop.time()
        await asyncio.gather(*(clicker(u, start_at, start_at + clicks * interval + timeout,
                                       interval, clicks, rng) for u in entered))
        for user in users:
            user.settle()
        await close_all(users)
        counts = await registry.read()
        waves.append(Wave(index=index, t_s=loop.time() - t0, entered=len(entered),
                          clicks=tally.acked - acked_before,
                          errors=tally.error_count() - errors_before,
                          rss_kib=server.rss_kib(),
                          tracked=None if counts is None else counts["tracked"],
                          active=None if counts is None else counts["active"]))
    left_at = loop.time()

    returned_after = None
    counts = base
    if base is not None:
        deadline = left_at + server.session_ttl + return_timeout
        while loop.time() < deadline:
            counts = await registry.read()
            if counts is not None and counts["tracked"] <= base["tracked"]:
                returned_after = loop.time() - left_at
                break
            await asyncio.sleep(0.5)  # polling interval of a bounded wait
    counter_after = (await reader.reload()).shared_counter()
    await reader.close()
    await registry.close()
    if counter_before is None or counter_after is None:
        raise ProtocolError("the shared counter was not drawn")
    applied = counter_after - counter_before
    return ChurnResult(
        variant=server.variant, seconds=seconds, wave_size=wave_size, waves=waves,
        sessions=tally.entered, clicks=tally.acked, errors=tally.error_count(),
        error_kinds=dict(tally.errors),
        lost=max(0, tally.acked - applied) + tally.lost_own,
        rss_base_kib=rss_base, rss_end_kib=server.rss_kib(),
        tracked_base=None if base is None else base["tracked"],
        tracked_end=None if counts is None else counts["tracked"],
        returned_after_s=returned_after, registry_source=registry.source,
    )
