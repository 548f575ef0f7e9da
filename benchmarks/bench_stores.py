"""`make bench`: ``safestate.shared`` on each store, as ratios to the raw client.

For memory://, a SQLite file and a real redis-server (started here on a free port,
no persistence, stopped at the end), in one run:

  (i)   shared.safe_set / safe_get of one small JSON payload, against the raw client
        doing the same work: a dict under a lock; sqlite3 INSERT OR REPLACE / SELECT
        on an equivalent (ns, key, value) table; redis-py SET / GET. The raw side
        encodes and decodes the payload as JSON too (shared does, in a store).
  (ii)  a 3-key shared.transaction() against three dict writes under the lock, one
        sqlite3 transaction of three upserts, a redis-py MULTI/EXEC pipeline of 3 SETs.
  (iii) round trips per call, from the store's own counter (``store.round_trips``).

Each figure is the median of per-round ratios; each round times safestate and the
raw client back to back (alternating which goes first). Targets: at most 1.3x the
raw client, one round trip per call.
"""

from __future__ import annotations

import gc
import json
import pathlib
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _loadserver import RedisServer

import safestate

ROUNDS = 7
OPS = {"memory": 20_000, "sqlite": 2_000, "redis": 2_000}  # calls per round
TARGET_RATIO = 1.3
TARGET_TRIPS = 1
PAYLOAD: dict[str, Any] = {"user": "ana", "n": 42, "tags": ["a", "b", "c"], "ok": True}
TX_KEYS = ("tx_a", "tx_b", "tx_c")

Loop = Callable[[int], None]  # does one kind of call n times


@dataclass
class Row:
    store: str
    op: str
    safestate_us: float
    raw_us: float
    ratio: float
    trips: float | None  # safestate's round trips per call; None: this store has none


def _per_call(loop: Loop, n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    loop(n)
    return (time.perf_counter() - start) / n


def measure(store: str, op: str, ours: Loop, raw: Loop, n: int) -> Row:
    """Medians over ROUNDS of (ours, raw, ours/raw); one warm-up round first."""
    ours(max(1, n // 10))
    raw(max(1, n // 10))
    times_ours, times_raw, ratios = [], [], []
    for r in range(ROUNDS):
        if r % 2:
            b, a = _per_call(raw, n), _per_call(ours, n)
        else:
            a, b = _per_call(ours, n), _per_call(raw, n)
        times_ours.append(a)
        times_raw.append(b)
        ratios.append(a / b)
    cfg_store = safestate.current_app().configuration.store
    assert cfg_store is not None
    before = cfg_store.round_trips
    ours(n)
    trips = (cfg_store.round_trips - before) / n
    return Row(store, op, statistics.median(times_ours) * 1e6,
               statistics.median(times_raw) * 1e6, statistics.median(ratios),
               None if store == "memory" else trips)


# -- safestate's side: the same code for every store ------------------------------------------
shared = safestate.shared


def ss_set(n: int) -> None:
    for _ in range(n):
        shared.safe_set("payload", PAYLOAD)


def ss_get(n: int) -> None:
    for _ in range(n):
        shared.safe_get("payload")


def ss_tx(n: int) -> None:
    a, b, c = TX_KEYS
    for i in range(n):
        with shared.transaction() as tx:
            tx[a] = i
            tx[b] = PAYLOAD
            tx[c] = "x"


def safestate_rows(store: str, raw_set: Loop, raw_get: Loop, raw_tx: Loop) -> list[Row]:
    n = OPS[store]
    shared.safe_set("payload", PAYLOAD)
    assert shared.safe_get("payload") == PAYLOAD
    return [
        measure(store, "safe_set", ss_set, raw_set, n),
        measure(store, "safe_get", ss_get, raw_get, n),
        measure(store, "transaction (3 keys)", ss_tx, raw_tx, n),
    ]


# -- memory:// against a dict under a lock ------------------------------------------------------
def bench_memory() -> list[Row]:
    safestate.configure(store="memory://")
    data: dict[str, Any] = {}
    lock = threading.Lock()
    a, b, c = TX_KEYS

    def raw_set(n: int) -> None:
        for _ in range(n):
            with lock:
                data["payload"] = PAYLOAD

    def raw_get(n: int) -> None:
        for _ in range(n):
            with lock:
                data.get("payload")

    def raw_tx(n: int) -> None:
        for i in range(n):
            with lock:
                data[a] = i
                data[b] = PAYLOAD
                data[c] = "x"

    return safestate_rows("memory", raw_set, raw_get, raw_tx)


# -- SQLite: one file for safestate, one for raw sqlite3, same pragmas ---------------------------
def bench_sqlite(tmp: pathlib.Path) -> list[Row]:
    safestate.configure(store=f"sqlite:///{tmp / 'safestate.db'}")
    db = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE items (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
               "PRIMARY KEY (ns, key))")
    upsert = "INSERT OR REPLACE INTO items (ns, key, value) VALUES ('shared', ?, ?)"
    select = "SELECT value FROM items WHERE ns = 'shared' AND key = ?"
    a, b, c = TX_KEYS

    def raw_set(n: int) -> None:
        for _ in range(n):
            db.execute(upsert, ("payload", json.dumps(PAYLOAD).encode()))

    def raw_get(n: int) -> None:
        for _ in range(n):
            json.loads(db.execute(select, ("payload",)).fetchone()[0])

    def raw_tx(n: int) -> None:
        for i in range(n):
            db.execute("BEGIN")
            db.execute(upsert, (a, json.dumps(i).encode()))
            db.execute(upsert, (b, json.dumps(PAYLOAD).encode()))
            db.execute(upsert, (c, json.dumps("x").encode()))
            db.execute("COMMIT")

    try:
        return safestate_rows("sqlite", raw_set, raw_get, raw_tx)
    finally:
        db.close()


# -- Redis: our own redis-server, no persistence --------------------------------------------------
def bench_redis(url: str) -> list[Row]:
    import redis

    safestate.configure(store=url)
    r = redis.Redis.from_url(url)
    a, b, c = TX_KEYS

    def raw_set(n: int) -> None:
        for _ in range(n):
            r.set("raw:payload", json.dumps(PAYLOAD))

    def raw_get(n: int) -> None:
        for _ in range(n):
            json.loads(r.get("raw:payload"))  # type: ignore[arg-type]

    def raw_tx(n: int) -> None:
        for i in range(n):
            pipe = r.pipeline(transaction=True)  # MULTI / 3 x SET / EXEC, one round trip
            pipe.set("raw:" + a, json.dumps(i))
            pipe.set("raw:" + b, json.dumps(PAYLOAD))
            pipe.set("raw:" + c, json.dumps("x"))
            pipe.execute()

    try:
        return safestate_rows("redis", raw_set, raw_get, raw_tx)
    finally:
        r.close()


# -- the table ------------------------------------------------------------------------------------
def print_table(rows: list[Row], notes: list[str]) -> None:
    print("safestate.shared on each store vs the raw client (medians of "
          f"{ROUNDS} rounds; ratio = safestate / raw, lower is better)")
    head = (f"{'store':<7} {'operation':<21} {'safestate':>10} {'raw':>9} {'ratio':>6} "
            f"{'target':>7} {'trips/call':>10} {'target':>6}  verdict")
    print(head)
    print("-" * len(head))
    for row in rows:
        trips = "-" if row.trips is None else f"{row.trips:.2f}"
        ok_ratio = row.ratio <= TARGET_RATIO
        ok_trips = row.trips is None or row.trips <= TARGET_TRIPS
        verdict = "meets" if ok_ratio and ok_trips else "MISSES " + "+".join(
            w for w, ok in (("ratio", ok_ratio), ("trips", ok_trips)) if not ok)
        print(f"{row.store:<7} {row.op:<21} {row.safestate_us:>8.2f}us {row.raw_us:>7.2f}us "
              f"{row.ratio:>6.2f} {'<= ' + str(TARGET_RATIO):>7} {trips:>10} "
              f"{'<= ' + str(TARGET_TRIPS):>6}  {verdict}")
    print("trips/call: safestate's store round trips per call (store.round_trips); memory:// "
          "keeps shared in process, no store calls. Raw: 1 by construction (sqlite3: in-process).")
    for note in notes:
        print("note:", note)


def main() -> None:
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="safestate-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        try:
            rows += bench_memory()
            rows += bench_sqlite(workdir)
            if shutil.which("redis-server") is None:
                notes.append("redis skipped: redis-server is not installed "
                             "(apt-get install redis-server)")
            else:
                try:
                    import redis  # noqa: F401
                except ImportError:
                    notes.append("redis skipped: redis-py is missing "
                                 "(pip install 'streamlit-safestate[redis]')")
                else:
                    server = RedisServer(workdir, durable=False)
                    try:
                        rows += bench_redis(server.url)
                    finally:
                        server.stop()
        finally:
            safestate.configure(store="memory://")  # closes the last store before the dir goes
    print_table(rows, notes)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
