"""The session manager inside real Streamlit script runs (AppTest)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import pytest
from conftest import PARALLEL_FRAGMENTS, raised_in_thread
from conftest import run_app as run
from streamlit.testing.v1 import AppTest

import safestate
from safestate.errors import (
    EmptyKeyError,
    InvalidKeyError,
    NoSessionError,
    NotAMappingError,
    TransactionClosedError,
)


def test_values_live_in_st_session_state_both_ways() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        ss.safe_set("name", "ada")
        st.session_state["plain"] = 7
        st.session_state["seen_plain"] = ss.safe_get("plain")
        st.session_state["exists"] = (ss.safe_exists("name"), ss.safe_exists("nope"))
        st.session_state["missing"] = ss.safe_get("nope", "dflt")
        st.session_state["sid"] = ss.session_manager.session_id()

    at = run(app)
    assert at.session_state["name"] == "ada"
    assert at.session_state["seen_plain"] == 7
    assert at.session_state["exists"] == (True, False)
    assert at.session_state["missing"] == "dflt"
    assert at.session_state["sid"]


def test_widget_keys_work_side_by_side() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        if not ss.safe_exists("city"):
            ss.safe_set("city", "Lima")  # sets the widget's value before it is drawn
        st.text_input("City", key="city")
        st.session_state["echo"] = ss.safe_get("city")

    at = run(app)
    assert at.text_input[0].value == "Lima"
    at.text_input[0].set_value("Quito").run()
    assert at.session_state["echo"] == "Quito"


def test_values_survive_reruns_and_delete() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        st.session_state["n"] = ss.increment("runs")
        if ss.safe_get("runs") == 2:
            st.session_state["deleted"] = (ss.safe_delete("runs"), ss.safe_delete("runs"))

    at = run(app)
    assert at.session_state["n"] == 1
    at.run()
    assert at.session_state["deleted"] == (True, False)
    assert "runs" not in at.session_state
    at.run()
    assert at.session_state["n"] == 1


def test_safe_update_is_all_or_nothing() -> None:
    def app() -> None:
        import streamlit as st
        from streamlit.errors import StreamlitAPIException

        import safestate as ss
        from safestate import _compat

        ss.safe_update({"a": 1, "b": 2})
        st.text_input("W", key="w")
        try:
            # "w" belongs to a widget already drawn in this run: Streamlit refuses it.
            ss.safe_update({"a": 10, "new": 3, "w": "x", "b": 20})
        except StreamlitAPIException as exc:
            st.session_state["error"] = _compat.widget_already_drawn(exc)

    at = run(app)
    assert at.session_state["error"] is True  # Streamlit's refusal, as Streamlit raised it
    assert (at.session_state["a"], at.session_state["b"]) == (1, 2)
    assert "new" not in at.session_state


def test_mutate_and_increment_return_new_value() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        st.session_state["r"] = (
            ss.mutate("items", lambda xs: [*xs, "a"], default=[]),
            ss.mutate("items", lambda xs: [*xs, "b"]),
            ss.increment("n", by=5),
            ss.increment("n", by=-2),
            ss.increment("f", by=0.5),
        )

    at = run(app)
    assert at.session_state["r"] == (["a"], ["a", "b"], 5, 3, 0.5)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        ("safe_set(3, 1)", InvalidKeyError, ["int", "3"]),
        ("safe_get(None)", InvalidKeyError, ["NoneType"]),
        ("safe_delete(b'k')", InvalidKeyError, ["bytes"]),
        ("safe_exists('')", EmptyKeyError, ["''"]),
        ("safe_set('', 1)", EmptyKeyError, ["''"]),
        ("mutate(1.5, str)", InvalidKeyError, ["float"]),
        ("increment(('k',))", InvalidKeyError, ["tuple"]),
        ("safe_update([('keep', 2)])", NotAMappingError, ["list", "Nothing was written"]),
        ("safe_update({'keep': 2, 5: 1})", InvalidKeyError, ["int", "5"]),
        ("safe_update({'keep': 2, '': 1})", EmptyKeyError, ["''"]),
        ("mutate('keep', 'not callable')", TypeError, ["callable", "keep"]),
        ("increment('keep', by='2')", TypeError, ["number"]),
        ("increment('text')", TypeError, ["text", "str"]),
    ],
)
def test_bad_input_names_the_culprit_and_changes_nothing(
    call: str, error: type[Exception], words: list[str]
) -> None:
    def app(call: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.safe_set("keep", 1)
        ss.safe_set("text", "abc")
        try:
            eval(f"ss.{call}", {"ss": ss})
        except Exception as exc:
            st.session_state["error"] = (type(exc), str(exc))
        keys = ss.session_manager.keys()
        st.session_state["after"] = {k: ss.safe_get(k) for k in ("keep", "text")}
        st.session_state["keys"] = [k for k in keys if k != "error"]

    at = run(app, call=call)
    kind, message = at.session_state["error"]
    assert issubclass(kind, error)
    for word in words:
        assert word in message
    assert at.session_state["after"] == {"keep": 1, "text": "abc"}
    assert at.session_state["keys"] == ["keep", "text"]


def test_mutate_whose_fn_raises_leaves_state_unchanged() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        ss.safe_set("balance", 100)

        def overdraw(value: int) -> int:
            raise ValueError("insufficient funds")

        try:
            ss.mutate("balance", overdraw)
        except ValueError as exc:
            st.session_state["error"] = str(exc)

    at = run(app)
    assert at.session_state["error"] == "insufficient funds"
    assert at.session_state["balance"] == 100


def test_transaction_applies_at_exit_and_reads_its_own_writes() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        ss.safe_update({"a": 1, "gone": True})
        with ss.transaction() as tx:
            tx["a"] = tx["a"] + 1
            tx.set("b", 5)
            del tx["gone"]
            st.session_state["inside"] = (
                ss.safe_get("a"),  # not yet applied
                tx.get("a"),
                "gone" in tx,
                sorted(tx.staged()),
            )
        st.session_state["tx"] = tx

    at = run(app)
    assert at.session_state["inside"] == (1, 2, False, ["a", "b", "gone"])
    assert (at.session_state["a"], at.session_state["b"]) == (2, 5)
    assert "gone" not in at.session_state
    with pytest.raises(TransactionClosedError):
        at.session_state["tx"].set("a", 3)


@pytest.mark.parametrize("interrupt", ["raise", "rerun", "stop"])
def test_interrupted_transaction_applies_nothing(interrupt: str) -> None:
    def app(interrupt: str) -> None:
        import streamlit as st

        import safestate as ss

        runs = st.session_state["runs"] = st.session_state.get("runs", 0) + 1
        if runs == 1:
            ss.safe_set("balance", 100)
            try:
                with ss.transaction() as tx:
                    tx["balance"] = tx["balance"] - 30
                    tx["log"] = ["paid 30"]
                    if interrupt == "rerun":
                        st.rerun()  # RerunException: a BaseException, like a user click mid-run
                    if interrupt == "stop":
                        st.stop()
                    raise KeyError("boom")
            except KeyError:
                pass
        st.session_state["seen"] = (ss.safe_get("balance"), ss.safe_get("log"))

    at = AppTest.from_function(app, kwargs={"interrupt": interrupt}).run()
    if interrupt == "stop":
        at.run()  # the stopped run drew nothing more; look on the next run
    assert at.session_state["seen"] == (100, None)


def test_session_lock_is_reentrant_and_decorates() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        @ss.session_manager.with_session_lock
        def bump() -> int:
            return ss.increment("n")

        @ss.session_manager.with_session_lock()
        def bump_twice() -> int:
            bump()
            return bump()

        with ss.session_lock(), ss.session_manager.with_session_lock(), ss.session_lock(timeout=1):
            ss.safe_set("n", 0)
            st.session_state["r"] = (bump(), bump_twice())

    at = run(app)
    assert at.session_state["r"] == (1, 3)


def test_with_session_lock_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="decorates a function"):
        safestate.session_manager.with_session_lock(42)  # type: ignore[call-overload]


def test_worker_threads_lose_no_update() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        threads, ops = 8, 300

        def worker(h: ss.manager.SessionHandle) -> None:
            for _ in range(ops):
                h.increment("inc")
                h.mutate("mut", lambda v: v + 1, 0)
                with h.transaction() as tx:
                    tx["tx_a"] = tx.get("tx_a", 0) + 1
                    tx["tx_b"] = tx.get("tx_b", 0) + 1
                with h.session_lock():
                    h.safe_set("locked", h.safe_get("locked", 0) + 1)

        started = [ss.start_thread(worker) for _ in range(threads - 1)]
        worker(ss.current())  # the script thread joins in
        for t in started:
            t.join(60)
        st.session_state["done"] = not any(t.is_alive() for t in started)

    at = run(app)
    assert at.session_state["done"]
    for key in ("inc", "mut", "tx_a", "tx_b", "locked"):
        assert at.session_state[key] == 8 * 300, key


@PARALLEL_FRAGMENTS
def test_parallel_fragments_lose_no_update() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        def body() -> None:
            for _ in range(100):
                ss.mutate("via_mutate", lambda v: v + 1, 0)
                with ss.session_lock():
                    st.session_state["via_lock"] = st.session_state.get("via_lock", 0) + 1

        for _ in range(3):
            st.fragment(parallel=True)(body)()

    at = run(app)
    assert at.session_state["via_mutate"] == 300
    assert at.session_state["via_lock"] == 300


def test_handle_reaches_its_session_from_a_worker() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        def worker(h: ss.manager.SessionHandle, label: str) -> None:
            h.safe_set("progress", 100)
            h.safe_update({"label": label})
            st.session_state  # noqa: B018  (no context here: must not be touched)

        ss.start_thread(worker, "done", name="w").join(30)
        st.session_state["seen"] = (ss.safe_get("progress"), ss.safe_get("label"))
        st.session_state["alive"] = ss.current().is_alive()

    at = run(app)
    assert at.session_state["seen"] == (100, "done")
    assert at.session_state["alive"] is True


def test_start_thread_rejects_a_non_callable() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        try:
            ss.start_thread("work")  # type: ignore[arg-type]
        except TypeError as exc:
            st.session_state["error"] = str(exc)

    at = run(app)
    assert "callable" in at.session_state["error"]


@pytest.mark.parametrize(
    "call",
    [
        lambda: safestate.safe_set("k", 1),
        lambda: safestate.safe_get("k"),
        lambda: safestate.safe_exists("k"),
        lambda: safestate.safe_update({"k": 1}),
        lambda: safestate.safe_delete("k"),
        lambda: safestate.mutate("k", str),
        lambda: safestate.increment("k"),
        lambda: safestate.transaction().__enter__(),
        lambda: safestate.session_lock().__enter__(),
        lambda: safestate.session_manager.session_id(),
        lambda: safestate.current(),
        lambda: safestate.start_thread(print),
    ],
)
def test_no_session_raises_instead_of_using_streamlits_placeholder(call: Any) -> None:
    error = raised_in_thread(call)
    assert isinstance(error, NoSessionError)
    assert "streamlit run app.py" in str(error)  # no Streamlit runtime in the test process


def test_a_worker_thread_of_a_running_app_is_told_to_use_a_handle() -> None:
    def app() -> None:
        import threading

        import streamlit as st

        import safestate as ss

        found: list[BaseException] = []

        def worker() -> None:
            try:
                ss.increment("k")
            except BaseException as exc:
                found.append(exc)

        t = threading.Thread(target=worker)
        t.start()
        t.join(10)
        st.session_state["error"] = (type(found[0]).__name__, str(found[0]))

    name, message = run(app).session_state["error"]
    assert name == "NoSessionError" and message.startswith("increment() was called outside")
    assert "safestate.current()" in message and "streamlit run" not in message


def test_a_script_run_without_streamlit_says_to_use_streamlit_run(
    tmp_path: pathlib.Path,
) -> None:
    # `python app.py`: no Streamlit runtime in the process. The error names the call made
    # (increment, not the mutate it is built on) and says how to run the app.
    app = tmp_path / "app.py"
    app.write_text("import safestate\nsafestate.increment('clicks')\n")
    done = subprocess.run([sys.executable, str(app)], capture_output=True, text=True,
                          timeout=120, check=False)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("safestate.errors.NoSessionError: increment() was called outside")
    assert "streamlit run app.py" in last and "handle" not in last


def test_session_stats_count_operations_and_memory() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        before = ss.session_manager.get_session_stats()["operations"]
        for _ in range(10):
            ss.safe_set("x", 1)
        st.session_state["stats"] = ss.session_manager.get_session_stats()
        st.session_state["delta"] = st.session_state["stats"]["operations"] - before

    at = run(app)
    stats = at.session_state["stats"]
    assert at.session_state["delta"] == 10
    assert stats["sessions_tracked"] >= 1
    assert stats["locks_held"] == 0
    assert 0 < stats["memory_per_session_bytes"] <= 1024
    for name in ("sessions_active", "sessions_ended", "sessions_cleaned", "lock_waits",
                 "lock_wait_seconds", "shared"):
        assert name in stats


def test_the_designs_classes_still_build_on_their_own() -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        manager = ss.SessionStateManager()  # a manager of its own over this session
        validator = ss.SessionValidator(manager)
        manager.safe_set("name", "ada")
        manager.increment("visits")
        report = validator.ensure_session_initialized({"cart": list}, on_missing="raise")
        st.session_state["seen"] = (st.session_state["name"], manager.safe_get("visits"),
                                    ss.safe_get("name"), report.created)

    at = run(app)
    assert at.session_state["seen"] == ("ada", 1, "ada", ["cart"])
