"""The app-wide shared state under contention, and cleanup of the per-session registry."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from safestate.app import App


def hammer(threads: int, body: Any) -> None:
    workers = [threading.Thread(target=body) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    assert not any(t.is_alive() for t in workers)


def test_shared_loses_no_update_under_8_threads(fresh_app: App) -> None:
    shared = fresh_app.shared
    ops = 2_000

    def body() -> None:
        for _ in range(ops):
            shared.increment("hits")
            shared.mutate("seen", lambda xs: xs + 1, 0)
            with shared.transaction() as tx:
                tx["a"] = tx.get("a", 0) + 1
                tx["b"] = tx.get("b", 0) - 1

    hammer(8, body)
    assert shared.safe_get("hits") == 8 * ops
    assert shared.safe_get("seen") == 8 * ops
    assert (shared.safe_get("a"), shared.safe_get("b")) == (8 * ops, -8 * ops)
    assert shared.stats()["operations"] >= 3 * 8 * ops


def test_shared_works_without_a_session_and_rejects_bad_input(fresh_app: App) -> None:
    shared = fresh_app.shared
    shared.safe_update({"x": 1, "y": 2})
    assert shared.keys() == ["x", "y"]
    with pytest.raises(TypeError):
        shared.safe_update({"z": 1, 2: 3})  # type: ignore[dict-item]
    assert shared.keys() == ["x", "y"]
    with pytest.raises(KeyError), shared.transaction() as tx:
        tx["x"] = 100
        raise KeyError("abort")
    assert shared.safe_get("x") == 1
    assert shared.safe_delete("x") and not shared.safe_delete("x")
    shared.clear()
    assert shared.keys() == []


def test_sessions_share_one_state_through_the_module_global() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        st.session_state["total"] = ss.shared.increment("total")

    first = AppTest.from_function(app).run()
    second = AppTest.from_function(app).run()
    assert second.session_state["total"] == first.session_state["total"] + 1


def test_cleanup_old_sessions_never_drops_a_held_lock() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        manager = ss.session_manager  # the test's own app: no other test's sessions
        # 60 other sessions' entries, idle, as if their scripts ran earlier.
        for i in range(60):
            with manager.enter_session(f"idle-{i}", {}, "seed")[0]:
                pass
        with manager.session_lock():  # this session's lock is held while cleaning
            freed = manager.cleanup_old_sessions(max_sessions=10, idle_seconds=0)
            st.session_state["held_kept"] = manager.is_tracked(ss.session_manager.session_id())
        st.session_state["freed"] = freed
        st.session_state["left"] = manager.get_session_stats()["sessions_tracked"]
        for bad in ({"max_sessions": -1}, {"max_sessions": "5"}, {"max_sessions": 2.5},
                    {"idle_seconds": "x"}, {"idle_seconds": float("nan")}, {"idle_seconds": True}):
            try:
                manager.cleanup_old_sessions(**bad)  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                st.session_state.setdefault("errors", []).append(
                    (next(iter(bad)), type(exc).__name__, str(exc)))

    at = AppTest.from_function(app).run()
    assert not at.exception
    assert at.session_state["held_kept"] is True
    assert at.session_state["freed"] == 51
    assert at.session_state["left"] == 10
    errors = at.session_state["errors"]
    assert [(arg, kind) for arg, kind, _ in errors] == [
        ("max_sessions", "ValueError"), ("max_sessions", "TypeError"),
        ("max_sessions", "TypeError"), ("idle_seconds", "TypeError"),
        ("idle_seconds", "ValueError"), ("idle_seconds", "TypeError"),
    ]
    assert all(arg in message for arg, _, message in errors)


def test_cleanup_keeps_recently_used_sessions() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        manager = ss.session_manager
        for i in range(20):
            with manager.enter_session(f"busy-{i}", {}, "seed")[0]:
                pass
        st.session_state["freed"] = manager.cleanup_old_sessions(max_sessions=5, idle_seconds=3600)

    at = AppTest.from_function(app).run()
    assert at.session_state["freed"] == 0
