"""How stale another process's commits are when a store's subscriber hears of them.

For a SQLite file (the default poll) and a real redis-server (started here on a free
port, no persistence, stopped at the end): a writer in another process commits K
times at about RATE per second, each commit a key of its own (``k<i>``) whose value is
``time.time()`` taken just before the commit. This process subscribes to the same
store and notes when its callback hears each key; the delay is that moment minus the
writer's timestamp (one machine, one clock). Printed: p50 / p99 / max in ms per store.

    python benchmarks/bench_staleness.py
"""

from __future__ import annotations

import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from _loadserver import RedisServer

from safestate.stores import Committed, open_store

K = 200  # commits per store
RATE = 20.0  # commits per second
NAMESPACE = "staleness"


def write(url: str, count: int, rate: float) -> None:
    """The writer process: ``count`` commits at ``rate`` per second, each stamped."""
    store = open_store(url)
    try:
        store.commit(NAMESPACE, {"warm": b"1"})  # connected, script loaded: not timed
        start = time.monotonic()
        for i in range(count):
            # Paced from the start, so one slow commit does not slow the rest.
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            store.commit(NAMESPACE, {f"k{i}": repr(time.time()).encode()})
    finally:
        store.close()


@dataclass
class Row:
    store: str
    how: str
    heard: int
    delays_ms: list[float]


def measure(name: str, url: str, how: str) -> Row:
    """Start a writer process on ``url``; the delays this process's subscriber saw."""
    store = open_store(url)
    heard: dict[str, float] = {}  # key -> when the callback heard it
    done = threading.Event()

    def callback(change: Committed) -> None:
        now = time.time()
        for key in change.keys or ():
            heard.setdefault(key, now)
        if sum(key.startswith("k") for key in heard) >= K:
            done.set()

    try:
        store.drop(NAMESPACE)
        store.commit(NAMESPACE, {"start": b"1"})  # so every timed commit names its keys
        subscription = store.subscribe(callback)
        writer = subprocess.Popen([sys.executable, __file__, "--write", url, str(K), str(RATE)])
        try:
            done.wait(K / RATE + 30)  # bounded: a lost change shows as a heard count < K
            assert writer.wait(60) == 0, "the writer failed"
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait(10)
        subscription.close()
        stamps = store.load(NAMESPACE).values
    finally:
        store.close()
    delays = [(at - float(stamps[key])) * 1000 for key, at in heard.items()
              if key.startswith("k") and key in stamps]
    return Row(name, how, len(delays), delays)


def print_table(rows: list[Row], notes: list[str]) -> None:
    print(f"Staleness: delay from a commit in another process to this process's subscriber "
          f"({K} commits at ~{RATE:g}/s)")
    head = f"{'store':<7} {'listens by':<22} {'heard':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    print(head)
    print("-" * len(head))
    for row in rows:
        d = row.delays_ms
        p99 = statistics.quantiles(d, n=100)[98] if len(d) > 1 else max(d, default=0.0)
        print(f"{row.store:<7} {row.how:<22} {f'{row.heard}/{K}':>9} "
              f"{statistics.median(d) if d else 0.0:>8.2f} {p99:>8.2f} {max(d, default=0.0):>8.2f}")
    for note in notes:
        print("note:", note)


def main() -> None:
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="safestate-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        from safestate.stores.sqlite import POLL

        rows.append(measure("sqlite", f"sqlite:///{workdir / 'state.db'}",
                            f"polling every {POLL:g} s"))
        if shutil.which("redis-server") is None:
            notes.append("redis skipped: redis-server is not installed "
                         "(apt-get install redis-server)")
        else:
            server = RedisServer(workdir, durable=False)
            try:
                rows.append(measure("redis", server.url, "Pub/Sub"))
            finally:
                server.stop()
    print_table(rows, notes)
    sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        write(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
