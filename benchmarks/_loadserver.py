"""The server side of the load test: start the demo, read its memory and session counts.

``streamlit run`` binds 127.0.0.1 on a free port. With safestate, the demo also
serves Prometheus text on a second free port (``SAFESTATE_METRICS_PORT``), where
the load test reads safestate's session counts.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo"
APPS = {"safestate": DEMO / "app.py", "plain": DEMO / "app_plain.py"}


def free_port() -> int:
    """A TCP port nobody listens on at the moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Terminate ``proc`` and wait; kill it if it has not ended within ``timeout`` s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def process_cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` has used so far (all its threads, user + system)."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_get(url: str, timeout: float) -> str:
    """The body of a GET of ``url`` (loopback: no proxy)."""
    # Loopback only: no proxy, whatever the environment names.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        return str(resp.read().decode())


class DemoServer:
    """One ``streamlit run`` of the demo (``variant`` "safestate" or "plain")."""

    def __init__(
        self, variant: str, log: pathlib.Path, *, session_ttl: int = 5, metrics: bool = True,
        options: Sequence[str] = (), app: pathlib.Path | None = None, cwd: pathlib.Path = DEMO,
        env: Mapping[str, str] | None = None, port: int | None = None,
        metrics_port: int | None = None,
    ) -> None:
        """Start it; ``options`` are more Streamlit settings as "section.name=value".

        ``app`` serves another script than the variant's demo, from ``cwd``, with ``env``
        in place of this process's environment. ``port`` and ``metrics_port`` are free
        ports unless given (a restart keeps its ports).
        """
        self.variant = variant
        self.port = port or free_port()
        self.metrics_port = ((metrics_port or free_port())
                             if metrics and variant == "safestate" else None)
        self.session_ttl = session_ttl
        self.log = log
        env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
        if self.metrics_port is not None:
            env["SAFESTATE_METRICS_PORT"] = str(self.metrics_port)
        streamlit = pathlib.Path(sys.executable).parent / "streamlit"
        self.proc = subprocess.Popen(
            [
                str(streamlit), "run", str(app or APPS[variant]),
                "--server.address", "127.0.0.1",
                "--server.port", str(self.port),
                "--server.headless", "true",
                "--browser.gatherUsageStats", "false",
                "--server.fileWatcherType", "none",
                "--server.runOnSave", "false",
                # Closed tabs end this many seconds later (Streamlit's default is 120).
                "--server.disconnectedSessionTTL", str(session_ttl),
                *(part for option in options for part in _flag(option)),
            ],
            cwd=cwd,
            stdout=log.open("a"),  # a restarted server keeps what the last one logged
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until /_stcore/health answers 200, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-2000:]
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}:\n{tail}")
            try:
                http_get(f"http://127.0.0.1:{self.port}/_stcore/health", timeout=2)
                return
            except OSError:
                time.sleep(0.1)  # polling interval of a bounded wait
        raise TimeoutError(f"streamlit on port {self.port} not healthy in {timeout} s")

    def rss_kib(self) -> int:
        """The server process's resident memory (VmRSS), in KiB."""
        for line in pathlib.Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (all its threads, user + system)."""
        return process_cpu_seconds(self.proc.pid)

    def scrape(self, timeout: float = 5.0) -> dict[str, float] | None:
        """safestate's Prometheus gauges, or None when the endpoint does not answer.

        Scraping sweeps ended sessions first, so the counts are current.
        """
        if self.metrics_port is None:
            return None
        try:
            text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout)
        except OSError:
            return None
        return parse_metrics(text)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill ends it: no shutdown code runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """Terminate the server (kill it if it does not stop within 10 s)."""
        stop_process(self.proc)


def _flag(option: str) -> tuple[str, str]:
    name, sep, value = option.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"a Streamlit option is section.name=value, got {option!r}")
    return f"--{name.strip()}", value.strip()


def parse_metrics(text: str) -> dict[str, float]:
    """Samples of the Prometheus text format by name with labels, e.g. ``a{b="c"}``.

    A plain line parse: enough for gauges and counters, no extra dependency.
    """
    samples: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "}" in line:
            head, _, tail = line.rpartition("}")
            name = head + "}"
        else:
            name, _, tail = line.partition(" ")
        fields = tail.split()
        try:
            samples[name] = float(fields[0])
        except (ValueError, IndexError):
            continue
    return samples


class RedisServer:
    """A real redis-server on 127.0.0.1 and a free port, data in ``workdir``.

    ``durable`` keeps an append-only file synced on every write (a restart replays it);
    otherwise nothing is kept. ``start()`` after ``stop()`` starts it again on its port.
    """

    def __init__(self, workdir: pathlib.Path, durable: bool = True) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        """Start it and wait until it answers PING. Raises TimeoutError, RuntimeError."""
        keep = (["--appendonly", "yes", "--appendfsync", "always"] if self.durable
                else ["--appendonly", "no"])
        with (self.workdir / "redis.log").open("ab") as out:
            self.proc = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                 "--dir", str(self.workdir), "--save", "", *keep, "--protected-mode", "yes"],
                stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: see "
                                   f"{self.workdir / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)  # polling interval of a bounded wait
        self.stop()
        raise TimeoutError(f"redis-server on port {self.port} did not answer PING")

    def stop(self) -> None:
        """Stop it (killed if it does not end within 10 s); a no-op when stopped."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        stop_process(proc)


# -- command-line arguments the benchmarks share ---------------------------------------------------
def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, which must be > 0."""
    def check(text: str) -> Any:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value
    return check


def listed(allowed: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated choice of ``allowed`` (``what`` names them)."""
    def check(text: str) -> list[str]:
        chosen = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in chosen if v not in allowed]
        if bad or not chosen:
            raise argparse.ArgumentTypeError(f"{what} are {', '.join(allowed)}; got {text!r}")
        return chosen
    return check
