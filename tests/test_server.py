"""Against a real `streamlit run` server: isolation between sessions and lock lifecycle.

AppTest gives every test the same session id, so isolation and cleanup are tested
here with several real websocket sessions at once.
"""

from __future__ import annotations

import json
import pathlib
import threading
import time

from conftest import DISCONNECTED_TTL, Server, wait_for
from streamlit_client import Run, StreamlitSession


def test_concurrent_sessions_never_see_each_others_keys(isolation_server: Server) -> None:
    names = [f"user{i}" for i in range(6)]
    rounds = 5
    results: dict[str, list[Run]] = {}
    errors: list[BaseException] = []

    def user(name: str) -> None:
        try:
            with StreamlitSession(isolation_server.port) as s:
                results[name] = [s.run(f"name={name}") for _ in range(rounds)]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    sids = set()
    for name in names:
        last = results[name][-1]
        assert last.value("OWNER") == name
        assert last.value("VISITS") == str(rounds)  # no lost or foreign increments
        assert last.value("KEYS") == f"only_{name},owner,visits"  # nobody else's keys
        sids.add(last.value("SID"))
    assert len(sids) == len(names)


def _check(
    monitor: StreamlitSession, sids: list[str]
) -> tuple[set[str], dict[str, object], dict[str, str]]:
    run = monitor.run("check=" + ",".join(sids))
    tracked = {s for s in run.value("TRACKED").split(",") if s}
    status = dict(pair.split(":") for pair in run.value("STATUS").split(","))
    return tracked, json.loads(run.value("STATS")), status


def test_ended_sessions_are_freed_and_live_ones_kept(isolation_server: Server) -> None:
    sessions = [StreamlitSession(isolation_server.port) for _ in range(4)]
    try:
        sids = [s.run(f"name=life{i}").value("SID") for i, s in enumerate(sessions)]
        with StreamlitSession(isolation_server.port) as monitor:
            tracked, _, _ = _check(monitor, sids)
            assert tracked == set(sids)

            sessions[0].close()
            sessions[1].close()
            # Within the TTL a closed tab may come back: its lock must stay while the
            # runtime holds the session as disconnected.
            def closed_tabs_disconnected() -> bool:
                nonlocal tracked
                tracked, _, status = _check(monitor, sids)
                return {status[sids[0]], status[sids[1]]} == {"disconnected"}

            wait_for(closed_tabs_disconnected, "the closed tabs to be held as disconnected",
                     timeout=DISCONNECTED_TTL - 1)
            assert tracked == set(sids)

            stats: dict[str, object] = {}

            def only_live_ones_tracked() -> bool:
                nonlocal tracked, stats
                tracked, stats, _ = _check(monitor, sids)
                return tracked == set(sids[2:])

            wait_for(only_live_ones_tracked,
                     "the ended sessions to be freed, and the live ones kept",
                     timeout=DISCONNECTED_TTL + 30)
            assert int(stats["sessions_cleaned"]) >= 2  # type: ignore[call-overload]
            assert stats["locks_held"] == 0  # nobody is inside a locked block now

            # The live sessions still work, with their values intact.
            assert sessions[2].run("").value("OWNER") == "life2"
            assert sessions[3].run("").value("VISITS") == "1"
    finally:
        for s in sessions:
            s.close()


def test_worker_writes_survive_reruns_that_compact_state(worker_server: Server) -> None:
    # Every rerun compacts the session's state in Streamlit; a worker writing at that
    # moment must lose nothing (see safestate._compat.WorkerStateView).
    with StreamlitSession(worker_server.port) as s:
        run = s.run("start=1")
        deadline = time.monotonic() + 60
        reruns = 0
        while run.value("DONE") != "True" and time.monotonic() < deadline:
            run = s.run("")
            assert not run.exceptions, run.exceptions  # e.g. "dictionary changed size"
            reruns += 1
        assert run.value("DONE") == "True"
        assert reruns > 3  # the worker really wrote across several runs
        assert run.value("TICKS") == "3000"
        assert run.value("SLOTS") == "50"


def test_a_run_superseded_while_waiting_for_the_lock_ends_and_applies_nothing(
    supersede_server: Server, tmp_path: pathlib.Path
) -> None:
    """runner.fastReruns (the default): a newer click stops the older run. One that waits for
    the session lock must end too, not queue and then apply a write the user moved past."""
    release = tmp_path / "release"
    with StreamlitSession(supersede_server.port) as tab:
        assert tab.run(f"op=hold&release={release}").value("HOLDING") == "True"
        tab.request("op=write&n=1")
        tab.wait_for_markdown("WAITING=1")  # run 1 is at the lock, which the worker holds
        tab.request("op=write&n=2")  # a newer click: Streamlit stops run 1
        tab.wait_for_markdown("WAITING=2")
        release.touch()  # the worker lets go
        tab.wait_for_markdown("WROTE=2")
        assert tab.run("op=show").value("LOG") == "2"  # not "1,2": run 1 applied nothing
