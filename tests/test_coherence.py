"""One identity, many sessions: tabs of one server and tabs on two server processes.

Real `streamlit run` servers on one store (a SQLite file, a real redis-server), with
websocket sessions that carry one browser identity (``?ss=<token>``), as two tabs of
one browser do. A write by one is what every other reads next; read-modify-writes from
all at once lose nothing (each ``+=`` that returned is in the final value); and a tab
that shows a key redraws by itself when another tab or replica changes it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import HERE, Server
from streamlit_client import Run, StreamlitSession

APP = HERE / "apps" / "tabs_app.py"
SECRET = "a-test-secret-of-enough-length"
N = 150  # read-modify-writes per tab and form


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def replicas(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two server processes of the tabs app on one store."""
    workdir = tmp_path_factory.mktemp(f"coherence_{request.param}")
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url  # each test has its own identity
    else:
        url = f"sqlite:///{workdir / 'state.db'}"
    env = {"SAFESTATE_STORE": url, "SAFESTATE_IDENTITY": "browser",
           "SAFESTATE_SECRET": SECRET, "SAFESTATE_PERSIST": "schema"}
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(Server, APP, workdir / f"streamlit_{n}.log", env=env)
                   for n in "ab"]
        servers = [f.result(timeout=120) for f in futures]
    yield servers[0], servers[1]
    for s in servers:
        s.stop()


def _token(server: Server) -> str:
    """A new identity: the token the app put in the first tab's URL."""
    with StreamlitSession(server.port) as tab:
        token = tab.click(f"x={uuid.uuid4().hex}").value("TOKEN")
    assert token and token != "None"
    return token


def _ok(run: Run) -> Run:
    assert not run.exceptions, run.exceptions
    return run


def _both(first: Callable[[], Run], second: Callable[[], Run]) -> tuple[Run, Run]:
    """Run two tabs' clicks at the same moment."""
    barrier = threading.Barrier(2)

    def go(click: Callable[[], Run]) -> Run:
        barrier.wait(30)
        return click()

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.submit(go, first), pool.submit(go, second)
        return _ok(a.result(timeout=180)), _ok(b.result(timeout=180))


def test_two_tabs_see_each_others_items_and_notes(replicas: tuple[Server, Server]) -> None:
    server = replicas[0]
    token = _token(server)
    with StreamlitSession(server.port) as a, StreamlitSession(server.port) as b:
        _ok(a.click(f"ss={token}"))
        _ok(b.click(f"ss={token}"))
        for tab, item in [(a, "a1"), (b, "b1"), (a, "a2"), (b, "b2")]:
            cart = json.loads(_ok(tab.click(f"ss={token}&add={item}")).value("CART"))
        assert cart == ["a1", "b1", "a2", "b2"]  # no tab's cache hid the other's items
        # A note written in A: B showed the note, so B redraws by itself with the new one.
        _ok(a.click(f"ss={token}&note=hello"))
        b.wait_for_markdown("NOTE=hello", timeout=10)
        assert json.loads(_ok(a.click(f"ss={token}")).value("CART")) == cart


@pytest.mark.parametrize("form", ["plus", "edit"])
@pytest.mark.parametrize("where", ["one server", "two servers"])
def test_read_modify_writes_from_two_tabs_at_once_lose_nothing(
    replicas: tuple[Server, Server], form: str, where: str,
) -> None:
    first, second = replicas if where == "two servers" else (replicas[0], replicas[0])
    token = _token(first)
    with StreamlitSession(first.port) as a, StreamlitSession(second.port) as b:
        if where == "two servers":
            assert _ok(a.click(f"ss={token}")).value("PID") != _ok(b.click(f"ss={token}")).value(
                "PID")
        base = int(_ok(a.click(f"ss={token}")).value("STEP"))
        ra, rb = _both(lambda: a.click(f"ss={token}&{form}={N}", timeout=180),
                       lambda: b.click(f"ss={token}&{form}={N}", timeout=180))
        counts = [json.loads(_ok(tab.click(f"ss={token}")).value("DONE"))[run.click]
                  for tab, run in ((a, ra), (b, rb))]
        ok, stale = counts[0][0] + counts[1][0], counts[0][1] + counts[1][1]
        assert ok + stale == 2 * N
        if form == "edit" and where == "one server":
            assert stale == 0  # the identity's turn: its tabs in one process wait, not clash
        print(f"{where}, {form}: {ok} applied, {stale} refused with StaleWriteError")
        # Every += that returned normally is in the final value, read by either process.
        assert int(_ok(a.click(f"ss={token}")).value("STEP")) == base + ok
        assert int(_ok(b.click(f"ss={token}")).value("STEP")) == base + ok


def test_a_write_in_one_replica_redraws_the_tab_on_the_other(
    replicas: tuple[Server, Server],
) -> None:
    a_server, b_server = replicas
    token = _token(a_server)
    delays = []
    with StreamlitSession(a_server.port) as a, StreamlitSession(b_server.port) as b:
        _ok(a.click(f"ss={token}"))
        for n in range(5):
            _ok(b.click(f"ss={token}"))  # B shows the note
            start = time.monotonic()
            _ok(a.click(f"ss={token}&note=n{n}"))
            b.wait_for_markdown(f"NOTE=n{n}", timeout=10)  # no click in B: a live rerun
            delays.append(time.monotonic() - start)
    print(f"write in A to redraw in B: max {max(delays) * 1000:.0f} ms")
