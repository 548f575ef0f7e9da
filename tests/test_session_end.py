"""Session end hooks and dependency teardown: once per ended session, never for a live one.

AppTest and hand-made sessions cannot end (no runtime says "ended"), so the unit tests
below answer for the runtime (``_compat.session_status``) and sweep by hand, with the
sweeper thread stopped. The last two tests end real sessions of a `streamlit run` server.
"""

from __future__ import annotations

import logging
import pathlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Server, run_app, wait_for
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit_client import StreamlitSession
from websockets.sync.client import connect

import safestate
import safestate.testing
from safestate import _compat
from safestate._events import session_label
from safestate.app import App
from safestate.errors import InvalidArgumentError
from safestate.manager import SessionHandle, SessionStateManager
from safestate.session_end import SessionEndHooks

HERE = pathlib.Path(__file__).parent


@pytest.fixture
def ended(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Session ids the runtime answers "ended" for (the test adds them); others "unknown"."""
    gone: set[str] = set()
    monkeypatch.setattr(_compat, "session_status",
                        lambda sid: "ended" if sid in gone else "unknown")
    return gone


@pytest.fixture
def manager(fresh_app: App) -> SessionStateManager:
    """The app's manager with its sweeper stopped: the tests sweep by hand."""
    fresh_app.manager.close()
    return fresh_app.manager


def seed(manager: SessionStateManager, sid: str, **values: Any) -> dict[str, Any]:
    """Track session ``sid`` (its state a plain dict) holding ``values``; return its state."""
    state: dict[str, Any] = {}
    lock, storage = manager.enter_session(sid, state, "seed")
    with lock:
        for key, value in values.items():
            storage[key] = value
    return state


# -- registration -----------------------------------------------------------------------------
def test_registering_on_every_rerun_keeps_one_hook_the_latest(
    manager: SessionStateManager, ended: set[str]
) -> None:
    def app(calls: list[int]) -> None:
        import streamlit as st

        import safestate as ss

        run = st.session_state.get("run", 0) + 1
        st.session_state["run"] = run
        st.session_state["sid"] = ss.session_manager.session_id()

        @ss.session_manager.on_session_end
        def note_end(session: object) -> None:
            calls.append(run)  # which run's function the session's end called

    calls: list[int] = []
    at = run_app(app, calls=calls)
    at.run()
    at.run()
    assert len(manager.session_end.names()) == 1
    assert manager.session_end.names()[0].endswith(".note_end")
    ended.add(at.session_state["sid"])
    manager._sweep(end_sessions=True)
    assert calls == [3]  # once, and the newest function: not one per rerun


def test_a_page_that_only_registers_a_hook_is_tracked(manager: SessionStateManager) -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        def note_end(session: object) -> None:
            pass

        assert ss.session_manager.on_session_end(note_end) is note_end  # a decorator too
        st.session_state["sid"] = ss.session_manager.session_id()

    at = run_app(app)
    assert manager.is_tracked(at.session_state["sid"])  # else its end would go unseen


def test_a_hook_needs_a_name(manager: SessionStateManager) -> None:
    with pytest.raises(InvalidArgumentError, match="lambda"):
        manager.on_session_end(lambda session: None)
    with pytest.raises(TypeError, match="int"):
        manager.on_session_end(5)  # type: ignore[type-var]
    assert manager.session_end.names() == []


# -- running them -------------------------------------------------------------------------------
def test_a_hook_gets_the_ended_session_and_its_last_values(
    manager: SessionStateManager, ended: set[str]
) -> None:
    seen: list[tuple[str, object, bool]] = []

    @manager.on_session_end
    def note_end(session: SessionHandle) -> None:
        seen.append((session.session_id, session.safe_get("cart"), session.is_alive()))

    seed(manager, "s1", cart=["tea"])
    seed(manager, "s2", cart=["milk"])
    ended.add("s1")
    assert manager._sweep(end_sessions=True) == 1
    assert seen == [("s1", ["tea"], False)]
    assert not manager.is_tracked("s1") and manager.is_tracked("s2")  # s2 lives on


def test_only_the_sweeper_runs_hooks_and_a_session_is_freed_after_them(
    manager: SessionStateManager, ended: set[str]
) -> None:
    calls: list[str] = []
    manager.on_session_end(calls.append)  # a bound method: named "list.append"
    seed(manager, "s1")
    ended.add("s1")
    # A first call's sweep (or get_session_stats) runs in somebody's script run: no hooks
    # there, and no freeing a session whose hooks have not run.
    assert manager._sweep() == 0
    assert manager.get_session_stats()["sessions_tracked"] == 1
    assert calls == []
    assert manager._sweep(end_sessions=True) == 1
    assert len(calls) == 1


def test_a_sessions_hooks_run_once_however_many_sweeps_race(
    manager: SessionStateManager, ended: set[str]
) -> None:
    sids = [f"s{i}" for i in range(4)]
    counts = dict.fromkeys(sids, 0)
    inside = threading.Semaphore(0)
    go = threading.Event()

    @manager.on_session_end
    def note_end(session: SessionHandle) -> None:
        counts[session.session_id] += 1
        inside.release()
        assert go.wait(30)  # held inside the hook while the other sweeps run

    for sid in sids:
        seed(manager, sid)
    ended.update(sids)
    start = threading.Barrier(9)

    def sweep(end_sessions: bool) -> None:
        start.wait(30)
        for _ in range(20):
            manager._sweep(end_sessions)

    threads = [threading.Thread(target=sweep, args=(i % 2 == 0,)) for i in range(8)]
    for thread in threads:
        thread.start()
    start.wait(30)
    assert inside.acquire(timeout=30)  # a hook is running: its session must stay tracked
    assert any(manager.is_tracked(sid) and counts[sid] for sid in sids)
    go.set()
    for thread in threads:
        thread.join(30)
    manager._sweep(end_sessions=True)
    assert counts == dict.fromkeys(sids, 1)
    assert not any(manager.is_tracked(sid) for sid in sids)


def test_a_hook_that_raises_is_logged_and_the_others_run(
    manager: SessionStateManager, ended: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    @manager.on_session_end
    def broken(session: SessionHandle) -> None:
        raise ValueError(f"cannot save {session.safe_get('secret')}")

    @manager.on_session_end
    def fine(session: SessionHandle) -> None:
        ran.append(session.session_id)

    sid = "0b4e6c1a-secret-session-id"
    seed(manager, sid, secret="hunter2")
    ended.add(sid)
    with caplog.at_level(logging.ERROR, logger="safestate"):
        assert manager._sweep(end_sessions=True) == 1
    assert ran == [sid]
    [record] = [r for r in caplog.records if r.name == "safestate"]
    message = record.getMessage()
    assert "broken" in message and "ValueError" in message
    assert session_label(sid) in message
    assert "hunter2" not in message and sid not in message and record.exc_info is None


def test_a_worker_writing_after_the_end_does_not_end_it_again(
    manager: SessionStateManager, ended: set[str]
) -> None:
    calls: list[str] = []
    manager.on_session_end(calls.append)
    state = seed(manager, "s1")
    handle = SessionHandle(manager, "s1", state)
    ended.add("s1")
    assert manager._sweep(end_sessions=True) == 1
    handle.safe_get("late")  # a worker still at it: safestate tracks the session again
    assert manager.is_tracked("s1")
    assert manager._sweep(end_sessions=True) == 1  # freed again, not ended again
    assert len(calls) == 1


def test_a_session_freed_alive_still_ends_once(
    manager: SessionStateManager, ended: set[str]
) -> None:
    seen: list[object] = []

    @manager.on_session_end
    def note_end(session: SessionHandle) -> None:
        seen.append(session.safe_get("name"))

    seed(manager, "idle", name="ada")
    assert manager.cleanup_old_sessions(max_sessions=0, idle_seconds=0) == 1
    assert not manager.is_tracked("idle")
    manager._sweep(end_sessions=True)
    assert seen == []  # freed for idleness, but alive: it has not ended
    ended.add("idle")
    manager._sweep(end_sessions=True)
    manager._sweep(end_sessions=True)
    assert seen == ["ada"]  # it ended without another call: its hook still ran, once


def test_hooks_and_cleanups_run_in_order() -> None:
    order: list[str] = []

    class Owner:
        def cleanup(self, session: str) -> None:
            order.append("cleanup " + session)

    def hook(session: str) -> None:
        order.append("hook " + session)

    hooks: SessionEndHooks[str] = SessionEndHooks()
    owner = Owner()
    hooks.add_cleanup(owner.cleanup)
    hooks.add_cleanup(owner.cleanup)  # again: still once
    hooks.add(hook)
    assert hooks.end("a", "a") and not hooks.end("a", "a")
    assert order == ["hook a", "cleanup a"]
    del owner  # held weakly: it goes with its owner
    assert hooks.end("b", "b")
    assert order == ["hook a", "cleanup a", "hook b"]


# -- dependency teardown -------------------------------------------------------------------------
def conn_app(closed: list[object], build: bool) -> None:
    import streamlit as st

    import safestate as ss

    class Conn:
        closed = False

        def close(self) -> None:
            self.closed = True
            closed.append(self)

    ss.register_dependency("conn", Conn, teardown=Conn.close)

    @ss.session_manager.on_session_end
    def check_open(session: ss.manager.SessionHandle) -> None:
        # The hooks run before the teardowns: what they close is still open here.
        closed.append(("hook saw it open", not session.safe_get("conn", Conn()).closed))

    if build:
        st.session_state["built"] = ss.get_dependency("conn")
    st.session_state["sid"] = ss.session_manager.session_id()


def test_a_session_dependencys_teardown_runs_once_with_the_value(
    manager: SessionStateManager, ended: set[str]
) -> None:
    closed: list[Any] = []
    at = run_app(conn_app, closed=closed, build=True)
    at.run()  # a rerun registers it again: still one teardown
    built = at.session_state["built"]
    ended.add(at.session_state["sid"])
    manager._sweep(end_sessions=True)
    manager._sweep(end_sessions=True)
    assert closed == [("hook saw it open", True), built]
    assert built.closed


def test_a_dependency_never_built_is_not_torn_down(
    manager: SessionStateManager, ended: set[str]
) -> None:
    closed: list[Any] = []
    at = run_app(conn_app, closed=closed, build=False)
    ended.add(at.session_state["sid"])
    manager._sweep(end_sessions=True)
    assert closed == [("hook saw it open", True)]  # the session ended; nothing to close


def test_a_teardown_that_raises_is_logged(
    manager: SessionStateManager, ended: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    def app() -> None:
        import streamlit as st

        import safestate as ss

        def close(value: object) -> None:
            raise OSError(f"cannot close {value}")

        ss.register_dependency("conn", lambda: "the-secret-dsn", teardown=close)
        ss.get_dependency("conn")
        st.session_state["sid"] = ss.session_manager.session_id()

    at = run_app(app)
    ended.add(at.session_state["sid"])
    with caplog.at_level(logging.ERROR, logger="safestate"):
        assert manager._sweep(end_sessions=True) == 1
    [record] = [r for r in caplog.records if r.name == "safestate"]
    assert "'conn'" in record.getMessage() and "OSError" in record.getMessage()
    assert "the-secret-dsn" not in record.getMessage()


def test_an_app_dependencys_teardown_runs_at_app_close() -> None:
    def app(closed: list[object]) -> None:
        import safestate as ss

        ss.register_dependency("model", lambda: "weights", scope="app", teardown=closed.append)
        ss.register_dependency("unused", lambda: "never", scope="app", teardown=closed.append)
        ss.get_dependency("model")

    closed: list[object] = []
    with safestate.testing.fresh_app() as fresh:
        run_app(app, closed=closed)
        assert closed == []
    assert closed == ["weights"]
    fresh.close()  # closed again: torn down once
    assert closed == ["weights"]


def test_a_teardown_must_be_callable() -> None:
    with pytest.raises(TypeError, match="teardown"):
        safestate.register_dependency("conn", object, teardown=5)  # type: ignore[arg-type]


# -- against a real server ----------------------------------------------------------------------
#: server.disconnectedSessionTTL of the server below: short, so a closed tab ends soon.
END_TTL = 2


class ResumableSession(StreamlitSession):
    """A tab that can come back: it learns its session id from the server, and one made with
    ``resume=`` that id asks to resume that session, as a reconnecting browser does (the third
    entry of its websocket subprotocols; the second is its XSRF token)."""

    def __init__(self, port: int, resume: str | None = None) -> None:
        self.port = port
        self.session_id = ""
        protocols = ["streamlit", "no-xsrf-cookie", resume] if resume else ["streamlit"]
        self._ws = connect(
            f"ws://127.0.0.1:{port}/_stcore/stream",
            subprotocols=protocols,  # type: ignore[arg-type]
            open_timeout=30, max_size=None, proxy=None,
        ).__enter__()

    def _receive(self, deadline: float, what: str) -> ForwardMsg:
        fwd = super()._receive(deadline, what)
        if fwd.WhichOneof("type") == "new_session":  # sent as each run starts
            self.session_id = fwd.new_session.initialize.session_id
        return fwd


@pytest.fixture(scope="module")
def end_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, pathlib.Path]]:
    """tests/apps/session_end_app.py served with a short TTL, and the file its hooks write."""
    tmp = tmp_path_factory.mktemp("session_end")
    log = tmp / "ends.log"
    log.touch()
    server = Server(HERE / "apps" / "session_end_app.py", tmp / "streamlit.log",
                    "--server.disconnectedSessionTTL", str(END_TTL),  # the last one counts
                    env={"SESSION_END_LOG": str(log)})
    yield server, log
    server.stop()


def lines(log: pathlib.Path, name: str) -> list[list[str]]:
    """The end hook's and the teardown's lines for the session named ``name``, in order."""
    whole = log.read_text().split("\n")[:-1]  # a line being written is not one yet
    return [line.split() for line in whole if line.split()[1:2] == [name]]


def test_a_closed_tabs_end_hook_runs_once_after_the_ttl(
    end_server: tuple[Server, pathlib.Path]
) -> None:
    server, log = end_server
    tab = ResumableSession(server.port)
    assert tab.run("name=gone").value("NAME") == "gone"
    closed = time.time()
    tab.close()
    wait_for(lambda: lines(log, "gone"), "the closed tab's end hook", timeout=END_TTL + 30)
    delay = float(lines(log, "gone")[0][2]) - closed
    print(f"close -> end hook: {delay:.2f} s (TTL {END_TTL} s, a sweep every 0.2 s)")
    assert END_TTL <= delay < END_TTL + 10  # never before the tab could have come back
    # Once: a tab closed now ends a TTL later, many sweeps after the first one ended.
    with ResumableSession(server.port) as later:
        later.run("name=later")
    wait_for(lambda: len(lines(log, "later")) == 2, "the later tab's end", timeout=END_TTL + 30)
    assert [line[:2] for line in lines(log, "gone")] == [["end", "gone"], ["teardown", "gone"]]


def test_a_tab_that_reconnects_within_the_ttl_runs_no_end_hook(
    end_server: tuple[Server, pathlib.Path]
) -> None:
    server, log = end_server
    tab = ResumableSession(server.port)
    assert tab.run("name=back").value("NAME") == "back"
    sid = tab.session_id
    tab.close()
    tab = ResumableSession(server.port, resume=sid)  # the network came back, in time
    try:
        assert tab.run("").value("NAME") == "back"
        assert tab.session_id == sid  # the same session, resumed: not a new one
        with ResumableSession(server.port) as control:  # leaves after "back" first left
            control.run("name=control")
        wait_for(lambda: len(lines(log, "control")) == 2, "the control tab's end",
                 timeout=END_TTL + 30)
        # Had "back" ended, its hook would have run by now: it left before the control did.
        assert lines(log, "back") == []
        assert tab.run("").value("NAME") == "back"  # and it lives on
    finally:
        tab.close()  # for good, this time: now it ends, once
    wait_for(lambda: len(lines(log, "back")) == 2, "the resumed tab's end", timeout=END_TTL + 30)
    assert [line[:2] for line in lines(log, "back")] == [["end", "back"], ["teardown", "back"]]
