"""Load test: N real sessions click the demo's Shared board, with safestate and without.

Each session is a websocket speaking Streamlit's own protocol (see _loadclient.py).
For every N the demo (examples/demo/app.py) and its plain ``st.session_state``
twin (app_plain.py) each get a fresh server; then a churn phase sends waves of
sessions that come, click and leave, and waits until safestate's lock registry is
back at its baseline. Writes a markdown table and a plot (``make loadtest``).

    .venv/bin/python benchmarks/loadtest.py [--sessions 10,50,200] [--churn-seconds 180]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import pathlib
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import streamlit
from _loadrun import ChurnResult, LoadResult, churn, load_run
from _loadserver import REPO, DemoServer

P99_TARGET_MS = 250.0


@dataclass
class Settings:
    sessions: list[int]
    escalate: list[int]
    variants: list[str]
    seconds: float
    interval: float
    repeats: int
    timeout: float
    cutoff_ms: float
    session_ttl: int
    churn_variants: list[str]
    churn_seconds: float
    churn_wave: int
    churn_clicks: int
    churn_interval: float
    load_metrics: bool
    options: list[str]
    out: pathlib.Path
    plot: pathlib.Path
    logs: pathlib.Path
    command: str


def median_result(runs: list[LoadResult]) -> LoadResult:
    """One row for repeated runs: medians, but errors and lost updates summed over all runs."""
    if len(runs) == 1:
        return runs[0]

    def med(name: str) -> float:
        return statistics.median(getattr(r, name) for r in runs)

    ints = ("entered", "clicks", "rss_base_kib", "rss_connected_kib", "rss_kib", "rss_peak_kib")
    floats = ("p50_ms", "p99_ms", "mean_ms", "server_cpu_pct", "server_cpu_ms_per_click",
              "client_cpu_pct", "connect_s")
    sums = ("in_doubt", "errors", "lost_shared", "lost_shared_max", "lost_own", "phantom")
    kinds: Counter[str] = Counter()
    for r in runs:
        kinds.update(r.error_kinds)
    return replace(runs[0], **{k: round(med(k)) for k in ints}, **{k: med(k) for k in floats},
                   **{k: sum(getattr(r, k) for r in runs) for k in sums},
                   error_kinds=dict(kinds))


def holds(result: LoadResult, cutoff_ms: float) -> bool:
    """Whether the machine still holds at this N (worth trying a larger one)."""
    return result.errors == 0 and result.entered == result.n and result.p99_ms <= cutoff_ms


async def measure(s: Settings) -> tuple[list[LoadResult], list[ChurnResult]]:
    rng = random.Random(20240601)
    results: list[LoadResult] = []
    broken: set[str] = set()
    for n in [*s.sessions, *s.escalate]:
        escalating = n not in s.sessions
        for variant in s.variants:
            if escalating and variant in broken:
                continue
            runs = []
            for rep in range(s.repeats):
                log = s.logs / f"{variant}-n{n}-{rep}.log"
                server = DemoServer(variant, log, session_ttl=s.session_ttl,
                                    metrics=s.load_metrics, options=s.options)
                try:
                    runs.append(await load_run(server, n, s.seconds, s.interval,
                                               timeout=s.timeout, rng=rng))
                finally:
                    server.stop()
            result = median_result(runs)
            results.append(result)
            print(progress(result), flush=True)
            if not holds(result, s.cutoff_ms):
                broken.add(variant)
        if escalating and broken >= set(s.variants):
            break
    churns = []
    for variant in s.churn_variants:
        if s.churn_seconds <= 0:
            break
        server = DemoServer(variant, s.logs / f"{variant}-churn.log", session_ttl=s.session_ttl,
                            options=s.options)
        try:
            result = await churn(server, s.churn_seconds, s.churn_wave, s.churn_clicks,
                                 s.churn_interval, timeout=s.timeout, rng=rng)
        finally:
            server.stop()
        churns.append(result)
        print(f"churn {variant}: {len(result.waves)} waves, {result.sessions} sessions, "
              f"tracked {result.tracked_base} -> {result.tracked_end}, "
              f"RSS {mib(result.rss_base_kib)} -> {mib(result.rss_end_kib)} MiB", flush=True)
    return results, churns


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def progress(r: LoadResult) -> str:
    return (f"N={r.n:<4} {r.variant:<9} clicks={r.clicks:<5} p50={ms(r.p50_ms)} ms "
            f"p99={ms(r.p99_ms)} ms errors={r.errors} lost={r.lost} RSS={mib(r.rss_kib)} MiB "
            f"server CPU={r.server_cpu_pct:.0f}%")


def errors_cell(r: LoadResult) -> str:
    if not r.errors:
        return "0"
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(r.error_kinds.items()))
    return f"{r.errors} ({kinds})"


def lost_cell(r: LoadResult) -> str:
    if r.in_doubt:  # a click in doubt the server applied would hide a loss
        high = r.lost_shared_max + r.lost_own
        cell = (f"{r.lost}" if high == r.lost else f"{r.lost}-{high}") + (
            f", inconclusive ({r.in_doubt} in doubt)")
    else:
        cell = str(r.lost)
    if r.phantom:
        cell += f" (+{r.phantom} extra)"
    return cell


def ratio(a: float, b: float) -> str:
    if b == 0 or math.isnan(a) or math.isnan(b):
        return "-"
    return f"{a / b:.2f}"


def largest_ok(results: list[LoadResult], variant: str) -> LoadResult | None:
    ok = [r for r in results if r.variant == variant and r.p99_ms < P99_TARGET_MS
          and r.lost == 0 and r.errors == 0 and r.in_doubt == 0 and r.entered == r.n]
    return max(ok, key=lambda r: r.n, default=None)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"Streamlit {streamlit.__version__}, {platform.system()} {platform.release()}")


def report(s: Settings, results: list[LoadResult], churns: list[ChurnResult],
           wall_s: float) -> str:
    """The markdown page: settings, the table, ratios, the verdict, churn."""
    lines = [
        "# Load test: the demo under N concurrent sessions",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}; "
        f"the whole run took {wall_s / 60:.1f} min.",
        "",
        "```bash",
        s.command,
        "```",
        "",
        f"Each session is a websocket speaking Streamlit's own protocol (BackMsg/ForwardMsg from "
        f"the `streamlit` package). It opens the **Shared board** page and clicks its button "
        f"once every {s.interval:g} s for {s.seconds:g} s (closed loop: a click waits for the "
        f"previous run to finish, so a slow server gets fewer clicks, never a pile-up). "
        f"**safestate** is `examples/demo/app.py`; **plain** is `examples/demo/app_plain.py`, "
        f"the same pages with plain `st.session_state` and an unguarded shared dict from "
        f"`st.cache_resource`. Every N and variant gets a fresh server "
        f"(`--server.disconnectedSessionTTL {s.session_ttl:g}`"
        + "".join(f", `--{o.replace('=', ' ', 1)}`" for o in s.options)
        + "); the load client runs on the same machine.",
        "",
        "- **p50 / p99**: rerun latency, from sending the click to the run's `script_finished`; "
        "a click that failed counts at the time it took to fail (a timeout at the timeout).",
        f"- **errors**: timeouts ({s.timeout:g} s), exceptions the script drew, runs that did not "
        "finish cleanly, failed connections.",
        "- **lost updates**: clicks acknowledged (a clean run) but missing from the shared "
        "counter, read by one more session at the end, plus per-session clicks missing from that "
        "session's own count (`my-board-clicks`). With clicks in doubt (sent, no clean answer) "
        "the counter can only bound the loss: shown as a range, marked inconclusive.",
        "- **RSS**: the server's resident memory with the N sessions still connected after the "
        "load. **RSS/session**: (RSS with the N sessions connected, before any click - RSS "
        "after one warm-up session) / sessions connected.",
        "- **srv CPU**: the server's CPU time during the load over wall time (100% = one core; "
        "the GIL keeps the script runs to about one); **CPU/click**: that CPU time per "
        "acknowledged click.",
    ]
    lines.append(
        "- The board's `st.fragment(run_every=1.0)` reruns are requested by the browser; these "
        "sessions do not send them, so the load is the clicks alone."
    )
    if not any(o.startswith("runner.postScriptGC") for o in s.options):
        lines.append(
            "- Most of the server's CPU per click is not the script: Streamlit runs a full "
            "`gc.collect()` after every script run (`runner.postScriptGC`, on by default), and "
            "its cost grows with the heap. `--streamlit-option runner.postScriptGC=false` "
            "measures without it."
        )
    tracked = any(r.tracked is not None for r in results)
    if tracked:
        lines.append("- **tracked**: entries in safestate's lock registry with the N sessions "
                     "connected (N + the reader session).")
    lines += [
        "",
        "| N | variant | sessions | clicks | p50 ms | p99 ms | errors | lost updates | RSS MiB "
        "| RSS/session KiB | srv CPU | CPU/click ms |" + (" tracked |" if tracked else ""),
        "|--:|---|--:|--:|--:|--:|---|---|--:|--:|--:|--:|" + ("--:|" if tracked else ""),
    ]
    for r in results:
        lines.append(
            f"| {r.n} | {r.variant} | {r.entered} | {r.clicks} | {ms(r.p50_ms)} | {ms(r.p99_ms)} "
            f"| {errors_cell(r)} | {lost_cell(r)} | {mib(r.rss_kib)} "
            f"| {r.rss_per_session_kib:.0f} | {r.server_cpu_pct:.0f}% "
            f"| {ms(r.server_cpu_ms_per_click)} |"
            + (f" {'-' if r.tracked is None else r.tracked} |" if tracked else "")
        )
    by_key = {(r.n, r.variant): r for r in results}
    pairs = [(by_key[n, "safestate"], by_key[n, "plain"])
             for n in sorted({r.n for r in results})
             if (n, "safestate") in by_key and (n, "plain") in by_key]
    if pairs:
        lines += [
            "",
            "Ratios safestate / plain (above 1: safestate is slower or larger). Where the two "
            "served clicks differing by more than 5% (a saturated server), their latencies met "
            "different loads: marked *.",
            "",
            "| N | p50 | p99 | clicks | CPU/click | RSS | RSS/session |",
            "|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for a, b in pairs:
            star = "*" if abs(a.clicks - b.clicks) > 0.05 * max(a.clicks, b.clicks, 1) else ""
            lines.append(
                f"| {a.n}{star} | {ratio(a.p50_ms, b.p50_ms)} | {ratio(a.p99_ms, b.p99_ms)} "
                f"| {ratio(a.clicks, b.clicks)} "
                f"| {ratio(a.server_cpu_ms_per_click, b.server_cpu_ms_per_click)} "
                f"| {ratio(a.rss_kib, b.rss_kib)} "
                f"| {ratio(a.rss_per_session_kib, b.rss_per_session_kib)} |"
            )
    lines.append("")
    for variant in s.variants:
        best = largest_ok(results, variant)
        if best is None:
            verdict = (f"none of the N tried (p99 < {P99_TARGET_MS:.0f} ms with zero lost "
                       f"updates, no errors, failed at every N)")
        else:
            verdict = (f"**N = {best.n}** (p99 {ms(best.p99_ms)} ms, {best.lost} lost updates, "
                       f"{best.errors} errors)")
        lines.append(f"Largest N with p99 < {P99_TARGET_MS:.0f} ms, zero lost updates and no "
                     "errors, "
                     f"{variant}: {verdict}.  ")
    for variant in s.variants:
        rows = [r for r in results if r.variant == variant]
        if rows:
            top = max(rows, key=lambda r: r.clicks)
            lines.append(f"Most clicks served, {variant}: {top.clicks / s.seconds:.1f} per second "
                         f"(N = {top.n}, server CPU {top.server_cpu_pct:.0f}%).  ")
    tried = sorted({r.n for r in results})
    lines.append(f"N tried: {', '.join(map(str, tried))}; N beyond "
                 f"{max(s.sessions)} only while the previous N held (p99 ≤ {s.cutoff_ms:g} ms, "
                 "no errors).")
    if s.repeats > 1:
        lines.append(f"Each row is the median of {s.repeats} runs; errors and lost updates are "
                     "their sums.")
    for c in churns:
        lines += churn_section(c, s)
    lines += ["", f"![p99 latency and memory against N]({s.plot.name})", ""]
    return "\n".join(lines)


def churn_section(c: ChurnResult, s: Settings) -> list[str]:
    slope = c.rss_slope_kib_per_wave()
    if c.tracked_base is None:
        registry = "no lock registry to check (plain)."
    elif c.returned_after_s is None:
        registry = (f"**did not return** to its baseline of {c.tracked_base} within "
                    f"{s.session_ttl:g} s TTL + 90 s (it was {c.tracked_end}).")
    else:
        registry = (f"returned to its baseline of {c.tracked_base} (now {c.tracked_end}) "
                    f"{c.returned_after_s:.1f} s after the last wave left (session TTL "
                    f"{s.session_ttl:g} s, then safestate's sweeper, every 10 s; read from "
                    f"{c.registry_source}, which does not sweep).")
    lines = [
        "",
        f"## Churn ({c.variant})",
        "",
        f"{len(c.waves)} waves over {c.seconds:g} s: each wave opens {c.wave_size} sessions, "
        f"each clicks {s.churn_clicks} times (every {s.churn_interval:g} s) and closes its tab. "
        f"{c.sessions} sessions and {c.clicks} clicks in all; errors: {c.errors}"
        f"{' ' + str(c.error_kinds) if c.errors else ''}; lost updates: {c.lost}.",
        "",
        f"- Lock registry (`safestate_sessions_tracked`): {registry}",
        f"- Server RSS: {mib(c.rss_base_kib)} MiB before the first wave, "
        f"{mib(c.waves[0].rss_kib) if c.waves else '-'} MiB after it, "
        f"{mib(max((w.rss_kib for w in c.waves), default=0))} MiB at most, "
        f"{mib(c.rss_end_kib)} MiB at the end; growth over the second half of the waves "
        f"{'-' if math.isnan(slope) else f'{slope:.0f}'} KiB per wave.",
        "",
        "Measured as each wave's tabs have just closed: *tracked* still counts them (they stay "
        f"resumable for the {s.session_ttl:g} s TTL), *active* no longer does; neither grows "
        "from wave to wave if ended sessions are cleaned up.",
        "",
        "| wave | t s | sessions | clicks | errors | RSS MiB | tracked | active |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for w in c.waves:
        lines.append(f"| {w.index + 1} | {w.t_s:.0f} | {w.entered} | {w.clicks} | {w.errors} "
                     f"| {mib(w.rss_kib)} | {'-' if w.tracked is None else w.tracked} "
                     f"| {'-' if w.active is None else w.active} |")
    return lines


def plot(results: list[LoadResult], churns: list[ChurnResult], path: pathlib.Path,
         s: Settings) -> None:
    """p99 and RSS against N per variant; RSS per churn wave."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if churns else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), constrained_layout=True)
    styles = {"safestate": ("tab:blue", "o"), "plain": ("tab:orange", "s")}
    for variant in s.variants:
        rows = sorted((r for r in results if r.variant == variant), key=lambda r: r.n)
        if not rows:
            continue
        color, marker = styles.get(variant, ("tab:gray", "^"))
        ns = [r.n for r in rows]
        axes[0].plot(ns, [r.p99_ms for r in rows], marker=marker, color=color, label=variant)
        axes[1].plot(ns, [r.rss_kib / 1024 for r in rows], marker=marker, color=color,
                     label=variant)
    tried = sorted({r.n for r in results})
    axes[0].axhline(P99_TARGET_MS, color="gray", linestyle="--", linewidth=1,
                    label=f"{P99_TARGET_MS:.0f} ms")
    axes[0].set(xscale="log", yscale="log", xlabel="concurrent sessions N",
                ylabel="p99 rerun latency (ms)",
                title=f"p99 latency (a click every {s.interval:g} s)")
    axes[1].set(xscale="log", xlabel="concurrent sessions N", ylabel="server RSS (MiB)",
                title="memory with N sessions connected")
    axes[1].set_ylim(bottom=0)
    for ax in axes[:2]:
        ax.set_xticks(tried, [str(n) for n in tried])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
        ax.legend()
    if churns:
        ax = axes[2]
        for c in churns:
            color, marker = styles.get(c.variant, ("tab:gray", "^"))
            ax.plot([0, *(w.index + 1 for w in c.waves), len(c.waves) + 1],
                    [c.rss_base_kib / 1024, *(w.rss_kib / 1024 for w in c.waves),
                     c.rss_end_kib / 1024],
                    marker=marker, markersize=3, color=color, label=f"{c.variant} RSS")
        # Wide enough that noise does not look like growth: at least ±10 MiB around the data.
        twin = ax.twinx()
        for c in churns:
            if c.tracked_base is None:
                continue
            color, _ = styles.get(c.variant, ("tab:gray", "^"))
            last = len(c.waves) + 1  # after the wait for the registry's return
            twin.step([0, *(w.index + 1 for w in c.waves), last],
                      [c.tracked_base, *(w.tracked or 0 for w in c.waves), c.tracked_end or 0],
                      where="mid", color=color, alpha=0.35, linestyle=":",
                      label=f"{c.variant} tracked sessions")
        twin.set_ylim(bottom=0)
        twin.set_ylabel("sessions in the lock registry")
        if twin.has_data():
            twin.legend(loc="lower right")
        rss = [kib / 1024 for c in churns for kib in (c.rss_base_kib, *(w.rss_kib
                                                                       for w in c.waves))]
        ax.set_ylim(max(0.0, min(rss) - 10), max(rss) + 10)
        ax.set(xlabel=f"churn wave ({churns[0].wave_size} sessions each; 0 = before, "
                      "last = after the registry's return)",
               ylabel="server RSS (MiB)", title="memory under churn")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse(argv: Sequence[str] | None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--sessions", type=ints, default=ints("10,20,50,70,100,200"),
                   help="N to run always (comma-separated)")
    p.add_argument("--escalate", type=ints, default=ints("400,800"),
                   help="larger N, each tried only while the previous N held")
    p.add_argument("--variants", type=names, default=names("safestate,plain"))
    p.add_argument("--seconds", type=float, default=30.0, help="load duration per N")
    p.add_argument("--interval", type=float, default=5.0,
                   help="seconds between a session's clicks")
    p.add_argument("--repeats", type=int, default=1, help="runs per N and variant (median)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a run times out")
    p.add_argument("--cutoff-ms", type=float, default=2000.0,
                   help="stop escalating once p99 exceeds this (or errors appear)")
    p.add_argument("--session-ttl", type=int, default=5,
                   help="the server's disconnectedSessionTTL")
    p.add_argument("--churn-variants", type=names, default=names("safestate"))
    p.add_argument("--churn-seconds", type=float, default=180.0, help="0 skips the churn phase")
    p.add_argument("--churn-wave", type=int, default=30, help="sessions per churn wave")
    p.add_argument("--churn-clicks", type=int, default=3, help="clicks per churn session")
    p.add_argument("--churn-interval", type=float, default=1.0)
    p.add_argument("--load-metrics", action="store_true",
                   help="serve safestate's /metrics in the load runs too (fills `tracked`)")
    p.add_argument("--streamlit-option", action="append", default=[], metavar="SECTION.NAME=V",
                   help="another server setting, e.g. runner.postScriptGC=false (repeatable)")
    p.add_argument("--out", type=pathlib.Path, default=REPO / "docs" / "loadtest.md")
    p.add_argument("--plot", type=pathlib.Path, default=None,
                   help="default: loadtest.png next to --out")
    p.add_argument("--logs", type=pathlib.Path, default=None,
                   help="server logs (default: a new temp dir)")
    a = p.parse_args(argv)
    if a.repeats < 1 or a.interval <= 0 or a.seconds <= 0:
        p.error("--repeats, --interval and --seconds must be positive")
    logs = a.logs or pathlib.Path(tempfile.mkdtemp(prefix="loadtest-"))
    logs.mkdir(parents=True, exist_ok=True)
    args = " ".join(sys.argv[1:]) if argv is None else " ".join(argv)
    return Settings(
        sessions=a.sessions, escalate=[n for n in a.escalate if n > max(a.sessions)],
        variants=a.variants, seconds=a.seconds, interval=a.interval, repeats=a.repeats,
        timeout=a.timeout, cutoff_ms=a.cutoff_ms, session_ttl=a.session_ttl,
        churn_variants=a.churn_variants, churn_seconds=a.churn_seconds,
        churn_wave=a.churn_wave, churn_clicks=a.churn_clicks, churn_interval=a.churn_interval,
        load_metrics=a.load_metrics, options=a.streamlit_option,
        out=a.out, plot=a.plot or a.out.with_suffix(".png"), logs=logs,
        command=(f".venv/bin/python benchmarks/loadtest.py {args}" if args
                 else "make loadtest  # = .venv/bin/python benchmarks/loadtest.py"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    s = parse(argv)
    print(f"server logs in {s.logs}", flush=True)
    started = time.monotonic()
    results, churns = asyncio.run(measure(s))
    wall = time.monotonic() - started
    text = report(s, results, churns, wall)
    s.out.parent.mkdir(parents=True, exist_ok=True)
    s.out.write_text(text)
    plot(results, churns, s.plot, s)
    print()
    print(text)
    print(f"\nwrote {s.out} and {s.plot} in {wall / 60:.1f} min")
    failed = [r for r in results if r.variant == "safestate" and r.lost]
    failed_churn = [c for c in churns if c.lost or (c.tracked_base is not None
                                                    and c.returned_after_s is None)]
    return 1 if failed or failed_churn else 0


if __name__ == "__main__":
    sys.exit(main())
