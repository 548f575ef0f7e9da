"""A real multi-replica deployment in one command: HAProxy, N demo replicas, one redis-server.

    make cluster [REPLICAS=2] [PORT=8501]   # prints the URL; Ctrl-C stops everything
    make cluster-stop                       # the same, from another terminal

HAProxy runs ``deploy/haproxy.cfg`` as it is, with one ``server`` line per replica
appended. Every replica is the unchanged demo (``examples/demo/app.py``), configured by
environment variables only: ``SAFESTATE_STORE`` (the shared redis-server),
``SAFESTATE_IDENTITY=browser``, ``SAFESTATE_SECRET`` and Streamlit's
``server.cookieSecret``, the same for every replica. Everything binds 127.0.0.1.
While it runs in the foreground, a replica that dies is started again on its port
(as a supervisor would), and HAProxy takes it back once its health check passes.
The tests and ``make loadtest-cluster`` use :class:`Cluster` directly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from _loadserver import (  # noqa: E402
    DemoServer,
    RedisServer,
    free_port,
    http_get,
    stop_process,
)

#: The load balancer's configuration, used as it is (docs/guides/scaling-out.md shows this file).
CONFIG = HERE / "haproxy.cfg"
#: The cookie that pins a browser to a replica (it names the replica, nothing else).
COOKIE = "ss_replica"
WORKDIR = REPO / ".cluster"
HAPROXY = "haproxy"


def server_lines(ports: Sequence[int]) -> str:
    """The ``server`` lines ``make cluster`` appends to haproxy.cfg: replica1, replica2, ..."""
    return "".join(f"    server replica{i} 127.0.0.1:{port} cookie replica{i}\n"
                   for i, port in enumerate(ports, 1))


def _secret(path: pathlib.Path, given: str | None) -> str:
    """``given``, else the one kept in ``path``, else a new random one (kept, mode 0600).

    Kept, so a cluster started again over the same Redis still accepts the URLs it signed.
    Raises RuntimeError if the kept file is empty or readable by others.
    """
    if given:
        return given
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise RuntimeError(f"{path} is readable by others: chmod 600 it, or delete it "
                               "(the URLs it signed then start afresh)") from None
        value = path.read_text().strip()
        if not value:
            raise RuntimeError(f"{path} is empty: delete it and start again") from None
        return value
    value = secrets.token_hex(32)
    with os.fdopen(fd, "w") as out:
        out.write(value)
    return value


class Cluster:
    """HAProxy on ``port`` in front of ``replicas`` demo processes sharing one redis-server.

    ``session_ttl`` is Streamlit's ``server.disconnectedSessionTTL`` (seconds a closed tab's
    session stays resumable); ``options`` are more Streamlit settings ("section.name=value")
    and ``env`` more environment for every replica. Raises RuntimeError or TimeoutError
    when a part does not start (and stops what did).
    """

    def __init__(
        self, workdir: pathlib.Path, replicas: int = 2, *, port: int | None = None,
        session_ttl: int = 120, options: Sequence[str] = (),
        env: Mapping[str, str] | None = None, app: pathlib.Path | None = None,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        if shutil.which(HAPROXY) is None:
            raise RuntimeError("haproxy is missing: `make cluster` installs Debian's package")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.stats_port = free_port()
        self.session_ttl = session_ttl
        self.options = list(options)
        self.app = app
        self.redis: RedisServer | None = None
        self.replicas: list[DemoServer | None] = [None] * replicas
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.ports = [free_port() for _ in range(replicas)]
        self.metrics_ports = [free_port() for _ in range(replicas)]
        try:
            (workdir / "redis").mkdir(exist_ok=True)
            self.redis = RedisServer(workdir / "redis")
            self.env = {
                **os.environ, **(env or {}),
                "SAFESTATE_STORE": self.redis.url,
                "SAFESTATE_IDENTITY": "browser",
                "SAFESTATE_SECRET": _secret(workdir / "secret",
                                            os.environ.get("SAFESTATE_SECRET")),
                "SAFESTATE_PERSIST": "schema",
                # Streamlit signs its cookies (XSRF, st.login) with this: one for all replicas,
                # or a tab that fails over cannot upload files or stay logged in.
                "STREAMLIT_SERVER_COOKIE_SECRET": _secret(
                    workdir / "cookie-secret", os.environ.get("STREAMLIT_SERVER_COOKIE_SECRET")),
                "DEMO_ADMIN_PASSWORD": os.environ.get("DEMO_ADMIN_PASSWORD", "demo-admin"),
            }
            for i in range(replicas):
                self.start_replica(i)
            self._start_haproxy()
        except BaseException:
            self.stop()
            raise

    # -- the parts -------------------------------------------------------------------------------
    def start_replica(self, index: int) -> DemoServer:
        """Start replica ``index`` (0-based) on its port; a no-op if it runs."""
        current = self.replicas[index]
        if current is not None and current.proc.poll() is None:
            return current
        server = DemoServer(
            "safestate", self.workdir / f"replica{index + 1}.log", session_ttl=self.session_ttl,
            options=self.options, env=self.env, port=self.ports[index],
            metrics_port=self.metrics_ports[index], app=self.app,
            **({"cwd": self.app.parent} if self.app else {}),
        )
        self.replicas[index] = server
        return server

    def kill(self, index: int) -> None:
        """kill -9 replica ``index``: no shutdown code runs, its sessions are gone."""
        server = self.replicas[index]
        if server is not None:
            server.kill()

    def config(self) -> str:
        """What HAProxy runs: deploy/haproxy.cfg unchanged, then one server line per replica."""
        return CONFIG.read_text() + server_lines(self.ports)

    def _start_haproxy(self, timeout: float = 20.0) -> None:
        path = self.workdir / "haproxy.cfg"
        path.write_text(self.config())
        env = {**os.environ, "LB_ADDR": "127.0.0.1", "LB_PORT": str(self.port),
               "LB_STATS_PORT": str(self.stats_port)}
        check = subprocess.run([HAPROXY, "-c", "-f", str(path)], env=env,
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused {path}:\n{check.stdout}{check.stderr}")
        with (self.workdir / "haproxy.log").open("ab") as out:
            # -db: stay in the foreground, so this process owns it and stops it.
            self.haproxy = subprocess.Popen([HAPROXY, "-db", "-f", str(path)], env=env,
                                            stdout=out, stderr=subprocess.STDOUT)
        self.wait_up(range(len(self.replicas)), timeout)

    # -- what HAProxy reports --------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, str]]:
        """HAProxy's stats row of each replica by name ("replica1": {"status": "UP", ...})."""
        text = http_get(f"http://127.0.0.1:{self.stats_port}/;csv", timeout=5)
        lines = text.splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {r["svname"]: r for r in rows
                if r.get("pxname") == "replicas" and r["svname"].startswith("replica")}

    def wait_status(self, indexes: Sequence[int] | range, up: bool, timeout: float = 30.0) -> None:
        """Wait until HAProxy reports every replica in ``indexes`` UP (or DOWN)."""
        want = "UP" if up else "DOWN"
        names = [f"replica{i + 1}" for i in indexes]
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            if self.haproxy is not None and self.haproxy.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.haproxy.returncode}: see "
                                   f"{self.workdir / 'haproxy.log'}")
            with contextlib.suppress(OSError):
                rows = self.status()
                seen = {n: rows[n]["status"] for n in names if n in rows}
                if all(seen.get(n, "").startswith(want) for n in names):
                    return
            time.sleep(0.1)  # polling interval of a bounded wait
        raise TimeoutError(f"HAProxy did not report {names} {want} in {timeout} s: {seen}")

    def wait_up(self, indexes: Sequence[int] | range, timeout: float = 30.0) -> None:
        self.wait_status(indexes, True, timeout)

    @property
    def url(self) -> str:
        """The one URL users open: the load balancer."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/"

    def pids(self) -> list[int]:
        """The processes it started, for ``make cluster-stop``."""
        procs = [self.haproxy, self.redis.proc if self.redis else None,
                 *(r.proc for r in self.replicas if r is not None)]
        return [p.pid for p in procs if p is not None and p.poll() is None]

    def stop(self) -> None:
        """Stop HAProxy, the replicas and Redis (each killed if it does not stop in 10 s)."""
        if self.haproxy is not None:
            stop_process(self.haproxy)
        for server in self.replicas:
            if server is not None:
                server.stop()
        if self.redis is not None:
            self.redis.stop()


# -- make cluster / make cluster-stop ------------------------------------------------------------
def _stop_running(workdir: pathlib.Path, timeout: float = 30.0) -> int:
    """Stop the cluster a ``make cluster`` in another terminal started; 0 if none ran."""
    pidfile = workdir / "pids.json"
    if not pidfile.exists():
        print("no cluster is running (no .cluster/pids.json)")
        return 0
    recorded = json.loads(pidfile.read_text())
    if _ours(recorded["cluster"], "cluster.py"):
        os.kill(recorded["cluster"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _ours(recorded["cluster"], "cluster.py"):
        time.sleep(0.1)  # polling interval of a bounded wait
    # Left over only if the cluster process was killed before it cleaned up. A pid is killed
    # only while it still runs one of the programs the cluster starts (pids are reused).
    for pid in recorded["children"]:
        if any(_ours(pid, name) for name in ("haproxy", "streamlit", "redis-server")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    print("cluster stopped")
    return 0


def _ours(pid: int, program: str) -> bool:
    """Whether ``pid`` runs and its command line names ``program``."""
    try:
        return program in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode(
            errors="replace")
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _serve(args: argparse.Namespace) -> int:
    workdir: pathlib.Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    if not _port_free(args.port):
        print(f"port {args.port} is taken (`make cluster-stop`, or PORT=<another>)",
              file=sys.stderr)
        return 2

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    print(f"starting redis-server, {args.replicas} replica(s) and HAProxy ...", flush=True)
    cluster = Cluster(workdir, args.replicas, port=args.port, session_ttl=args.session_ttl)
    pidfile = workdir / "pids.json"
    try:
        pidfile.write_text(json.dumps({"cluster": os.getpid(), "children": cluster.pids()}))
        print(f"\n  Open {cluster.url}\n")
        for i, server in enumerate(cluster.replicas, 1):
            assert server is not None
            print(f"  replica{i}: pid {server.proc.pid}, 127.0.0.1:{server.port}, "
                  f"log {workdir / f'replica{i}.log'}")
        assert cluster.redis is not None
        print(f"  redis-server: {cluster.redis.url}\n  HAProxy status page: {cluster.stats_url}")
        print("\n  Ctrl-C (or `make cluster-stop`) stops everything.", flush=True)
        while True:
            time.sleep(1.0)  # a supervisor's loop: look at the replicas once a second
            for i, server in enumerate(cluster.replicas):
                if server is not None and server.proc.poll() is not None:
                    print(f"replica{i + 1} exited ({server.proc.returncode}); starting it again",
                          flush=True)
                    try:
                        cluster.start_replica(i)
                    except (RuntimeError, TimeoutError, OSError) as exc:
                        # The others keep serving; the next round tries again.
                        print(f"replica{i + 1} did not start: {exc}", flush=True)
                    pidfile.write_text(json.dumps({"cluster": os.getpid(),
                                                   "children": cluster.pids()}))
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        cluster.stop()
        pidfile.unlink(missing_ok=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", nargs="?", choices=["run", "stop"], default="run")
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--port", type=int, default=8501, help="the load balancer's port")
    p.add_argument("--session-ttl", type=int, default=120,
                   help="Streamlit's server.disconnectedSessionTTL on every replica")
    p.add_argument("--workdir", type=pathlib.Path, default=WORKDIR)
    args = p.parse_args(argv)
    if args.replicas < 1:
        p.error(f"--replicas must be at least 1, got {args.replicas}")
    if args.command == "stop":
        return _stop_running(args.workdir)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
