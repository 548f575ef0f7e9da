"""`make bench`: safestate's per-op cost, contention throughput and memory, as ratios.

Every figure is a ratio to a baseline measured in the same run, so machine noise
largely cancels. Per-op costs are measured inside a real Streamlit script run
(AppTest), medians of 7 rounds.
"""

from __future__ import annotations

import gc
import pathlib
import statistics
import tracemalloc

from streamlit.testing.v1 import AppTest

from safestate._locks import LockRegistry
from safestate.manager import new_record

HERE = pathlib.Path(__file__).parent


def script_figures() -> dict[str, float]:
    at = AppTest.from_file(str(HERE / "_core_script.py"), default_timeout=600).run()
    if at.exception:
        raise SystemExit(f"benchmark script failed: {at.exception[0].message}")
    return dict(at.session_state["bench"])


class _State:
    """Stands in for a session's state object: what the registry watches."""


def memory_per_session(sessions: int = 10_000) -> float:
    """Bytes of library memory per tracked session, by tracemalloc, median of 3."""
    samples = []
    for _ in range(3):
        owners = [_State() for _ in range(sessions)]
        ids = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(sessions)]
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        registry = LockRegistry(make_record=new_record)  # as the session manager makes it
        for sid, owner in zip(ids, owners, strict=True):
            registry.locked(sid, owner).release()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        samples.append((after - before) / sessions)
        del registry, owners
    return statistics.median(samples)


def main() -> None:
    r = script_figures()
    mem = memory_per_session()
    rows = [
        ("safe_get / raw st.session_state get", r["safe_get"] / r["raw_get"], "<= 0.75"),
        ("safe_set / raw st.session_state set", r["safe_set"] / r["raw_set"], "<= 0.25"),
        ("increment / raw read-modify-write (unsafe)", r["increment"] / r["raw_rmw"], ""),
        ("safe_get / naive global-lock design get", r["safe_get"] / r["naive_get"], ""),
        ("safe_set / naive global-lock design set", r["safe_set"] / r["naive_set"], ""),
        (
            "8-thread shared.increment throughput / bare lock+dict",
            r["bare_threads_s"] / r["shared_threads_s"],
            "",
        ),
        ("safe_get, metrics on / metrics off", r["safe_get_metrics"] / r["safe_get"], "~1"),
        ("safe_set, metrics on / metrics off", r["safe_set_metrics"] / r["safe_set"], "~1"),
        (
            "8-thread shared.increment time, metrics on / off",
            r["shared_threads_metrics_s"] / r["shared_threads_s"],
            "",
        ),
    ]
    print("safestate core benchmark (ratios to baselines measured in this run; medians)")
    print(f"{'figure':<56} {'ratio':>7}  target")
    for name, ratio, target in rows:
        print(f"{name:<56} {ratio:>7.2f}  {target}")
    print()
    print("absolute, for reference only (this machine, this run):")
    for name in ("raw_get", "raw_set", "safe_get", "safe_set", "increment", "naive_get",
                 "naive_set"):
        print(f"  {name:<10} {r[name] / 1000:7.2f} us/op")
    lost = r["thread_ops"] - r["shared_final"]
    print(f"  8 threads x {r['thread_ops'] // 8} shared.increment: final {r['shared_final']}, "
          f"lost updates {lost}")
    print(f"library memory per tracked session (10,000 sessions): {mem:.0f} bytes "
          f"({mem / 1024:.2f} KiB; target <= 1 KiB; the design claimed ~50 KiB)")


if __name__ == "__main__":
    main()
