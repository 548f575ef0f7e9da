"""Fixtures: a real `streamlit run` server on a free port, started and stopped per module."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import safestate.testing
from safestate import _compat
from safestate.app import App

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "benchmarks"))  # one redis launcher for tests and benches
sys.path.insert(0, str(HERE.parent / "deploy"))  # the cluster `make cluster` starts

from _loadserver import RedisServer, free_port  # noqa: E402
from cluster import Cluster  # noqa: E402
from streamlit_client import wait_healthy  # noqa: E402

from safestate.stores import open_store  # noqa: E402

__all__ = ["RedisServer", "free_port", "raised_in_thread", "wait_for"]  # imported from here

#: Seconds between two looks at a condition a test waits for (never synchronization).
POLL = 0.005
#: Set by `make test-compat` (tools/compat.py): its venvs run the core suite, no browser.
#: Not SAFESTATE_*: safestate warns about such a variable that names no setting.
CORE_ONLY = "COMPAT_CORE_ONLY"


def needs_streamlit(version: str, why: str) -> pytest.MarkDecorator:
    """Skip a test on a Streamlit older than ``version`` (``make test-compat`` runs the
    suite on 1.40 and up), saying what it needs: a Streamlit feature, not safestate's."""
    return pytest.mark.skipif(not _compat.at_least(version),
                              reason=f"needs Streamlit {version}+: {why}")


#: AppTest runs the page st.navigation picks since 1.44 (`streamlit run` since 1.36).
APPTEST_NAVIGATION = needs_streamlit("1.44", "AppTest running st.navigation pages")
#: AppTest.user, a test's logged-in user (before it every AppTest user is test@example.com).
APPTEST_USER = needs_streamlit("1.67", "AppTest.user, to log a test user in")
#: st.fragment(parallel=True), several fragments of one session at once.
PARALLEL_FRAGMENTS = needs_streamlit(_compat.PARALLEL_FRAGMENTS, "st.fragment(parallel=True)")


def wait_for(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Return once ``condition()`` is true; after ``timeout`` s, fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL)  # the polling interval of a bounded wait

DISCONNECTED_TTL = 5  # seconds a closed tab's session stays resumable in the test server


class Server:
    """A `streamlit run` process serving one app on 127.0.0.1."""

    def __init__(
        self, app: pathlib.Path, log: pathlib.Path, *flags: str, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        streamlit = pathlib.Path(sys.executable).parent / "streamlit"
        self.log = log
        self.proc = subprocess.Popen(
            [
                str(streamlit), "run", str(app),
                "--server.headless", "true",
                "--server.address", "127.0.0.1",
                "--server.port", str(self.port),
                "--server.disconnectedSessionTTL", str(DISCONNECTED_TTL),
                "--server.fileWatcherType", "none",
                "--browser.gatherUsageStats", "false",
                *flags,
            ],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        try:
            wait_healthy(self.port)
        except TimeoutError:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def serve(app: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Serve tests/apps/<app> for a module's tests, then stop it."""
    server = Server(HERE / "apps" / app, tmp_path_factory.mktemp("server") / "streamlit.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def isolation_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve("isolation_app.py", tmp_path_factory)


@pytest.fixture(scope="module")
def worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve("worker_app.py", tmp_path_factory)


@pytest.fixture(scope="module")
def supersede_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve("supersede_app.py", tmp_path_factory)


CHROMIUM = "/usr/bin/chromium"
# Flags for a closed network: no background fetches, no component updates.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def launch(pw: Any) -> Any:
    """Debian's Chromium under Playwright (it never downloads a browser of its own)."""
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One real Chromium for a module's tests (skipped in `make test-compat`'s venvs, which
    run the core suite only and have no Playwright; anywhere else a missing one fails)."""
    if os.environ.get(CORE_ONLY):
        pytest.skip(f"{CORE_ONLY} is set: the core suite only, no browser")
    import playwright.sync_api as playwright_api

    # No skip when it is missing: `make test` installs it, and a silent skip would hide that.
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: run `make test`, which installs it"
    with playwright_api.sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


def raised_in_thread(fn: Callable[[], object], timeout: float = 30.0) -> BaseException | None:
    """Run ``fn`` in a new thread (no Streamlit context there); return what it raised, or None."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn!r} still runs after {timeout:g} s"
    return raised[0] if raised else None


@pytest.fixture(autouse=True)
def fresh_app() -> Iterator[App]:
    """Each test runs against a new safestate app: no sessions, keys, schema or settings of
    another test's."""
    with safestate.testing.fresh_app() as app:
        yield app


def run_app(app: Any, **kwargs: Any) -> AppTest:
    """Run ``app`` (a function doing its own imports) in a real script run; no exception."""
    at = AppTest.from_function(app, kwargs=kwargs, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    assert shutil.which("redis-server"), "redis-server is missing: `make test` installs it"
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """The URL of an empty store of each kind: memory, a new SQLite file, a flushed Redis db."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    store = open_store(server.url)
    store._client.flushdb()  # type: ignore[attr-defined]
    store.close()
    return server.url


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`make cluster` as its tests need it: HAProxy, two demo replicas, one redis-server."""
    assert shutil.which("haproxy"), "haproxy is missing: `make test` installs it"
    started = Cluster(tmp_path_factory.mktemp("cluster"), 2, session_ttl=DISCONNECTED_TTL)
    yield started
    started.stop()
