"""Live updates bench: click-to-screen latency and server CPU of the Shared board, live vs poll.

Real parts only: ``streamlit run`` of _board_app.py (BOARD_MODE=poll: the board fragment
reruns every second, live updates off; BOARD_MODE=live: a plain fragment that safestate
reruns when ``board_messages`` changes), Debian's Chromium through Playwright (never a
downloaded browser), and for the two-process setup a real redis-server. All on 127.0.0.1,
all on this machine's cores: Chromium's work competes with the servers'.

1. Latency: page A posts (fill, then one page.evaluate reads ``performance.timeOrigin +
   performance.now()`` and clicks Post); a MutationObserver in page B (another browser
   context) stamps the same clock when the post appears in B's DOM. ``--clicks`` posts at
   least ``--spacing`` s apart (more than the 0.25 s live interval: coalescing is not what
   is measured); where B polls, plus a random pause of up to ``--jitter`` s, so posts land
   at random points of the 1 s poll cycle. Setups: poll and live with one server (memory
   store), live with two servers sharing one redis-server (A on the first, B on the second).
2. Idle CPU: ``--viewers`` pages of the board open, nobody posting, for ``--idle-seconds``;
   the server's CPU seconds per second (/proc, user + system, descendants included), poll
   vs live; and the same server before any page opened (0 viewers).
3. CPU per post: with the viewers open, a writer page (its board never polls) posts
   ``--posts`` times, ``--post-spacing`` s apart; when every viewer shows the last post,
   the server's CPU over that window less the idle rate times the window, per post.

Every wait is bounded (``--timeout``, ``--load-timeout``, and ``--deadline`` for the whole
run); a server that cannot keep up is reported as saturated, not waited for. Every server
and redis-server started here is stopped, also on error. About 5 min; ``--repeats 3``
gives medians of three runs (about 15 min).

    .venv/bin/python benchmarks/bench_live.py [--repeats 3] [--parts latency,redis,cpu]
        [--clicks 30] [--viewers 20] [--posts 30] [--idle-seconds 20] [--keep]
        [--streamlit-option runner.postScriptGC=false]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import pathlib
import platform
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

sys.path.insert(0, str(pathlib.Path(__file__).parent))

# Set before Playwright is imported: whatever happens, it must not fetch a browser.
os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"

import streamlit
from _loadserver import DemoServer, RedisServer, _flag, listed, positive
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

APP = pathlib.Path(__file__).resolve().parent / "_board_app.py"
CHROMIUM = "/usr/bin/chromium"
REDIS_SERVER = "/usr/bin/redis-server"
# Flags for a closed network, as the browser tests use: no background fetches or updates.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PARTS = ("latency", "redis", "cpu")
SEED = 20261127
#: Seconds: a wait with less time left only looks (Playwright reads 0 as "no timeout").
MIN_WAIT = 0.05
BOARD_LINE = re.compile(r"BOARD (full|fragment) who=(\w+)")
#: Start-up and shutdown lines of every server log: not worth a note.
BANNER = ("Uvicorn server started", "You can now view", "URL:", "Stopping...")
#: The board fragment's output: a message (a list item) or its "No messages yet." caption.
BOARD_DRAWN = 'li, [data-testid="stCaptionContainer"]'

# In every page: stamp the moment the wanted text first appears in the DOM. textContent,
# not innerText: no layout is forced on each mutation.
WATCH_JS = """() => {
  if (window.__bench) return;
  const b = window.__bench = {want: null, seenAt: null};
  const check = () => {
    if (b.want !== null && b.seenAt === null && document.body.textContent.includes(b.want)) {
      b.seenAt = performance.timeOrigin + performance.now();
    }
  };
  new MutationObserver(check).observe(document.body,
                                      {childList: true, subtree: true, characterData: true});
}"""
# A wanted text already on the page counts from now (a late want, after a cut-short phase).
WANT_JS = """t => {
  const b = window.__bench;
  b.want = t;
  b.seenAt = document.body.textContent.includes(t)
    ? performance.timeOrigin + performance.now() : null;
}"""
SEEN_JS = "() => window.__bench.seenAt"
# The clock and the click in one evaluate: no Playwright round trip between them.
CLICK_JS = """() => {
  const button = [...document.querySelectorAll('button')]
    .find(b => b.textContent.trim() === 'Post');
  if (!button) return null;
  const t = performance.timeOrigin + performance.now();
  button.click();
  return t;
}"""


@dataclass
class Settings:
    parts: list[str]
    clicks: int
    spacing: float
    jitter: float
    viewers: int
    posts: int
    post_spacing: float
    idle_seconds: float
    baseline_seconds: float
    settle: float
    repeats: int
    timeout: float
    load_timeout: float
    deadline: float
    options: list[str]
    keep: bool


class Deadline:
    """The whole run's time budget: ``left()`` raises TimeoutError once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self, cap: float) -> float:
        """Seconds a wait may take: ``cap``, or what is left of the budget if less."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the run's --deadline of {self.seconds:g} s is spent")
        return min(cap, left)


# -- CPU from /proc -----------------------------------------------------------------------------
def process_table() -> dict[int, tuple[int, str, float]]:
    """Every process: pid -> (ppid, comm, CPU seconds: own user + system and reaped children's)."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        head, _, rest = stat.rpartition(")")
        fields = rest.split()  # after "(comm)", which may hold spaces
        ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        table[int(entry)] = (int(fields[1]), head.partition("(")[2], ticks / tick)
    return table


def descendants(table: dict[int, tuple[int, str, float]], root: int) -> list[int]:
    """``root`` and every live process below it."""
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0]
              .split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Reading:
    """CPU seconds so far: the server's, Chromium's, the rest of the machine's."""

    at: float
    server: float
    chromium: float
    others: float

    @classmethod
    def now(cls, server_pid: int) -> Reading:
        table = process_table()
        mine = set(descendants(table, os.getpid()))  # servers, Playwright, Chromium, this
        busy = machine_busy()
        return cls(time.monotonic(),
                   sum(table[p][2] for p in descendants(table, server_pid)),
                   sum(table[p][2] for p in mine if table[p][1].startswith("chrom")),
                   busy - sum(table[p][2] for p in mine))

    def rates(self, later: Reading) -> tuple[float, float, float, float]:
        """Wall seconds, then server, Chromium and other processes' CPU s/s since this one."""
        wall = later.at - self.at
        return (wall, (later.server - self.server) / wall,
                (later.chromium - self.chromium) / wall, (later.others - self.others) / wall)


# -- servers ------------------------------------------------------------------------------------
class BoardServer(DemoServer):
    """One ``streamlit run`` of _board_app.py in ``mode`` (poll or live)."""

    def __init__(self, mode: str, log: pathlib.Path, store: str | None = None,
                 options: Sequence[str] = ()) -> None:
        # This shell's SAFESTATE_* would change what is measured: dropped.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAFESTATE_")}
        env["BOARD_MODE"] = self.mode = mode
        if store is not None:
            env["SAFESTATE_STORE"] = store
        super().__init__("safestate", log, metrics=False, options=options, app=APP,
                         cwd=log.parent, env=env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_size(self) -> int:
        return self.log.stat().st_size

    def runs(self, start: int, end: int | None = None) -> list[tuple[str, str]]:
        """(kind, who) of every run the log names between two byte offsets."""
        with self.log.open("rb") as f:
            f.seek(start)
            data = f.read() if end is None else f.read(end - start)
        return [(m.group(1), m.group(2))
                for m in BOARD_LINE.finditer(data.decode(errors="replace"))]

    def problems(self, limit: int = 12) -> list[str]:
        """Lines of the log that are not the app's own (warnings, tracebacks), the first few."""
        lines = [line for line in self.log.read_text(errors="replace").splitlines()
                 if line.strip() and not BOARD_LINE.search(line)
                 and not any(banner in line for banner in BANNER)]
        return lines[:limit]


# -- pages --------------------------------------------------------------------------------------
def start_board(ctx: BrowserContext, server: BoardServer, who: str, s: Settings,
                deadline: Deadline, query: str = "") -> Page:
    """A new page of the board, navigated (the app itself still loading)."""
    page = ctx.new_page()
    page.goto(f"{server.url}/?who={who}{query}", wait_until="commit",
              timeout=deadline.left(s.timeout) * 1000)
    return page


def ready(page: Page, s: Settings, deadline: Deadline, until: float | None = None) -> bool:
    """Wait until the page drew the form and the board (by ``until``, monotonic, if given,
    else for ``--timeout``) and install the DOM watcher; whether it did in time."""
    end = time.monotonic() + s.timeout if until is None else until
    for target in (page.get_by_role("button", name="Post"), page.locator(BOARD_DRAWN).first):
        left = deadline.left(end - time.monotonic())
        try:
            if left > MIN_WAIT:
                target.wait_for(timeout=left * 1000)
            elif not target.is_visible():  # the budget is spent: only a look, no wait
                return False
        except PlaywrightTimeout:
            return False
    page.evaluate(WATCH_JS)
    return True


def open_board(ctx: BrowserContext, server: BoardServer, who: str, s: Settings,
               deadline: Deadline, query: str = "") -> Page:
    page = start_board(ctx, server, who, s, deadline, query)
    if not ready(page, s, deadline):
        raise TimeoutError(f"page {who} did not draw the board in {s.timeout:g} s")
    return page


def want(page: Page, token: str) -> None:
    page.evaluate(WANT_JS, token)


def post(page: Page, token: str, s: Settings, deadline: Deadline) -> float:
    """Fill the message and click Post; the page's clock just before the click (ms)."""
    page.get_by_label("Message").fill(token, timeout=deadline.left(s.timeout) * 1000)
    clicked = page.evaluate(CLICK_JS)
    if clicked is None:
        raise RuntimeError("the page has no Post button")
    return float(clicked)


def seen(page: Page, cap: float, deadline: Deadline) -> float | None:
    """When the page's watcher saw its wanted text (its clock, ms), or None within ``cap`` s."""
    left = deadline.left(cap)
    if left > MIN_WAIT:
        try:
            page.wait_for_function("() => window.__bench.seenAt !== null", timeout=left * 1000)
        except PlaywrightTimeout:
            return None
    found = page.evaluate(SEEN_JS)
    return None if found is None else float(found)


def pace(since: float, spacing: float) -> None:
    """Sleep until ``spacing`` s after ``since`` (monotonic), if that is still ahead."""
    time.sleep(max(0.0, since + spacing - time.monotonic()))


# -- 1. latency ---------------------------------------------------------------------------------
Result = dict[str, float]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, linear between the closest ranks (as numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency(browser: Browser, writer_server: BoardServer, reader_server: BoardServer,
            s: Settings, deadline: Deadline) -> Result:
    """A posts ``s.clicks`` times; how long until each post is in B's DOM."""
    tag = secrets.token_hex(3)
    rng = random.Random(SEED)  # the same pauses in every run
    a_ctx, b_ctx = browser.new_context(), browser.new_context()
    try:
        a = open_board(a_ctx, writer_server, "A", s, deadline)
        b = open_board(b_ctx, reader_server, "B", s, deadline)
        start = reader_server.log_size()
        # Only where B polls: live reruns have no cycle to fall into, and the pause only costs.
        jitter = s.jitter if reader_server.mode == "poll" else 0.0
        budget_end = time.monotonic() + s.clicks * (s.spacing + jitter) + s.timeout
        delays: list[float] = []
        sent = 0
        for i in range(s.clicks):
            if time.monotonic() >= budget_end:
                break
            began = time.monotonic()
            token = f"lat-{tag}-{i:03d}-end"
            want(a, token)
            want(b, token)
            clicked = post(a, token, s, deadline)
            sent += 1
            shown = seen(b, min(s.timeout, budget_end - time.monotonic()), deadline)
            if shown is not None:
                delays.append(shown - clicked)
            # A's own run shows the post too: the next fill must not race its form clear.
            seen(a, min(s.timeout, budget_end - time.monotonic()), deadline)
            # A random pause after B drew the post: the next post falls at a random point of
            # poll mode's 1 s cycle, not just after the tick that drew this one.
            time.sleep(rng.uniform(0, jitter))
            pace(began, s.spacing)
        runs = [kind for kind, who in reader_server.runs(start) if who == "B"]
    finally:
        a_ctx.close()
        b_ctx.close()
    return {"p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99),
            "max_ms": max(delays, default=math.nan), "seen": len(delays), "clicks": sent,
            "b_fragment": runs.count("fragment"), "b_full": runs.count("full")}


# -- 2 and 3. CPU -------------------------------------------------------------------------------
def idle_rate(server: BoardServer, seconds: float,
              deadline: Deadline) -> tuple[float, float, float, float]:
    """Over ``seconds``: server, Chromium and other processes' CPU s/s, and runs per s."""
    seconds = deadline.left(seconds)
    log0, first = server.log_size(), Reading.now(server.proc.pid)
    time.sleep(seconds)
    last, log1 = Reading.now(server.proc.pid), server.log_size()
    wall, server_rate, chromium, others = first.rates(last)
    return server_rate, chromium, others, len(server.runs(log0, log1)) / wall


def cpu(browser: Browser, server: BoardServer, s: Settings, deadline: Deadline,
        out: Result) -> None:
    """Idle CPU with ``s.viewers`` open, then CPU per post while they all watch (into ``out``)."""
    tag = secrets.token_hex(3)
    viewers_ctx, writer_ctx = browser.new_context(), browser.new_context()
    try:
        # The writer first: a server saturated by N polling viewers may not draw a new page
        # for a minute. It never polls (?poll=0), so the idle rate is the viewers' alone.
        writer = open_board(writer_ctx, server, "W", s, deadline, "&poll=0")
        progress("writer drawn, loading the viewers")
        loading = time.monotonic()
        # All at once: loaded one by one, the first pages' polls slow the later loads.
        viewers = [start_board(viewers_ctx, server, f"v{i:02d}", s, deadline)
                   for i in range(s.viewers)]
        # Bounded for all together; a page not drawn by then is left out of the waits below
        # (a saturated server can starve new pages: the table says how many were drawn).
        until = loading + s.load_timeout
        viewers = [page for page in viewers if ready(page, s, deadline, until)]
        out["load_s"] = time.monotonic() - loading
        out["viewers_drawn"] = len(viewers)
        time.sleep(deadline.left(s.settle))  # page loads and their first runs are over
        idle, out["browser_idle"], out["others_idle"], out["idle_runs_per_s"] = idle_rate(
            server, s.idle_seconds, deadline)
        out["idle_n"] = idle
        progress(f"{len(viewers)} viewers drawn in {out['load_s']:.0f} s, idle measured")

        last = f"cpu-{tag}-{s.posts - 1:03d}-end"
        for page in viewers:
            want(page, last)
        log0, first = server.log_size(), Reading.now(server.proc.pid)
        # Bounded: a saturated server can take a minute to show the writer its own post.
        budget_end = first.at + s.posts * s.post_spacing + s.timeout
        last_click, token, sent = math.nan, last, 0
        for i in range(s.posts):
            began = time.monotonic()
            token = f"cpu-{tag}-{i:03d}-end"
            want(writer, token)
            last_click = post(writer, token, s, deadline)
            sent += 1
            # Before the next fill (see latency()); a post not shown by the end stops them.
            if seen(writer, budget_end - time.monotonic(), deadline) is None:
                break
            pace(began, s.post_spacing)
        out["sent_s"] = time.monotonic() - first.at
        out["posts_done"] = sent
        if token != last:  # cut short: the viewers wait for the last post sent instead
            for page in viewers:
                want(page, token)
        # One viewer after the other: each wait ends at once if that page already has it.
        until = time.monotonic() + s.timeout
        shown = [seen(page, until - time.monotonic(), deadline) for page in viewers]
        last_reading, log1 = Reading.now(server.proc.pid), server.log_size()
    finally:
        viewers_ctx.close()
        writer_ctx.close()
    window, server_rate, _, out["others_posting"] = first.rates(last_reading)
    got = [t for t in shown if t is not None]
    viewer_runs = [kind for kind, who in server.runs(log0, log1) if who.startswith("v")]
    out.update({
        "per_post_ms": (server_rate - idle) * window / sent * 1000,
        "gross_per_post_ms": server_rate * window / sent * 1000,
        "window_s": window,
        "viewers_seen": len(got),
        "all_seen_after_s": (max(got) - last_click) / 1000 if got else math.nan,
        "viewer_runs_per_post": len(viewer_runs) / sent,
        "viewer_fragment_share": (viewer_runs.count("fragment") / len(viewer_runs)
                                  if viewer_runs else math.nan),
    })


def progress(text: str) -> None:
    print(f"    {time.strftime('%H:%M:%S')} {text}", flush=True)


# -- one repeat ---------------------------------------------------------------------------------
def one_process(mode: str, browser: Browser, s: Settings, workdir: pathlib.Path,
                deadline: Deadline, notes: list[str], out: Result) -> None:
    """Baseline, latency and CPU of one server of ``mode`` (memory store), into ``out``."""
    server = BoardServer(mode, workdir / f"streamlit-{mode}.log", options=s.options)
    progress(f"{mode}: server up")
    try:
        if "cpu" in s.parts:
            time.sleep(deadline.left(s.settle))  # the start-up's own work is over
            out["idle0"] = idle_rate(server, s.baseline_seconds, deadline)[0]
        if "latency" in s.parts:
            phase(f"{mode} latency", notes,
                  lambda: out.update(latency(browser, server, server, s, deadline)))
        if "cpu" in s.parts:
            phase(f"{mode} cpu", notes, lambda: cpu(browser, server, s, deadline, out))
    finally:
        log_problems(server, mode, notes)
        server.stop()


def two_processes(browser: Browser, s: Settings, workdir: pathlib.Path,
                  deadline: Deadline, notes: list[str], out: Result) -> None:
    """Latency with A on one live server and B on another, both on one redis-server."""
    if not pathlib.Path(REDIS_SERVER).exists():
        raise RuntimeError(f"{REDIS_SERVER} is missing (`make test` installs it)")
    redis = RedisServer(workdir, durable=False)
    servers: list[BoardServer] = []
    try:
        for n in (1, 2):
            servers.append(BoardServer("live", workdir / f"streamlit-redis-{n}.log", redis.url,
                                       s.options))
        progress("redis: two servers and redis-server up")
        out.update(latency(browser, servers[0], servers[1], s, deadline))
    finally:
        for n, server in enumerate(servers, 1):
            log_problems(server, f"redis process {n}", notes)
            server.stop()
        redis.stop()


def phase(name: str, notes: list[str], body: Callable[[], object]) -> bool:
    """Run one measurement; a failure becomes a note (the others still run). Whether it ran."""
    started = time.monotonic()
    try:
        body()
    except Exception as exc:
        notes.append(f"{name} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        progress(f"{name}: FAILED ({type(exc).__name__})")
        return False
    progress(f"{name}: {time.monotonic() - started:.0f} s")
    return True


def log_problems(server: BoardServer, name: str, notes: list[str]) -> None:
    lines = server.problems()
    note = f"{name} server log ({server.log}):\n    " + "\n    ".join(lines)
    if lines and note not in notes:
        notes.append(note)


def repeat(browser: Browser, s: Settings, workdir: pathlib.Path, deadline: Deadline,
           notes: list[str]) -> dict[str, Result]:
    """Every setup once: what each measured, also when another failed (a note says so)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Result] = {}
    if "latency" in s.parts or "cpu" in s.parts:
        for mode in ("poll", "live"):
            out[mode] = {}
            phase(mode, notes, functools.partial(one_process, mode, browser, s, workdir,
                                                 deadline, notes, out[mode]))
    if "redis" in s.parts:
        out["redis"] = {}
        phase("redis latency", notes, functools.partial(two_processes, browser, s, workdir,
                                                        deadline, notes, out["redis"]))
    return out


# -- the report ---------------------------------------------------------------------------------
def median(runs: list[dict[str, Result]], setup: str, name: str) -> float:
    values = [r[setup][name] for r in runs if name in r.get(setup, {})]
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


ROWS: list[tuple[str, str, Callable[[float], str]]] = [
    ("click-to-screen p50, ms", "p50_ms", lambda v: f"{v:.0f}"),
    ("click-to-screen p99, ms", "p99_ms", lambda v: f"{v:.0f}"),
    ("click-to-screen max, ms", "max_ms", lambda v: f"{v:.0f}"),
    ("posts seen in B", "seen", lambda v: f"{v:.0f}"),
    ("B's runs: fragment-only", "b_fragment", lambda v: f"{v:.0f}"),
    ("B's runs: full page", "b_full", lambda v: f"{v:.0f}"),
    ("server CPU, 0 viewers, s/s", "idle0", lambda v: f"{v:.4f}"),
    ("server CPU, N idle viewers, s/s", "idle_n", lambda v: f"{v:.4f}"),
    ("viewer runs/s, N idle viewers", "idle_runs_per_s", lambda v: f"{v:.1f}"),
    ("Chromium CPU, N idle viewers, s/s", "browser_idle", lambda v: f"{v:.3f}"),
    ("other processes' CPU, idle window, s/s", "others_idle", lambda v: f"{v:.3f}"),
    ("posts sent (of K)", "posts_done", lambda v: f"{v:.0f}"),
    ("server CPU per post, N watching, ms (net of idle)", "per_post_ms", lambda v: f"{v:.1f}"),
    ("server CPU per post, gross, ms", "gross_per_post_ms", lambda v: f"{v:.1f}"),
    ("viewer runs per post", "viewer_runs_per_post", lambda v: f"{v:.1f}"),
    ("share of viewer runs fragment-only", "viewer_fragment_share", lambda v: f"{v:.2f}"),
    ("viewers showing the last post", "viewers_seen", lambda v: f"{v:.0f}"),
    ("last post in every viewer after, s", "all_seen_after_s", lambda v: f"{v:.2f}"),
    ("other processes' CPU, posting window, s/s", "others_posting", lambda v: f"{v:.3f}"),
    ("posting window, s", "window_s", lambda v: f"{v:.1f}"),
    ("posts sent in, s", "sent_s", lambda v: f"{v:.1f}"),
    ("viewers drawn within --load-timeout", "viewers_drawn", lambda v: f"{v:.0f}"),
    ("N viewers loaded in, s", "load_s", lambda v: f"{v:.1f}"),
]
SETUPS = (("poll", "poll, 1 process"), ("live", "live, 1 process"),
          ("redis", "live, 2 processes + Redis"))


def table(runs: list[dict[str, Result]]) -> str:
    setups = [(key, title) for key, title in SETUPS if any(key in r for r in runs)]
    head = ["measure", *(title for _, title in setups)]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label, name, fmt in ROWS:
        cells = []
        for key, _ in setups:
            value = median(runs, key, name)
            cells.append("—" if math.isnan(value) else fmt(value))
        if all(c == "—" for c in cells):
            continue
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shortfalls(runs: list[dict[str, Result]], s: Settings) -> list[str]:
    """Where the server could not keep up (medians): what the figures then mean."""
    out = []
    for key, title in SETUPS:
        drawn, posts, seen_by, polls = (median(runs, key, n) for n in (
            "viewers_drawn", "posts_done", "viewers_seen", "idle_runs_per_s"))
        if key == "poll" and polls < 0.9 * s.viewers:
            out.append(f"{title}: the {s.viewers} viewers polled {polls:.1f} times/s, not "
                       f"{s.viewers}: the server is saturated, so poll's CPU figures are what "
                       f"it could do, not what polling asks for (live/poll is an upper bound)")
        if drawn < s.viewers:
            out.append(f"{title}: only {drawn:.0f} of {s.viewers} viewer pages were drawn "
                       f"within --load-timeout {s.load_timeout:g} s (the others are left out)")
        if posts < s.posts:
            out.append(f"{title}: only {posts:.0f} of {s.posts} posts went out: a post did not "
                       f"show in the writer's own page within the budget")
        if seen_by < drawn:
            out.append(f"{title}: {seen_by:.0f} of {drawn:.0f} viewers showed the last post "
                       f"within --timeout {s.timeout:g} s")
    return out


def environment() -> str:
    usable = len(os.sched_getaffinity(0))
    try:
        chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True,
                                  timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        chromium = "Chromium ?"
    load = pathlib.Path("/proc/loadavg").read_text().split()[:3]
    return (f"{os.cpu_count()} cores ({usable} usable), Python {platform.python_version()}, "
            f"Streamlit {streamlit.__version__}, {chromium}, load average before the run "
            f"{' '.join(load)}")


def parse(argv: Sequence[str] | None) -> Settings:
    parts = listed(PARTS, "parts")
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--parts", type=parts, default=",".join(PARTS),
                   help="comma-separated: latency (poll and live, one process), redis "
                        "(live, two processes on one redis-server), cpu (idle and per post)")
    p.add_argument("--clicks", type=positive(int), default=30, help="posts timed per setup")
    p.add_argument("--spacing", type=positive(float), default=0.5,
                   help="seconds between timed posts (above live_interval, 0.25 s)")
    p.add_argument("--jitter", type=float, default=1.0,
                   help="plus a random pause of up to this many seconds after each timed post "
                        "showed (posts then land at random points of poll mode's 1 s cycle)")
    p.add_argument("--viewers", type=positive(int), default=20, help="N: idle viewer pages")
    p.add_argument("--posts", type=positive(int), default=30,
                   help="K: posts while the N viewers watch")
    p.add_argument("--post-spacing", type=positive(float), default=0.3,
                   help="seconds between those posts")
    p.add_argument("--idle-seconds", type=positive(float), default=20.0,
                   help="how long the N idle viewers are measured")
    p.add_argument("--baseline-seconds", type=positive(float), default=5.0,
                   help="how long a server with 0 viewers is measured")
    p.add_argument("--settle", type=positive(float), default=2.0,
                   help="seconds of rest before each CPU window")
    p.add_argument("--repeats", type=positive(int), default=1,
                   help="runs of everything; the table shows medians (--repeats 3: ~3x time)")
    p.add_argument("--timeout", type=positive(float), default=30.0,
                   help="seconds for one page (A, B, the writer) to draw, for one post to "
                        "show, and beyond the planned time of each series of posts")
    p.add_argument("--load-timeout", type=positive(float), default=60.0,
                   help="seconds for the N viewer pages (loading all at once) to draw")
    p.add_argument("--deadline", type=positive(float), default=600.0,
                   help="seconds for the whole run")
    p.add_argument("--streamlit-option", action="append", default=[], metavar="SECTION.NAME=V",
                   help="more Streamlit settings for every server, e.g. "
                        "runner.postScriptGC=false (repeatable)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    a = p.parse_args(argv)
    for option in a.streamlit_option:
        _flag(option)  # a malformed one fails here, not after the first server
    return Settings(a.parts, a.clicks, a.spacing, a.jitter, a.viewers, a.posts, a.post_spacing,
                    a.idle_seconds, a.baseline_seconds, a.settle, a.repeats, a.timeout,
                    a.load_timeout, a.deadline, a.streamlit_option, a.keep)


def main(argv: Sequence[str] | None = None) -> int:
    s = parse(argv)
    if not pathlib.Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (`make test` installs it)")
    started = time.monotonic()
    deadline = Deadline(s.deadline)
    workroot = pathlib.Path(tempfile.mkdtemp(prefix="bench-live-"))
    print(f"environment: {environment()}")
    print(f"live: {s.clicks} timed posts {s.spacing:g} s apart; N = {s.viewers} viewers, "
          f"idle {s.idle_seconds:g} s, K = {s.posts} posts {s.post_spacing:g} s apart; "
          f"parts {','.join(s.parts)}; repeats {s.repeats}; work dir {workroot}", flush=True)
    runs: list[dict[str, Result]] = []
    notes: list[str] = []
    crashed = False
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for rep in range(s.repeats):
                    t = time.monotonic()
                    runs.append(repeat(browser, s, workroot / f"run-{rep + 1}", deadline, notes))
                    print(f"  run {rep + 1}: {time.monotonic() - t:.0f} s", flush=True)
            finally:
                browser.close()
    except Exception as exc:
        crashed = True
        print(f"error: {type(exc).__name__}: {exc}", flush=True)
    finally:
        failed = crashed or any(" failed: " in n for n in notes)
        if not s.keep and not failed:
            shutil.rmtree(workroot, ignore_errors=True)
    if runs:
        print(f"\nmedians of {len(runs)} run(s); N = {s.viewers}, K = {s.posts}\n")
        print(table(runs))
        poll, live = (median(runs, k, "idle_n") for k in ("poll", "live"))
        if not math.isnan(poll) and poll > 0:
            ratio = live / poll
            print(f"\nidle CPU with {s.viewers} viewers, live/poll: {ratio:.2f}x "
                  f"({'met' if ratio <= 0.2 else 'missed'}; goal <= 0.2x)")
    for line in shortfalls(runs, s) if runs else []:
        print(f"\nsaturated: {line}")
    print("\nshared cores: the Streamlit server(s), redis-server, Chromium (a renderer per "
          "page) and this driver all run on this machine's cores; browser work competes with "
          "the server's. \"other processes\" is the rest of the machine (not started here): "
          "about 0 when the bench ran alone.")
    if notes:
        print("\nnotes (failed measurements; server log lines that are not the app's own):")
        print("\n".join(f"  {n}" for n in notes))
    if s.keep or failed:
        print(f"\nwork dir kept: {workroot}")
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 1 if failed or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
