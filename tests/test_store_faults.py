"""Stores under real faults: a writer process killed mid-stream, a Redis server stopped and
restarted under a live store, a SQLite file that cannot be created. Real processes, no mocks."""

from __future__ import annotations

import os
import pathlib
import queue
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from conftest import RedisServer

from safestate.errors import StoreUnavailable
from safestate.stores import open_store

ACKS_BEFORE_KILL = 200

# Commits one key per transaction and acknowledges each commit only after it returned.
_WRITER = textwrap.dedent(
    """
    import sys

    from safestate.stores import open_store

    store = open_store(sys.argv[1])
    for i in range(1_000_000):  # bounded; the parent kills it long before the end
        store.commit("s", {f"k{i}": str(i).encode()})
        sys.stdout.write(f"ACK {i}\\n")
        sys.stdout.flush()
    """
)


def _read_lines(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)
    lines.put(None)  # end of stream


def _ack(line: str) -> int:
    word, number = line.split()
    assert word == "ACK"
    return int(number)


def test_sqlite_writer_killed_mid_stream_loses_no_acknowledged_commit(
    tmp_path: pathlib.Path,
) -> None:
    db_path = tmp_path / "crash.db"
    url = f"sqlite:///{db_path}"  # tmp_path is absolute: sqlite:////tmp/.../crash.db
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    stderr_path = tmp_path / "writer.stderr"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(script), url],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    acked: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(acked) < ACKS_BEFORE_KILL:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(acked)} acks in 60 s: {stderr_path.read_text()}"
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, f"writer exited early: {stderr_path.read_text()}"
            acked.append(_ack(line))
        assert proc.poll() is None, "the writer must still be writing when it is killed"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    # Acks already in the pipe when the kill landed were acknowledged too: read them all.
    reader.join(30)
    assert not reader.is_alive()
    while (line := lines.get_nowait()) is not None:
        if line.endswith("\n"):  # a line cut short by the kill acknowledges nothing
            acked.append(_ack(line))
    assert acked == list(range(len(acked)))

    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        raw.close()

    store = open_store(url)
    try:
        snap = store.load("s")
    finally:
        store.close()
    for i in acked:
        assert snap.values.get(f"k{i}") == str(i).encode(), f"acknowledged k{i} was lost"
    committed = len(snap.values)
    assert committed >= len(acked)
    # Each commit is all or nothing: one key per commit, in order, none half-written.
    assert set(snap.values) == {f"k{i}" for i in range(committed)}
    assert all(snap.values[f"k{i}"] == str(i).encode() for i in range(committed))


def test_redis_stopped_then_restarted_keeps_acknowledged_writes(tmp_path: pathlib.Path) -> None:
    server = RedisServer(tmp_path)  # our own server: this test stops it
    store = None
    try:
        store = open_store(server.url)
        acked: dict[str, bytes] = {}
        versions = []
        for i in range(50):
            versions.append(store.commit("s", {f"k{i}": str(i).encode()}))
            acked[f"k{i}"] = str(i).encode()  # acknowledged only once commit returned

        server.stop()
        with pytest.raises(StoreUnavailable) as failed_load:
            store.load("s")
        with pytest.raises(StoreUnavailable) as failed_commit:
            store.commit("s", {"unacknowledged": b"x"})  # not added to acked
        for failure in (failed_load.value, failed_commit.value):
            message = str(failure)
            assert server.url in message and failure.url == server.url
            assert "Redis server is running and reachable" in message

        server.start()  # same port, same dir: the append-only file is replayed
        snap = store.load("s")  # the same store object, on its very next call
        assert snap.values == acked
        assert snap.version == versions[-1] == versions[0] + len(acked) - 1
        assert store.commit("s", {"after": b"1"}, expected_version=snap.version) == snap.version + 1
        assert store.load("s").values == {**acked, "after": b"1"}
    finally:
        if store is not None:
            store.close()
        server.stop()


def test_sqlite_file_in_a_missing_directory_is_unavailable(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "state.db"
    url = f"sqlite:///{path}"
    with pytest.raises(StoreUnavailable) as info:
        open_store(url)
    assert str(path) in str(info.value)
    assert info.value.url == url
    assert isinstance(info.value.__cause__, sqlite3.Error)  # wrapped, not leaked raw
    assert not path.parent.exists()
