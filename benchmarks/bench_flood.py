"""Flood bench (defect D5): one client sends click reruns faster than runs finish.

With ``runner.fastReruns`` (Streamlit's default) every rerun request stops the
running script at its next st.* call and starts a new script thread at once. This
bench starts a real ``streamlit run`` of _flood_app.py per variant (plain
st.session_state; safestate with memory://, SQLite, Redis), opens one websocket
session and sends N click reruns within a time budget without waiting for any run
to finish, while it samples the server's thread count (/proc/<pid>/status) every
~10 ms, through the flood and a settle period after it. Then it reads the session's
final log (a fresh run of the same session; for the stores also the store itself)
and the file where each run recorded the click it applied.

Per variant: peak threads, lost updates (applied clicks missing from the final
log), duplicates, stale writes (a click applied after a newer one), whether the last
click is in the log, how long the server took to get through the clicks (drain) and
threads to settle. Target after the fix: peak at most 2x plain's, 0 lost updates.

The default flood is the reviewer's rate (2000 clicks in 15 s, 133/s) for 600
clicks. A server that cannot keep up (Streamlit runs gc.collect(2) after every run,
runner.postScriptGC; on 2 vCPUs plain handles some 20-40 reruns/s) queues the rest
on the websocket and works through them after the last click: 2000 clicks then take
about 2 minutes per variant. ``--clicks 2000 --seconds 15 --settle-timeout 300`` is
the reviewer's flood exactly.

    .venv/bin/python benchmarks/bench_flood.py [--variants plain,sqlite] [--clicks 600]
        [--seconds 4.5] [--burst 1] [--repeats 1] [--json out.json]
        [--safestate-src /tmp/head/src]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import pathlib
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from _loadclient import TIMEOUTS, Tab, trigger
from _loadserver import DemoServer, RedisServer, _flag, listed, positive
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.exceptions import WebSocketException

APP = pathlib.Path(__file__).resolve().parent / "_flood_app.py"
VARIANTS = ("plain", "memory", "sqlite", "redis")
REDIS_SERVER = "/usr/bin/redis-server"
CLICK_DRAWN = re.compile(r"^FLOOD n=(-?\d+) len=(\d+)$")
LOG_DRAWN = "FLOOD_LOG "
#: The identity the app's store variants use (see _flood_app.flood_identity).
FLOOD_IDENTITY = "flood"


# -- the servers --------------------------------------------------------------------------------
class FloodServer(DemoServer):
    """One ``streamlit run`` of _flood_app.py (the demo's server, another app)."""

    def __init__(
        self, variant: str, workdir: pathlib.Path, env_extra: dict[str, str],
        options: Sequence[str] = (),
    ) -> None:
        # Whatever SAFESTATE_* this shell has would change the variant under test: dropped.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAFESTATE_")}
        super().__init__(variant, workdir / f"streamlit-{variant}.log", metrics=False,
                         options=options, app=APP, cwd=workdir, env={**env, **env_extra})


# -- the thread sampler -------------------------------------------------------------------------
def thread_count(pid: int) -> int | None:
    """The process's thread count (``Threads:`` in /proc/<pid>/status), None once it is gone."""
    try:
        text = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return None


class ThreadSampler:
    """Samples a process's thread count every ``interval`` s on its own thread.

    Its own OS thread, not an asyncio task: the client's event loop is busiest exactly
    when the samples matter. Bounded: at most ``max_seconds`` of samples.
    """

    def __init__(self, pid: int, interval: float, max_seconds: float) -> None:
        self.pid = pid
        self.interval = interval
        self.max_samples = int(max_seconds / interval) + 1
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="thread-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        for _ in range(self.max_samples):
            count = thread_count(self.pid)
            if count is None:
                return
            self.samples.append((time.monotonic(), count))  # list.append: atomic under GIL
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def now(self) -> int:
        """The latest sample (or a fresh reading if there is none)."""
        if self.samples:
            return self.samples[-1][1]
        return thread_count(self.pid) or 0

    def between(self, start: float, end: float) -> list[tuple[float, int]]:
        return [(t, n) for t, n in list(self.samples) if start <= t <= end]


# -- the client ---------------------------------------------------------------------------------
class FloodClient:
    """One session: sends reruns without waiting; a background task reads everything sent back.

    Streamlit forwards only the current script run's messages (a superseded run's are
    dropped), so what it reads are the runs that finished while still the newest.
    """

    def __init__(self, port: int) -> None:
        self.tab = Tab(port)
        self.widgets: dict[str, str] = {}
        #: Click numbers whose run finished (FINISHED_SUCCESSFULLY) having drawn FLOOD n=.
        self.finished_clicks: set[int] = set()
        self.finished_runs = 0
        self.exceptions: list[str] = []
        self.last_finished_at = 0.0
        self.last_finished_exception = False
        self.final_log: list[int] | None = None
        self.closed_error: str | None = None
        self._run_n: int | None = None
        self._run_log: list[int] | None = None
        self._run_exception = False
        self._reader: asyncio.Task[None] | None = None

    async def open(self, timeout: float) -> None:
        await self.tab.open(timeout)
        self._reader = asyncio.create_task(self._read())

    async def close(self, timeout: float) -> None:
        with contextlib.suppress(*TIMEOUTS, OSError, WebSocketException):
            await asyncio.wait_for(self.tab.close(), timeout)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def send_rerun(self, widgets: Iterable[WidgetState] = ()) -> None:
        ws = self.tab.ws
        if ws is None:
            raise ConnectionError("the websocket is closed")
        msg = BackMsg()
        rerun = msg.rerun_script
        rerun.query_string = ""
        rerun.page_script_hash = self.tab.page_hash
        rerun.page_name = ""
        rerun.widget_states.widgets.extend(widgets)
        await ws.send(msg.SerializeToString())

    def click(self, number: int) -> list[WidgetState]:
        """The widget states of one click: n set to ``number``, the button's trigger."""
        return [WidgetState(id=self.widgets["n"], double_value=float(number)),
                trigger(self.widgets["click"])]

    async def _read(self) -> None:
        ws = self.tab.ws
        assert ws is not None
        try:
            async for data in ws:  # ends when the connection closes
                fwd = ForwardMsg()
                fwd.ParseFromString(data if isinstance(data, bytes) else data.encode())
                self._on(fwd)
        except (OSError, WebSocketException) as exc:
            self.closed_error = f"{type(exc).__name__}: {exc}"

    def _on(self, fwd: ForwardMsg) -> None:
        kind = fwd.WhichOneof("type")
        if kind == "new_session":
            self._run_n, self._run_log, self._run_exception = None, None, False
        elif kind == "navigation":
            self.tab.page_hash = fwd.navigation.page_script_hash
        elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
            element = fwd.delta.new_element
            which = element.WhichOneof("type")
            if which == "markdown":
                body = element.markdown.body
                found = CLICK_DRAWN.match(body)
                if found:
                    self._run_n = int(found.group(1))
                elif body.startswith(LOG_DRAWN):
                    self._run_log = [int(v) for v in json.loads(body[len(LOG_DRAWN):])]
            elif which in ("button", "number_input"):
                widget_id = getattr(element, which).id
                self.widgets[widget_id.rsplit("-", 1)[-1]] = widget_id
            elif which == "exception":
                self._run_exception = True
                self.exceptions.append(f"{element.exception.type}: {element.exception.message}")
        elif kind == "script_finished":
            status = ForwardMsg.ScriptFinishedStatus.Name(fwd.script_finished)
            if status != "FINISHED_SUCCESSFULLY":
                return
            self.finished_runs += 1
            self.last_finished_at = time.monotonic()
            self.last_finished_exception = self._run_exception
            if self._run_n is not None:
                self.finished_clicks.add(self._run_n)
            if self._run_log is not None:
                self.final_log = self._run_log


async def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    """Poll ``pred`` every ``step`` s for at most ``timeout`` s; whether it came true."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)


# -- one flood ----------------------------------------------------------------------------------
@dataclass
class Settings:
    variants: list[str]
    clicks: int
    seconds: float
    burst: int
    repeats: int
    settle_timeout: float
    sample_interval: float
    tolerance: int
    timeout: float
    options: list[str]
    keep: bool
    json_out: pathlib.Path | None
    safestate_src: pathlib.Path | None


@dataclass
class Result:
    variant: str
    clicks_sent: int = 0
    send_seconds: float = 0.0
    #: Runs the client saw finish (the newest run at the time; superseded ones send nothing).
    runs_finished: int = 0
    #: Lines in the applied file: runs that completed their read-modify-write.
    applied: int = 0
    applied_unique: int = 0
    final_len: int = 0
    #: Applied click numbers missing from the final log.
    lost: int = 0
    #: Entries of the final log beyond the first of each number.
    duplicated: int = 0
    #: Numbers in the final log that no run recorded as applied.
    phantom: int = 0
    #: Entries of the final log below an earlier entry: a click applied after a newer one
    #: (a superseded run that applied its write late).
    stale: int = 0
    last_click_in_log: bool = False
    last_run_finished: bool = False
    #: Clicks never applied: superseded before their read-modify-write.
    never_applied: int = 0
    exceptions: int = 0
    baseline_threads: int = 0
    peak_threads: int = 0
    peak_threads_during_flood: int = 0
    end_threads: int = 0
    #: Seconds from the last click sent until its run finished (the server's backlog; None:
    #: not within the settle timeout).
    drain_seconds: float | None = None
    #: Seconds from the last click until threads stayed within baseline + tolerance (None:
    #: not within the settle timeout).
    settle_seconds: float | None = None
    #: For the store variants: whether the store holds the log the page drew.
    store_matches: bool | None = None
    error: str = ""
    #: Peak threads per 100 ms from the first click, (seconds, threads) (--json only).
    timeline: list[tuple[float, int]] = field(default_factory=list)
    lost_sample: list[int] = field(default_factory=list)
    exception_sample: list[str] = field(default_factory=list)


async def flood(
    port: int, s: Settings, sampler: ThreadSampler, applied_file: pathlib.Path, result: Result,
) -> list[int]:
    """Open a session, read the baseline, flood it, wait for it to settle; the final log."""
    client = FloodClient(port)
    await client.open(s.timeout)
    try:
        await client.send_rerun()
        if not await wait_until(lambda: client.finished_runs >= 1, s.timeout):
            raise TimeoutError(f"the first run did not finish in {s.timeout} s")
        missing = {"n", "click"} - set(client.widgets)
        if missing:
            raise RuntimeError(f"the page drew no widget {sorted(missing)}: {client.exceptions}")
        # The first run's script thread ends just after it finished: the idle minimum.
        await asyncio.sleep(0.6)
        now = time.monotonic()
        idle = [n for _, n in sampler.between(now - 0.4, now)] or [sampler.now()]
        baseline = min(idle)
        result.baseline_threads = baseline

        # The flood: click i at t0 + (i // burst) * interval, never waiting for a run.
        groups = -(-s.clicks // s.burst)
        interval = s.seconds / groups
        hard_stop = s.seconds * 1.5 + 5  # the sender's own budget if it falls behind
        t0 = time.monotonic()
        sent = 0
        for g in range(groups):
            delay = t0 + g * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # behind schedule: still let the reader run
            if time.monotonic() - t0 > hard_stop:
                break
            for _ in range(min(s.burst, s.clicks - sent)):
                sent += 1
                await client.send_rerun(client.click(sent))
        t_last = time.monotonic()
        result.clicks_sent = sent
        result.send_seconds = t_last - t0
        last = sent

        # Drain, then settle. The server may be behind (each run ends with Streamlit's
        # gc.collect(2), runner.postScriptGC): the clicks wait in its websocket queue, and
        # the last one runs only after all the others were handled. Then threads must be
        # back near the baseline and the applied file no longer growing (a run still queued
        # somewhere would grow it). All within --settle-timeout of the last click.
        def last_done() -> bool:
            return last in client.finished_clicks or (
                client.last_finished_at > t_last and client.last_finished_exception)

        deadline = t_last + s.settle_timeout
        if await wait_until(last_done, s.settle_timeout, step=0.05):
            result.drain_seconds = time.monotonic() - t_last
        limit = baseline + s.tolerance
        size, size_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            current = applied_file.stat().st_size
            if current != size:
                size, size_since = current, time.monotonic()
            quiet = time.monotonic() - size_since >= 0.5
            if last_done() and sampler.now() <= limit and quiet:
                break
            await asyncio.sleep(0.05)
        t_end = time.monotonic()
        result.last_run_finished = last_done()
        result.end_threads = sampler.now()
        window = sampler.between(t0, t_end)
        result.peak_threads = max((n for _, n in window), default=baseline)
        result.peak_threads_during_flood = max(
            (n for t, n in window if t <= t_last), default=baseline)
        settled_at: float | None = t_last
        for t, n in sampler.between(t_last, t_end):
            if n > limit:
                settled_at = None
            elif settled_at is None:
                settled_at = t
        if window and window[-1][1] > limit:
            settled_at = None
        result.settle_seconds = None if settled_at is None else max(0.0, settled_at - t_last)
        buckets: dict[int, int] = {}
        for t, n in window:
            slot = int((t - t0) * 10)
            buckets[slot] = max(n, buckets.get(slot, 0))
        result.timeline = [(slot / 10, n) for slot, n in sorted(buckets.items())]

        # The final state: a run of the same session without a click draws the whole log.
        # Read again (at most 3 times) while the applied file grew meanwhile: a stale run
        # that applies after the read would otherwise count as lost.
        clicks_finished = client.finished_runs - 1  # less the first run
        for _ in range(3):
            before = applied_file.stat().st_size
            client.final_log = None
            await client.send_rerun()
            if not await wait_until(lambda: client.final_log is not None, s.timeout):
                raise TimeoutError(f"the read run did not finish in {s.timeout} s")
            if applied_file.stat().st_size == before:
                break
            await asyncio.sleep(1.0)
        result.runs_finished = clicks_finished
        result.exceptions = len(client.exceptions)
        result.exception_sample = sorted(set(client.exceptions))[:3]
        assert client.final_log is not None
        score(result, client.final_log, applied_file, last)
        return client.final_log
    finally:
        await client.close(s.timeout)


def score(result: Result, final: list[int], applied_file: pathlib.Path, last: int) -> None:
    """Compare the final log with the clicks the runs recorded as applied."""
    applied = [int(v) for v in applied_file.read_text().split()]
    applied_set = set(applied)
    in_log = set(final)
    result.applied = len(applied)
    result.applied_unique = len(applied_set)
    result.final_len = len(final)
    lost = sorted(applied_set - in_log)
    result.lost = len(lost)
    result.lost_sample = lost[:10]
    result.duplicated = sum(c - 1 for c in Counter(final).values() if c > 1)
    result.phantom = len(in_log - applied_set)
    top = 0
    for value in final:
        result.stale += value < top
        top = max(top, value)
    result.last_click_in_log = last in in_log
    result.never_applied = result.clicks_sent - len(applied_set & set(range(1, last + 1)))


def store_log(url: str) -> list[int]:
    """The log as the store holds it (the store variants' fixed identity's namespace)."""
    from safestate.identity import namespace_for
    from safestate.stores import open_store

    store = open_store(url)
    try:
        snap = store.load(namespace_for("custom:" + FLOOD_IDENTITY))
    finally:
        store.close()
    data = snap.values.get("log")
    return [] if data is None else [int(v) for v in json.loads(data)]


def run_variant(variant: str, s: Settings, workdir: pathlib.Path) -> Result:
    """One flood against a fresh server (and a fresh store) of ``variant``."""
    result = Result(variant)
    workdir.mkdir(parents=True, exist_ok=True)
    applied_file = workdir / "applied.txt"
    applied_file.write_text("")
    env = {"FLOOD_VARIANT": variant, "FLOOD_APPLIED_FILE": str(applied_file)}
    if s.safestate_src is not None:
        # Ahead of the editable install's path entry: this safestate is the one imported.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(s.safestate_src), os.environ.get("PYTHONPATH", "")) if p)
    redis: RedisServer | None = None
    server: FloodServer | None = None
    sampler: ThreadSampler | None = None
    url = ""
    try:
        if variant == "redis":
            if not pathlib.Path(REDIS_SERVER).exists():
                raise RuntimeError(f"{REDIS_SERVER} is missing (`make test` installs it)")
            redis = RedisServer(workdir, durable=False)
            url = redis.url
        elif variant == "sqlite":
            url = f"sqlite:///{workdir / 'flood.db'}"  # an absolute path: sqlite:////...
        if url:
            env["FLOOD_STORE_URL"] = url
        server = FloodServer(variant, workdir, env, s.options)
        budget = s.seconds * 1.5 + s.settle_timeout + 4 * s.timeout + 60
        sampler = ThreadSampler(server.proc.pid, s.sample_interval, budget)
        sampler.start()
        final = asyncio.run(flood(server.port, s, sampler, applied_file, result))
        if url:
            result.store_matches = store_log(url) == final
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        if server is not None:
            result.error += f" (server log: {server.log})"
    finally:
        if sampler is not None:
            sampler.stop()
        if server is not None:
            server.stop()
        if redis is not None:
            redis.stop()
    return result


# -- the report ---------------------------------------------------------------------------------
NUMERIC = ("clicks_sent", "send_seconds", "runs_finished", "applied", "applied_unique",
           "final_len", "lost", "duplicated", "phantom", "stale", "never_applied",
           "exceptions", "baseline_threads", "peak_threads", "peak_threads_during_flood",
           "end_threads")
SUMMED = ("lost", "duplicated", "phantom", "exceptions")


def combine(runs: list[Result]) -> Result:
    """One row for repeated runs: medians; lost/duplicated/phantom/exceptions are summed."""
    good = [r for r in runs if not r.error] or runs
    if len(good) == 1:
        out = Result(**asdict(good[0]))
    else:
        out = Result(good[0].variant)
        for name in NUMERIC:
            values = [getattr(r, name) for r in good]
            if name in SUMMED:
                setattr(out, name, sum(values))
            else:
                med = statistics.median(values)
                setattr(out, name, med if isinstance(values[0], float) else round(med))
        for name in ("settle_seconds", "drain_seconds"):
            values = [getattr(r, name) for r in good]
            setattr(out, name, None if any(v is None for v in values)
                    else statistics.median(v for v in values if v is not None))
        out.last_click_in_log = all(r.last_click_in_log for r in good)
        out.last_run_finished = all(r.last_run_finished for r in good)
        stores = [r.store_matches for r in good]
        out.store_matches = None if stores[0] is None else all(bool(v) for v in stores)
        out.lost_sample = sorted({v for r in good for v in r.lost_sample})[:10]
        out.exception_sample = sorted({v for r in good for v in r.exception_sample})[:3]
    errors = [r.error for r in runs if r.error]
    out.error = "; ".join(errors) if len(errors) == len(runs) else (
        f"{len(errors)} of {len(runs)} runs failed: {errors[0]}" if errors else "")
    return out


def table(rows: list[Result], settle_timeout: float) -> str:
    plain = next((r.peak_threads for r in rows if r.variant == "plain" and not r.error), None)
    head = ["variant", "clicks", "send s", "drain s", "applied", "never appl.", "final len",
            "lost", "dup", "phantom", "stale", "last in log", "exc", "base thr", "peak thr",
            "end thr", "settle s", "peak/plain"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.error and not r.clicks_sent:
            lines.append(f"| {r.variant} | error: {r.error} |")
            continue
        ratio = f"{r.peak_threads / plain:.1f}x" if plain else "n/a"
        settle, drain = (f"{v:.1f}" if v is not None else f">{settle_timeout:.0f}"
                         for v in (r.settle_seconds, r.drain_seconds))
        last = "yes" if r.last_click_in_log else "NO"
        cells = [r.variant, r.clicks_sent, f"{r.send_seconds:.1f}", drain, r.applied,
                 r.never_applied, r.final_len, r.lost, r.duplicated, r.phantom, r.stale, last,
                 r.exceptions, r.baseline_threads, r.peak_threads, r.end_threads, settle, ratio]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def notes(rows: list[Result]) -> list[str]:
    out = []
    for r in rows:
        if r.error:
            out.append(f"{r.variant}: {r.error}")
        if r.lost_sample:
            out.append(f"{r.variant}: lost clicks (first 10): {r.lost_sample}")
        if r.exception_sample:
            out.append(f"{r.variant}: exceptions drawn: {r.exception_sample}")
        if not r.last_run_finished and r.clicks_sent:
            out.append(f"{r.variant}: the last click's run was not seen to finish")
        if r.store_matches is False:
            out.append(f"{r.variant}: the store's log differs from the log the page drew")
    return out


def parse(argv: Sequence[str] | None) -> Settings:
    names = listed(VARIANTS, "variants")
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--variants", type=names, default=",".join(VARIANTS),
                   help="comma-separated, of: " + ", ".join(VARIANTS))
    p.add_argument("--clicks", type=positive(int), default=600, help="click reruns to send")
    p.add_argument("--seconds", type=positive(float), default=4.5,
                   help="spread the clicks evenly over this many seconds")
    p.add_argument("--burst", type=positive(int), default=1,
                   help="clicks sent back to back at each send time (several per loop tick)")
    p.add_argument("--repeats", type=positive(int), default=1,
                   help="floods per variant (the table shows medians)")
    p.add_argument("--settle-timeout", type=positive(float), default=120.0,
                   help="seconds after the last click to wait for threads to settle")
    p.add_argument("--sample-interval", type=positive(float), default=0.01,
                   help="seconds between thread-count samples")
    p.add_argument("--tolerance", type=int, default=2,
                   help="threads above the idle baseline that still count as settled")
    p.add_argument("--timeout", type=positive(float), default=30.0,
                   help="seconds for the first run, the read run and the websocket")
    p.add_argument("--streamlit-option", action="append", default=[], metavar="SECTION.NAME=V",
                   help="more Streamlit settings, e.g. runner.fastReruns=false (repeatable)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work dir (server logs, applied files, SQLite file)")
    p.add_argument("--json", type=pathlib.Path, default=None, dest="json_out",
                   help="also write every run's raw result here")
    p.add_argument("--safestate-src", type=pathlib.Path, default=None, metavar="DIR",
                   help="import safestate from DIR/safestate instead of the installed one "
                        "(e.g. `git archive HEAD src | tar -x -C /tmp/head` then "
                        "/tmp/head/src): before/after a change without touching src/")
    a = p.parse_args(argv)
    if a.safestate_src is not None:
        a.safestate_src = a.safestate_src.resolve()
        if not (a.safestate_src / "safestate" / "__init__.py").is_file():
            p.error(f"--safestate-src: no safestate package in {a.safestate_src}")
        sys.path.insert(0, str(a.safestate_src))  # the store reads here use it too
    for option in a.streamlit_option:
        _flag(option)  # a malformed one fails here, not after the first server
    return Settings(a.variants, a.clicks, a.seconds, a.burst, a.repeats, a.settle_timeout,
                    a.sample_interval, a.tolerance, a.timeout, a.streamlit_option, a.keep,
                    a.json_out, a.safestate_src)


def main(argv: Sequence[str] | None = None) -> int:
    s = parse(argv)
    if not APP.exists():
        raise SystemExit(f"{APP} is missing")
    workroot = pathlib.Path(tempfile.mkdtemp(prefix="bench-flood-"))
    spec = importlib.util.find_spec("safestate")  # found, not imported: src/ may be mid-edit
    origin = spec.origin if spec is not None else None
    source = s.safestate_src or (pathlib.Path(origin).parents[1] if origin else "?")
    print(f"flood: {s.clicks} clicks in {s.seconds:g} s (burst {s.burst}), variants "
          f"{','.join(s.variants)}, repeats {s.repeats}; safestate from {source}; "
          f"work dir {workroot}", flush=True)
    raw: dict[str, list[Result]] = {v: [] for v in s.variants}
    try:
        for rep in range(s.repeats):
            for variant in s.variants:
                started = time.monotonic()
                r = run_variant(variant, s, workroot / f"{variant}-{rep + 1}")
                raw[variant].append(r)
                status = f"error: {r.error}" if r.error else (
                    f"peak {r.peak_threads} threads, lost {r.lost}, applied {r.applied}")
                print(f"  {variant} #{rep + 1}: {status} ({time.monotonic() - started:.0f} s)",
                      flush=True)
    finally:
        failed = any(r.error for rs in raw.values() for r in rs)
        if not s.keep and not failed:
            shutil.rmtree(workroot, ignore_errors=True)
    rows = [combine(raw[v]) for v in s.variants]
    print()
    print(table(rows, s.settle_timeout))
    plain = next((r for r in rows if r.variant == "plain" and not r.error), None)
    if plain is not None:
        print()
        for r in rows:
            if r.variant != "plain" and not r.error:
                verdict = ("ok" if r.peak_threads <= 2 * plain.peak_threads and r.lost == 0
                           else "D5 target missed")
                print(f"{r.variant}: peak {r.peak_threads} threads = "
                      f"{r.peak_threads / plain.peak_threads:.1f}x plain's {plain.peak_threads}"
                      f", lost {r.lost} -> {verdict} (target: <= 2x plain, 0 lost)")
    extra = notes(rows)
    if extra:
        print()
        print("\n".join(extra))
    if s.json_out is not None:
        s.json_out.write_text(json.dumps(
            {"settings": {k: str(v) if isinstance(v, pathlib.Path) else v
                          for k, v in asdict(s).items()},
             "runs": {v: [asdict(r) for r in rs] for v, rs in raw.items()}}, indent=2))
    if s.keep or failed:
        print(f"\nwork dir kept: {workroot}")
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
