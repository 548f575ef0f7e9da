"""Runs inside a real Streamlit script run (AppTest); results go to st.session_state.

Every timed statement assigns its result: a bare expression would be rendered by
Streamlit's magic and ruin the timing.
"""

import statistics
import threading
import time

import streamlit as st

import safestate
from safestate._compat import current_run

N = 20_000
ROUNDS = 7


def per_op(fn) -> float:
    """Median ns per call of fn() over ROUNDS rounds of N calls."""
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / N)
    return statistics.median(samples)


class NaiveManager:
    """The design as written: a global lock guarding a dict of per-session locks, every call."""

    def __init__(self) -> None:
        self.global_lock = threading.Lock()
        self.locks: dict[str, threading.RLock] = {}

    def _lock(self) -> threading.RLock:
        sid = current_run()[0]
        with self.global_lock:
            lock = self.locks.get(sid)
            if lock is None:
                lock = self.locks[sid] = threading.RLock()
        return lock

    def safe_get(self, key, default=None):
        with self._lock():
            return st.session_state.get(key, default)

    def safe_set(self, key, value):
        with self._lock():
            st.session_state[key] = value


naive = NaiveManager()
ss = st.session_state
ss["k"] = 1
safestate.safe_set("k", 1)


def raw_get():
    for _ in range(N):
        v = ss["k"]  # noqa: F841


def raw_set():
    for i in range(N):
        ss["k"] = i


def safe_get():
    get = safestate.safe_get
    for _ in range(N):
        v = get("k")  # noqa: F841


def safe_set():
    put = safestate.safe_set
    for i in range(N):
        put("k", i)


def increment():
    inc = safestate.increment
    for _ in range(N):
        v = inc("n")  # noqa: F841


def naive_get():
    for _ in range(N):
        v = naive.safe_get("k")  # noqa: F841


def naive_set():
    for i in range(N):
        naive.safe_set("k", i)


def raw_rmw():
    for _ in range(N):
        ss["m"] = ss.get("m", 0) + 1


results = {}
for name, fn in [
    ("raw_get", raw_get),
    ("raw_set", raw_set),
    ("raw_rmw", raw_rmw),
    ("safe_get", safe_get),
    ("safe_set", safe_set),
    ("increment", increment),
    ("naive_get", naive_get),
    ("naive_set", naive_set),
]:
    results[name] = per_op(fn)

# Contention: 8 threads, each THREAD_OPS increments of one shared counter.
THREADS, THREAD_OPS = 8, 20_000


def run_threads(body) -> float:
    threads = [threading.Thread(target=body) for _ in range(THREADS)]
    start = time.perf_counter_ns()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter_ns() - start) / 1e9


bare_lock, bare = threading.Lock(), {"n": 0}


def bare_body():
    for _ in range(THREAD_OPS):
        with bare_lock:
            bare["n"] = bare.get("n", 0) + 1


def shared_body():
    inc = safestate.shared.increment
    for _ in range(THREAD_OPS):
        inc("bench_n")


def contention() -> tuple[float, float]:
    safestate.shared.safe_set("bench_n", 0)
    bare["n"] = 0
    return run_threads(bare_body), run_threads(shared_body)


pairs = [contention() for _ in range(5)]
results["bare_threads_s"] = statistics.median(p[0] for p in pairs)
results["shared_threads_s"] = statistics.median(p[1] for p in pairs)
results["shared_final"] = safestate.shared.safe_get("bench_n")
results["bare_final"] = bare["n"]
results["thread_ops"] = THREADS * THREAD_OPS

# The same with metrics on: what a scrape-based collector and slow-path hooks cost.
from prometheus_client import CollectorRegistry  # noqa: E402

safestate.monitoring.enable_metrics(registry=CollectorRegistry())
try:
    results["safe_set_metrics"] = per_op(safe_set)
    results["safe_get_metrics"] = per_op(safe_get)
    pairs = [contention() for _ in range(5)]
    results["shared_threads_metrics_s"] = statistics.median(p[1] for p in pairs)
finally:
    safestate.monitoring.disable_metrics()
st.session_state["bench"] = results
