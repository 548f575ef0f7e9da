"""Live updates (safestate.live): a change reruns exactly the sessions that read the key.

Against a real `streamlit run` server, with sessions as websocket clients: a session
that showed the shared board redraws it by itself when another session posts, with
no polling fragment in the app.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator

import pytest
from conftest import HERE, Server, wait_for
from streamlit_client import StreamlitSession

APP = HERE / "apps" / "live_app.py"


@pytest.fixture()
def live_server(tmp_path: pathlib.Path) -> Iterator[tuple[Server, pathlib.Path]]:
    log = tmp_path / "runs.log"
    log.touch()
    server = Server(APP, tmp_path / "streamlit.log",
                    env={"LIVE_LOG": str(log), "SAFESTATE_LIVE_EXCLUDE": "quiet"})
    yield server, log
    server.stop()


def _runs(log: pathlib.Path) -> list[str]:
    return log.read_text().splitlines()


def test_a_post_reruns_the_sessions_that_read_the_board_and_no_other(
    live_server: tuple[Server, pathlib.Path],
) -> None:
    server, log = live_server
    with (StreamlitSession(server.port) as reader, StreamlitSession(server.port) as other,
          StreamlitSession(server.port) as writer):
        assert reader.run("who=reader").value("BOARD") == "None"
        assert other.run("who=other&noread=1").value("DONE") == "1"
        assert writer.run("who=writer").value("BOARD") == "None"
        writer.run("who=writer&post=hello")
        reader.wait_for_markdown("BOARD=hello", timeout=20)  # no request: it reran by itself
        wait_for(lambda: _runs(log).count("reader body") == 2, "the reader's live rerun")
    runs = _runs(log)
    assert runs.count("other body") == 1, runs  # it read nothing: never rerun
    assert runs.count("writer body") == 2, runs  # its own write does not rerun it


def test_a_read_inside_a_fragment_reruns_only_that_fragment(
    live_server: tuple[Server, pathlib.Path],
) -> None:
    server, log = live_server
    with StreamlitSession(server.port) as reader, StreamlitSession(server.port) as writer:
        assert reader.run("who=reader&frag=1").value("BOARD") == "None"
        writer.run("who=writer&noread=1&post=news")
        reader.wait_for_markdown("BOARD=news", timeout=20)
        wait_for(lambda: _runs(log).count("reader fragment") == 2, "the fragment's rerun")
    runs = _runs(log)
    assert runs.count("reader body") == 1, runs  # the page itself did not rerun


def test_live_reruns_go_out_one_at_a_time_and_reach_every_reader(
    live_server: tuple[Server, pathlib.Path],
) -> None:
    # Clicks must not queue behind a crowd of live reruns: one is under way at a time.
    server, log = live_server
    readers = [StreamlitSession(server.port) for _ in range(6)]
    try:
        for i, reader in enumerate(readers):
            reader.run(f"who=r{i}&frag=1&slow=1")
        with StreamlitSession(server.port) as writer:
            writer.run("who=writer&noread=1&post=news")
        for reader in readers:
            reader.wait_for_markdown("BOARD=news", timeout=30)
    finally:
        for reader in readers:
            reader.close()
    running = most = 0
    for line in _runs(log):
        running += line.endswith(" enter") - line.endswith(" leave")
        most = max(most, running)
    assert _runs(log).count("r5 leave") == 2
    assert most == 1, _runs(log)


def test_a_live_rerun_waits_for_another_sessions_run_to_end(
    live_server: tuple[Server, pathlib.Path],
) -> None:
    # A live rerun would share the interpreter with the user's run: it waits (at most 5 s).
    server, log = live_server
    with (StreamlitSession(server.port) as reader, StreamlitSession(server.port) as busy,
          StreamlitSession(server.port) as writer):
        reader.run("who=reader&frag=1")
        busy.request("who=busy&noread=1&hold=1.5")
        wait_for(lambda: "busy hold" in _runs(log), "the long run to start")
        writer.run("who=writer&noread=1&post=news")
        reader.wait_for_markdown("BOARD=news", timeout=20)
        busy.next_run(time.monotonic() + 20)
    runs = _runs(log)
    assert runs.index("busy done") < len(runs) - 1 - runs[::-1].index("reader fragment"), runs


def test_a_burst_of_changes_reruns_a_reader_a_few_times_and_ends_on_the_last(
    live_server: tuple[Server, pathlib.Path],
) -> None:
    server, log = live_server
    with StreamlitSession(server.port) as reader, StreamlitSession(server.port) as writer:
        reader.run("who=reader")
        started = time.monotonic()
        writer.run("who=writer&noread=1&burst=40", timeout=60)
        reader.wait_for_markdown("BOARD=b39", timeout=20)
        seconds = time.monotonic() - started
    reruns = _runs(log).count("reader body") - 1
    # 40 changes: at most one rerun per 0.25 s (plus the one that ends it), not 40.
    assert 1 <= reruns <= seconds / 0.25 + 2, (reruns, seconds)


def test_a_worker_threads_write_reruns_every_reader_its_own_session_too(
    live_server: tuple[Server, pathlib.Path],
) -> None:
    server, _ = live_server
    with StreamlitSession(server.port) as reader, StreamlitSession(server.port) as starter:
        reader.run("who=reader")
        starter.run("who=starter")
        started = starter.run("who=starter&worker=from-a-thread")
        reader.wait_for_markdown("BOARD=from-a-thread", timeout=20)
        if "BOARD=from-a-thread" not in started.markdown:  # the thread wrote after its read
            starter.wait_for_markdown("BOARD=from-a-thread", timeout=20)


def test_an_excluded_key_reruns_nobody_and_live_false_turns_it_all_off(
    live_server: tuple[Server, pathlib.Path], tmp_path: pathlib.Path,
) -> None:
    server, log = live_server
    with StreamlitSession(server.port) as reader, StreamlitSession(server.port) as writer:
        reader.run("who=reader")
        writer.run("who=writer&noread=1&quiet=shh")
        writer.run("who=writer&noread=1&post=loud")  # then a change that does rerun it
        # The reader's next run is the one "board" caused: "quiet" caused none before it.
        run = reader.next_run(time.monotonic() + 20)
        assert "BOARD=loud" in run.markdown and "QUIET=shh" in run.markdown, run
    assert _runs(log).count("reader body") == 2, _runs(log)

    off_log = tmp_path / "off.log"
    off_log.touch()
    off = Server(APP, tmp_path / "off.log.server",
                 env={"LIVE_LOG": str(off_log), "SAFESTATE_LIVE": "0"})
    try:
        with StreamlitSession(off.port) as reader, StreamlitSession(off.port) as writer:
            reader.run("who=reader")
            writer.run("who=writer&post=unseen")
            # A control: the writer's own next run shows the post, and by then a live
            # rerun of the reader would have been sent (both go through one thread).
            assert writer.run("who=writer").value("BOARD") == "unseen"
            assert reader.run("who=reader").value("BOARD") == "unseen"
    finally:
        off.stop()
    assert _runs(off_log).count("reader body") == 2, _runs(off_log)  # its two requests only


def test_a_page_that_writes_what_it_shows_on_every_run_does_not_rerun_forever(
    live_server: tuple[Server, pathlib.Path],
) -> None:
    server, log = live_server
    with StreamlitSession(server.port) as a, StreamlitSession(server.port) as b:
        a.run("who=a&count=1&noread=1")
        b.run("who=b&count=1&noread=1")  # A shows hits: A reruns (an echo: it writes too)
        a.wait_for_markdown("HITS=3", timeout=20)  # A's live rerun incremented (1, 2, 3)
        a.next_run(time.monotonic() + 20)  # the rest of that run
        # That write was an echo of B's: it reruns nobody. Nothing more comes, to A or B.
        for tab in (a, b):
            with pytest.raises(TimeoutError):
                tab.next_run(time.monotonic() + 1.5)
    runs = _runs(log)
    assert (runs.count("a body"), runs.count("b body")) == (2, 1), runs
