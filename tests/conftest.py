"""Fixtures: a real `streamlit run` server on a free port, started and stopped per module."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))

from streamlit_client import wait_healthy  # noqa: E402

DISCONNECTED_TTL = 5  # seconds a closed tab's session stays resumable in the test server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


@pytest.fixture(scope="module")
def isolation_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    server = Server(HERE / "apps" / "isolation_app.py", log)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    server = Server(HERE / "apps" / "worker_app.py", log)
    yield server
    server.stop()
