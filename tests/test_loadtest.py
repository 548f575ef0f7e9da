"""`make loadtest` in miniature: a few real sessions for seconds, and a little churn.

The same code as benchmarks/loadtest.py drives a real `streamlit run` of the demo
over Streamlit's websocket protocol.
"""

from __future__ import annotations

import asyncio
import pathlib
import random

import pytest
from _loadrun import churn, load_run  # benchmarks/: on sys.path through conftest
from _loadserver import DemoServer, parse_metrics


@pytest.mark.parametrize("variant", ["safestate", "plain"])
def test_a_short_load_loses_no_click(variant: str, tmp_path: pathlib.Path) -> None:
    server = DemoServer(variant, tmp_path / "streamlit.log", session_ttl=2)
    try:
        # A click every 0.5 s each: every click also reruns the other 3 boards (live updates).
        r = asyncio.run(load_run(server, 4, seconds=4, interval=0.5, rng=random.Random(1)))
    finally:
        server.stop()
    assert r.entered == 4
    assert r.errors == 0 and r.in_doubt == 0, r.error_kinds
    assert r.clicks >= 4 * 3  # each session gets several clicks in
    # Exact: every acknowledged click is in the shared counter, and in its session's own count.
    assert r.counter_after - r.counter_before == r.clicks
    assert r.lost == 0 and r.phantom == 0
    assert len(r.latencies_ms) == r.clicks and min(r.latencies_ms) > 0
    assert 0 < r.p50_ms <= r.p99_ms
    assert r.rss_kib > 0


def test_sessions_that_leave_leave_the_lock_registry(tmp_path: pathlib.Path) -> None:
    server = DemoServer("safestate", tmp_path / "streamlit.log", session_ttl=2)
    try:
        c = asyncio.run(churn(server, seconds=3, wave_size=3, clicks=2, interval=0.2,
                              return_timeout=30, rng=random.Random(2)))
    finally:
        server.stop()
    assert len(c.waves) >= 1 and c.sessions == 3 * len(c.waves)
    assert c.errors == 0 and c.lost == 0, c.error_kinds
    assert c.clicks == 2 * c.sessions
    assert c.tracked_base is not None
    assert max(w.tracked or 0 for w in c.waves) > c.tracked_base  # the waves were tracked
    assert c.returned_after_s is not None, (c.tracked_base, c.tracked_end)
    assert c.tracked_end == c.tracked_base


def test_prometheus_text_is_read_by_name_and_labels() -> None:
    text = """# HELP safestate_sessions_tracked Entries in the lock registry.
# TYPE safestate_sessions_tracked gauge
safestate_sessions_tracked 3.0
safestate_sessions{status="active"} 2.0
safestate_sessions{status="ended"} 0.0
"""
    samples = parse_metrics(text)
    assert samples["safestate_sessions_tracked"] == 3
    assert samples['safestate_sessions{status="active"}'] == 2
    assert samples['safestate_sessions{status="ended"}'] == 0
