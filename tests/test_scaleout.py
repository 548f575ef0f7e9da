"""Scale-out: two `streamlit run` processes of one app sharing ONE store (Redis, SQLite).

With a store configured, ``safestate.shared`` lives in the store, so what one replica
writes the other reads, and read-modify-writes from both at once lose nothing
(versioned commits, retried on conflict).
"""

from __future__ import annotations

import json
import pathlib
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import HERE, Server
from streamlit_client import Run, StreamlitSession

APP = HERE / "apps" / "scaleout_app.py"
THREADS = 4  # per process, as in the app
PER_THREAD = 500


class Pair:
    """Two servers (processes) of the app, configured with the same store URL."""

    def __init__(self, url: str, a: Server, b: Server) -> None:
        self.url = url
        self.a = a
        self.b = b


def _start_two(url: str, logs: pathlib.Path) -> tuple[Server, Server]:
    env = {"SAFESTATE_STORE": url}
    with ThreadPoolExecutor(2) as pool:  # both start at once: halves the start-up time
        futures = [pool.submit(Server, APP, logs / f"streamlit_{n}.log", env=env) for n in "ab"]
        started: list[Server] = []
        failure: BaseException | None = None
        for f in futures:
            try:
                started.append(f.result(timeout=120))
            except BaseException as exc:
                failure = exc
    if failure is not None:
        for s in started:
            s.stop()
        raise failure
    return started[0], started[1]


@pytest.fixture(scope="module", params=["redis", "sqlite"])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp(f"scaleout_{request.param}")
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url  # shared: tests use unique keys
    else:
        url = f"sqlite:///{workdir / 'shared.db'}"  # four slashes: an absolute path
        assert url.startswith("sqlite:////")
    a, b = _start_two(url, workdir)
    try:
        yield Pair(url, a, b)
    finally:
        a.stop()
        b.stop()


def _value(run: Run) -> object:
    assert not run.exceptions, run.exceptions
    return json.loads(run.value("VALUE"))


def _pids(pair: Pair) -> tuple[str, str]:
    with StreamlitSession(pair.a.port) as sa, StreamlitSession(pair.b.port) as sb:
        ra, rb = sa.click(""), sb.click("")
    assert ra.value("STORE") == rb.value("STORE") == pair.url  # not memory://
    return ra.value("PID"), rb.value("PID")


def test_a_value_written_through_one_process_is_read_through_the_other(pair: Pair) -> None:
    pid_a, pid_b = _pids(pair)
    assert pid_a != pid_b  # two processes, not two sessions of one
    key = f"board_{uuid.uuid4().hex}"
    payload = {"msg": "hello from A", "n": 7, "tags": ["x", "y"]}
    with StreamlitSession(pair.a.port) as sa, StreamlitSession(pair.b.port) as sb:
        assert _value(sb.click(f"key={key}")) is None  # nothing there yet
        assert _value(sa.click(f"key={key}&set={json.dumps(payload)}")) == payload
        assert _value(sb.click(f"key={key}")) == payload
        # And back: B overwrites, A sees it (no stale cache in A).
        assert _value(sb.click(f"key={key}&set={json.dumps('from B')}")) == "from B"
        assert _value(sa.click(f"key={key}")) == "from B"


def test_increments_from_both_processes_at_once_lose_nothing(pair: Pair) -> None:
    key = f"hits_{uuid.uuid4().hex}"
    with StreamlitSession(pair.a.port) as sa:
        assert _value(sa.click(f"key={key}&set=1000")) == 1000  # a baseline that is not 0
        baseline = _value(sa.click(f"key={key}"))
    assert isinstance(baseline, int) and baseline == 1000

    barrier = threading.Barrier(2)
    runs: dict[str, Run] = {}
    errors: list[BaseException] = []

    def client(name: str, server: Server) -> None:
        try:
            with StreamlitSession(server.port) as s:
                s.click(f"key={key}")  # connect and warm up before the race starts
                barrier.wait(timeout=30)
                runs[name] = s.click(f"key={key}&hammer={PER_THREAD}", timeout=90)
        except BaseException as exc:
            barrier.abort()
            errors.append(exc)

    clients = [threading.Thread(target=client, args=(n, s), daemon=True)
               for n, s in (("a", pair.a), ("b", pair.b))]
    t0 = time.monotonic()
    for t in clients:
        t.start()
    for t in clients:
        t.join(max(0.0, t0 + 120 - time.monotonic()))
    assert not any(t.is_alive() for t in clients), "a client did not finish within 120 s"
    assert not errors, errors

    spans = {}
    for name, run in runs.items():
        assert not run.exceptions, run.exceptions
        assert json.loads(run.value("ERRORS")) == [], (name, run.value("ERRORS"))
        assert run.value("ALIVE") == "0", (name, run.markdown)
        assert run.value("DONE") == str(THREADS * PER_THREAD), (name, run.markdown)
        start, end = (float(x) for x in run.value("SPAN").split(","))
        spans[name] = (start, end)
        # Seen with -s: how long the hammer took and how many round trips (retries) it cost.
        print(f"{pair.url.split(':')[0]} {name}: {end - start:.2f} s, "
              f"{run.value('TRIPS')} round trips for {THREADS * PER_THREAD} increments")
    # The two processes really hammered at the same time (their runs overlap).
    assert spans["a"][0] < spans["b"][1] and spans["b"][0] < spans["a"][1], spans

    expected = baseline + 2 * THREADS * PER_THREAD
    with StreamlitSession(pair.b.port) as sb, StreamlitSession(pair.a.port) as sa:
        assert _value(sb.click(f"key={key}")) == expected
        assert _value(sa.click(f"key={key}")) == expected


def test_a_shared_write_in_one_process_redraws_the_readers_in_the_other(pair: Pair) -> None:
    key = f"board_{uuid.uuid4().hex}"
    with StreamlitSession(pair.a.port) as sa, StreamlitSession(pair.b.port) as sb:
        assert _value(sb.click(f"key={key}")) is None  # B shows the key
        sa.click(f"key={key}&set={json.dumps('live')}")
        # No request from B: the store told B's process, which reran the session that read it.
        sb.wait_for_markdown('VALUE="live"', timeout=10)
