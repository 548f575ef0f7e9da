"""Load test through the load balancer: N users on `make cluster` with 1 replica, then 2.

The load test's websocket users (_loadclient.py) click the Shared board through
HAProxy, which spreads them over the replicas (``balance leastconn``). For every
replica count and N a fresh cluster (HAProxy, the replicas, one redis-server) serves
N users clicking every ``--interval`` s for ``--seconds`` s; N grows while p99 stays
under ``--target-ms``. The table gives clicks served, latency, lost updates, and the
work per click of the replicas, Redis and HAProxy. Writes docs/loadtest-cluster.md.

    .venv/bin/python benchmarks/loadtest_cluster.py [--replicas 1,2] [--sessions 10,20,40]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import pathlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "deploy"))

import redis  # noqa: E402
from _loadrun import BoardUser, LoadResult, Tally, load_run  # noqa: E402
from _loadserver import REPO, listed, positive, process_cpu_seconds  # noqa: E402
from cluster import Cluster  # noqa: E402
from loadtest import machine, median_result  # noqa: E402

TARGET_MS = 250.0


@dataclass
class Work:
    """What the parts other than the load client had done at one moment."""

    redis_cpu: float
    haproxy_cpu: float
    redis_commands: dict[str, int]
    round_trips: float


@dataclass
class Row:
    replicas: int
    result: LoadResult
    #: Per acknowledged click, during the clicking.
    redis_cpu_ms: float
    haproxy_cpu_ms: float
    redis_commands: float
    round_trips: float
    top_commands: list[tuple[str, float]] = field(default_factory=list)

    @property
    def clicks_per_s(self) -> float:
        return self.result.clicks / self.result.seconds

    def holds(self, target_ms: float) -> bool:
        r = self.result
        return (r.p99_ms < target_ms and r.errors == 0 and r.lost == 0 and r.phantom == 0
                and r.entered == r.n)


class ClusterTarget:
    """A cluster as load_run sees a server: the load balancer's port, the replicas' memory,
    CPU and session counts added up.

    load_run reads ``cpu_seconds()`` exactly when the clicking starts and ends; each read
    also notes what Redis and HAProxy had done, so their work is of the same window.
    """

    variant = "safestate"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.port = cluster.port
        self.metrics_port = cluster.metrics_ports[0]
        self.session_ttl = cluster.session_ttl
        assert cluster.redis is not None
        self.redis = redis.Redis.from_url(cluster.redis.url)
        self.marks: list[Work] = []

    def _servers(self) -> list:  # type: ignore[type-arg]
        return [r for r in self.cluster.replicas if r is not None and r.proc.poll() is None]

    def rss_kib(self) -> int:
        return sum(r.rss_kib() for r in self._servers())

    def cpu_seconds(self) -> float:
        assert self.cluster.redis is not None and self.cluster.redis.proc is not None
        assert self.cluster.haproxy is not None
        stats = self.redis.info("commandstats")
        scraped = self.scrape() or {}
        self.marks.append(Work(
            redis_cpu=process_cpu_seconds(self.cluster.redis.proc.pid),
            haproxy_cpu=process_cpu_seconds(self.cluster.haproxy.pid),
            redis_commands={k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()
                            if k not in ("cmdstat_info",)},
            round_trips=sum(v for k, v in scraped.items()
                            if k.startswith("safestate_store_round_trips_total")),
        ))
        return sum(r.cpu_seconds() for r in self._servers())

    def scrape(self, timeout: float = 5.0) -> dict[str, float] | None:
        total: dict[str, float] = {}
        for server in self._servers():
            scraped = server.scrape(timeout)
            if scraped is None:
                return None
            for name, value in scraped.items():
                total[name] = total.get(name, 0.0) + value
        return total

    def row(self, replicas: int, result: LoadResult) -> Row:
        start, end = self.marks[0], self.marks[1]
        clicks = max(1, result.clicks)
        commands = {k: end.redis_commands.get(k, 0) - start.redis_commands.get(k, 0)
                    for k in end.redis_commands}
        top = sorted(((k, v / clicks) for k, v in commands.items() if v), key=lambda kv: -kv[1])
        return Row(replicas, result,
                   redis_cpu_ms=(end.redis_cpu - start.redis_cpu) * 1000 / clicks,
                   haproxy_cpu_ms=(end.haproxy_cpu - start.haproxy_cpu) * 1000 / clicks,
                   redis_commands=sum(commands.values()) / clicks,
                   round_trips=(end.round_trips - start.round_trips) / clicks,
                   top_commands=top[:6])


async def warm(cluster: Cluster) -> None:
    """One session on each replica directly: every replica has imported and built the demo
    (and serves its metrics) before anything is measured."""
    for server in cluster.replicas:
        assert server is not None
        user = BoardUser(server.port, Tally(), 60.0)
        if not await user.enter():
            raise RuntimeError(f"warming replica on port {server.port} failed: "
                               f"{user.tally.errors}")
        await user.close()


def run_one(replicas: int, n: int, a: argparse.Namespace, logs: pathlib.Path,
            rng: random.Random) -> Row:
    rows = []
    for rep in range(a.repeats):
        cluster = Cluster(logs / f"r{replicas}-n{n}-{rep}", replicas, session_ttl=5,
                          options=a.streamlit_option)
        try:
            asyncio.run(warm(cluster))
            target = ClusterTarget(cluster)
            result = asyncio.run(load_run(target, n, a.seconds, a.interval,  # type: ignore[arg-type]
                                          timeout=a.timeout, rng=rng))
            rows.append(target.row(replicas, result))
        finally:
            cluster.stop()
    if len(rows) == 1:
        return rows[0]
    med = median_result([r.result for r in rows])
    return Row(replicas, med,
               redis_cpu_ms=statistics.median(r.redis_cpu_ms for r in rows),
               haproxy_cpu_ms=statistics.median(r.haproxy_cpu_ms for r in rows),
               redis_commands=statistics.median(r.redis_commands for r in rows),
               round_trips=statistics.median(r.round_trips for r in rows),
               top_commands=rows[len(rows) // 2].top_commands)


def best(rows: list[Row], replicas: int, target_ms: float) -> Row | None:
    """The row with the most clicks per second at p99 < target, 0 errors and 0 lost."""
    held = [r for r in rows if r.replicas == replicas and r.holds(target_ms)]
    return max(held, key=lambda r: r.clicks_per_s, default=None)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def report(a: argparse.Namespace, rows: list[Row], wall_s: float, command: str) -> str:
    lines = [
        "# Load test through the load balancer: 1 replica against 2",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}; the whole run took "
        f"{wall_s / 60:.1f} min.",
        "",
        "```bash",
        command,
        "```",
        "",
        "`make cluster`'s deployment (deploy/haproxy.cfg; every replica the unchanged demo "
        "with `SAFESTATE_STORE` on one redis-server, browser identity, persisted typed state) "
        f"serves N websocket users through HAProxy. Each clicks the Shared board every "
        f"{a.interval:g} s for {a.seconds:g} s (closed loop); live updates are on, so each "
        "click also redraws the other users' board (within the live rerun budget). Every row "
        "is a fresh cluster"
        + "".join(f", `--{o.replace('=', ' ', 1)}`" for o in a.streamlit_option)
        + ". The load client, HAProxy and Redis share the same 2 cores with the replicas.",
        "",
        "- **p50 / p99**: click to the run's `script_finished`, through HAProxy.",
        "- **lost**: acknowledged clicks missing from the shared counter or from a user's own "
        "count (read at the end); **errors**: timeouts, failed runs, dropped connections.",
        "- **CPU/click**: CPU time during the clicking per acknowledged click, of all replicas "
        "together, of redis-server and of HAProxy. **replicas CPU**: 100% is one core.",
        "- **Redis cmds/click**: commands Redis executed per click (INFO commandstats; the "
        "commands inside safestate's Lua commit script included). **round trips/click**: "
        "safestate's store calls (one network round trip each), from the replicas' metrics.",
        "",
        "| replicas | N | clicks/s | p50 ms | p99 ms | errors | lost | replicas CPU | "
        "CPU/click ms | Redis CPU/click ms | HAProxy CPU/click ms | Redis cmds/click | "
        "round trips/click | client CPU |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        r = row.result
        lines.append(
            f"| {row.replicas} | {r.n} | {row.clicks_per_s:.1f} | {_ms(r.p50_ms)} | "
            f"{_ms(r.p99_ms)} | {r.errors} | {r.lost} | {r.server_cpu_pct:.0f}% | "
            f"{r.server_cpu_ms_per_click:.1f} | {row.redis_cpu_ms:.2f} | "
            f"{row.haproxy_cpu_ms:.2f} | {row.redis_commands:.1f} | {row.round_trips:.1f} | "
            f"{r.client_cpu_pct:.0f}% |")
    lines.append("")
    found = {n: best(rows, n, a.target_ms) for n in a.replicas}
    for replicas, row in found.items():
        if row is None:
            lines.append(f"- **{replicas} replica(s)**: no N held p99 < {a.target_ms:g} ms "
                         "with 0 errors and 0 lost.")
        else:
            lines.append(
                f"- **{replicas} replica(s)**: largest N with p99 < {a.target_ms:g} ms, 0 errors "
                f"and 0 lost: **N = {row.result.n}**, {row.clicks_per_s:.1f} clicks/s "
                f"(p99 {row.result.p99_ms:.0f} ms).")
    base = found.get(1)
    for replicas, row in found.items():
        if replicas != 1 and base is not None and row is not None:
            ratio = row.clicks_per_s / base.clicks_per_s
            lines.append(f"- **{replicas} replicas / 1**: {ratio:.2f}x the clicks per second "
                         f"at p99 < {a.target_ms:g} ms.")
    lost = sum(r.result.lost for r in rows)
    lines += ["", f"Lost updates over all rows: **{lost}**.", "",
              "Redis commands per click, by command (the row with the most clicks):", ""]
    top = max(rows, key=lambda r: r.result.clicks, default=None)
    if top is not None:
        lines += [f"- `{name}`: {per:.2f}" for name, per in top.top_commands]
    return "\n".join(lines) + "\n"


def counts(text: str) -> list[int]:
    """An argparse type: comma-separated session counts, each > 0, e.g. "10,20,40"."""
    try:
        found = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        found = []
    if not found or min(found) < 1:
        raise argparse.ArgumentTypeError(f"session counts are integers > 0 such as 10,20,40; "
                                         f"got {text!r}")
    return found


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--replicas", type=listed([str(i) for i in range(1, 9)], "replica counts"),
                   default=["1", "2"], help="replica counts, e.g. 1,2")
    p.add_argument("--sessions", type=counts,
                   default=[10, 20, 30, 40, 60, 80, 120],
                   help="N in increasing order; the next N only while p99 < --target-ms")
    p.add_argument("--seconds", type=positive(float), default=30.0)
    p.add_argument("--interval", type=positive(float), default=5.0)
    p.add_argument("--repeats", type=positive(int), default=1)
    p.add_argument("--timeout", type=positive(float), default=30.0)
    p.add_argument("--target-ms", type=positive(float), default=TARGET_MS)
    p.add_argument("--streamlit-option", action="append", default=[], metavar="SECTION.NAME=V",
                   help="a setting for every replica, e.g. runner.postScriptGC=false")
    p.add_argument("--out", type=pathlib.Path, default=REPO / "docs" / "loadtest-cluster.md")
    p.add_argument("--logs", type=pathlib.Path, default=None)
    a = p.parse_args(argv)
    a.replicas = [int(x) for x in a.replicas]
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse(argv)
    logs = a.logs or pathlib.Path(tempfile.mkdtemp(prefix="loadtest-cluster-"))
    print(f"cluster logs in {logs}", flush=True)
    args = " ".join(sys.argv[1:] if argv is None else argv)
    command = (f".venv/bin/python benchmarks/loadtest_cluster.py {args}" if args else
               "make loadtest-cluster  # = .venv/bin/python benchmarks/loadtest_cluster.py")
    rng = random.Random(20261127)
    started = time.monotonic()
    rows: list[Row] = []
    for replicas in a.replicas:
        for n in a.sessions:
            row = run_one(replicas, n, a, logs, rng)
            rows.append(row)
            r = row.result
            print(f"replicas={replicas} N={n}: {row.clicks_per_s:.1f} clicks/s, p50 "
                  f"{_ms(r.p50_ms)} p99 {_ms(r.p99_ms)} ms, errors {r.errors}, lost {r.lost}, "
                  f"CPU/click {r.server_cpu_ms_per_click:.1f} ms, Redis "
                  f"{row.redis_cpu_ms:.2f} ms and {row.redis_commands:.1f} cmds/click, "
                  f"client CPU {r.client_cpu_pct:.0f}%", flush=True)
            if not row.holds(a.target_ms):
                break
    text = report(a, rows, time.monotonic() - started, command)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    print()
    print(text)
    print(f"wrote {a.out}")
    return 1 if any(r.result.lost for r in rows) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
