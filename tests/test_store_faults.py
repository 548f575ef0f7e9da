"""Stores under real faults: a writer process killed mid-stream, a Redis server stopped and
restarted under a live store, a SQLite file that cannot be created or that is deleted while
the app writes. Real processes, files and threads, no mocks."""

from __future__ import annotations

import logging
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
from collections.abc import Iterator, Mapping

import pytest
from conftest import RedisServer, run_app

from safestate.errors import StoreUnavailable
from safestate.stores import open_store
from safestate.stores.base import Snapshot

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
    store = open_store(url)  # a valid URL: the file is opened by the first call that needs it
    try:
        for call in (lambda: store.load("s"), lambda: store.commit("s", {"a": b"1"})):
            with pytest.raises(StoreUnavailable) as info:
                call()
            message = str(info.value)
            assert str(path) in message
            assert f"Check that the directory {str(path.parent)!r} exists" in message
            assert "disk not full" not in message
            assert info.value.url == url
            assert isinstance(info.value.__cause__, sqlite3.Error)  # wrapped, not leaked raw
            assert not path.parent.exists()
        path.parent.mkdir(parents=True)
        version = store.commit("s", {"a": b"1"})  # the same store object, on its next call
        assert store.load("s") == Snapshot({"a": b"1"}, version)
    finally:
        store.close()


def test_sqlite_out_of_reach_at_the_first_call_keeps_unpersisted_keys_working(
    tmp_path: pathlib.Path,
) -> None:
    folder = tmp_path / "missing"
    url = f"sqlite:///{folder / 'state.db'}"

    def app(url: str) -> None:
        import streamlit as st

        import safestate as ss

        ss.configure(store=url, identity=lambda: "someone", persist=["saved"])
        ss.safe_set("plain", 1)  # not persisted: works while the file is out of reach
        st.session_state["plain_read"] = ss.safe_get("plain")
        try:
            ss.safe_set("saved", 1)
        except ss.StoreUnavailable as exc:
            st.session_state["refused"] = str(exc)
            st.session_state["saved_after_refusal"] = "saved" in st.session_state
        st.markdown("PAGE START")
        with ss.guard():
            ss.safe_get("saved")
        st.markdown("PAGE END")

    at = run_app(app, url=url)
    assert at.session_state["plain"] == 1 and at.session_state["plain_read"] == 1
    assert f"Check that the directory {str(folder)!r} exists" in at.session_state["refused"]
    assert at.session_state["saved_after_refusal"] is False  # raised: nothing changed
    assert "Saved data is out of reach" in at.error[0].value
    assert f"that the directory {str(folder)!r} exists" in at.error[0].value
    assert [m.value for m in at.markdown] == ["PAGE START"]
    assert not folder.exists()


def _reopen_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "safestate" and r.getMessage().startswith("safestate: SQLite file")]


REMOVALS = pytest.mark.parametrize(
    "suffixes", [("",), ("-wal", "-shm", "")], ids=["db", "db-wal-shm"]
)


class _RemovesFilesWhenRead(Mapping[str, bytes]):
    """Values to commit that remove files the first time the store reads them: the files go
    while the commit's transaction is open."""

    def __init__(self, paths: list[str], values: dict[str, bytes]) -> None:
        self._paths = paths
        self._values = values

    def __getitem__(self, key: str) -> bytes:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        while self._paths:
            os.remove(self._paths.pop(0))
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@REMOVALS
def test_sqlite_write_into_a_file_removed_during_the_commit_is_refused(
    tmp_path: pathlib.Path, suffixes: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="safestate")
    db_path = tmp_path / "state.db"
    url = f"sqlite:///{db_path}"
    store = open_store(url)
    try:
        store.commit("s", {"a": b"1"})
        with pytest.raises(StoreUnavailable) as info:
            store.commit("s", _RemovesFilesWhenRead([f"{db_path}{x}" for x in suffixes],
                                                    {"b": b"2"}))
        message = str(info.value)
        assert (f"the file {str(db_path)!r} was removed or replaced while writing, so this "
                "write was not saved") in message
        assert "disk not full" not in message and info.value.url == url
        # The store works on, with no restart, on a new file: neither the write made before
        # the removal (in the removed file) nor the refused one.
        assert store.load("s") == Snapshot()
        version = store.commit("s", {"c": b"3"})
        assert store.load("s") == Snapshot({"c": b"3"}, version)
    finally:
        store.close()
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert raw.execute("SELECT ns, key, value FROM safestate_items").fetchall() == [
            ("s", "c", b"3")
        ]
    finally:
        raw.close()
    warnings = _reopen_warnings(caplog)
    assert len(warnings) == 1 and str(db_path) in warnings[0]


WRITERS = 4
LATE_COMMITS = 25  # commits each writer makes that start after the delete


@REMOVALS
def test_sqlite_file_deleted_mid_stream_keeps_every_commit_started_after(
    tmp_path: pathlib.Path, suffixes: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="safestate")
    db_path = tmp_path / "state.db"
    url = f"sqlite:///{db_path}"
    store = open_store(url)
    changed = threading.Condition()
    acked: list[tuple[str, float, float]] = []  # (key, started, returned) of each ack
    refused: list[tuple[float, StoreUnavailable]] = []  # (started, error)
    deleted: list[float] = []  # when the delete began and ended

    def writer(n: int) -> None:
        late = 0
        deadline = time.monotonic() + 60
        for i in range(100_000):  # bounded in count and time
            if late == LATE_COMMITS or time.monotonic() > deadline:
                return
            key = f"w{n}-{i}"
            started = time.monotonic()
            try:
                store.commit("s", {key: key.encode()})
            except StoreUnavailable as exc:
                with changed:
                    refused.append((started, exc))
                continue
            returned = time.monotonic()
            with changed:
                acked.append((key, started, returned))
                late += bool(deleted) and started > deleted[1]
                changed.notify_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    try:
        for t in threads:
            t.start()
        with changed:
            assert changed.wait_for(lambda: len(acked) >= 200, timeout=60), len(acked)
        began = time.monotonic()
        for suffix in suffixes:  # the main file last: with it, the whole database is gone
            os.remove(f"{db_path}{suffix}")
        with changed:
            deleted.extend([began, time.monotonic()])
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)

        late = {k for k, started, _ in acked if started > deleted[1]}
        early = {k for k, _, returned in acked if returned < deleted[0]}
        assert len(late) == WRITERS * LATE_COMMITS  # every writer wrote on after the delete
        assert [exc for started, exc in refused if started > deleted[1]] == []
        for _, exc in refused:  # commits in flight during the delete, into the old file
            assert (f"the file {str(db_path)!r} was removed or replaced while writing, so "
                    "this write was not saved") in str(exc)
            assert "disk not full" not in str(exc)

        assert db_path.exists()
        raw = sqlite3.connect(db_path)
        try:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            rows = dict(raw.execute("SELECT key, value FROM safestate_items WHERE ns = 's'"))
        finally:
            raw.close()
        fresh = open_store(url)
        try:
            snap = fresh.load("s")
        finally:
            fresh.close()
        assert snap.values == rows
        for key in late:
            assert rows.get(key) == key.encode(), f"{key} was acknowledged after the delete"
        assert early.isdisjoint(rows)  # the old file's writes are not replayed into the new one

        # The same store object works on, with no restart.
        version = store.commit("s", {"after": b"1"})
        assert store.load("s") == Snapshot({**rows, "after": b"1"}, version)
    finally:
        store.close()
    warnings = _reopen_warnings(caplog)
    assert len(warnings) == 1 and str(db_path) in warnings[0]
    assert not any("w0-" in w for w in warnings)  # the path, not keys or values


def test_sqlite_close_of_a_removed_database_leaves_the_new_one_at_its_path(
    tmp_path: pathlib.Path,
) -> None:
    """What retiring connections relies on: closing a connection to a database whose file was
    removed neither checkpoints into nor deletes the WAL now at that path."""
    db_path = tmp_path / "state.db"
    old = sqlite3.connect(db_path, isolation_level=None)
    new = None
    try:
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE t (v TEXT)")
        old.execute("INSERT INTO t VALUES ('old')")
        for suffix in ("", "-wal", "-shm"):
            os.remove(f"{db_path}{suffix}")
        new = sqlite3.connect(db_path, isolation_level=None)
        assert new.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
        new.execute("PRAGMA wal_autocheckpoint=0")  # the new rows stay in the new WAL
        new.execute("CREATE TABLE t (v TEXT)")
        new.execute("INSERT INTO t VALUES ('new')")
        old.execute("INSERT INTO t VALUES ('old again')")  # into the removed file
        old.close()
        assert os.path.getsize(f"{db_path}-wal") > 0
        reader = sqlite3.connect(db_path)
        try:
            assert reader.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert reader.execute("SELECT v FROM t").fetchall() == [("new",)]
        finally:
            reader.close()
    finally:
        old.close()
        if new is not None:
            new.close()
