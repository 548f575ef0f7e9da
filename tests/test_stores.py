"""Store behaviour, the same for every store: memory, a real SQLite file, a real Redis."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import RedisServer, wait_for

import safestate
from safestate.errors import StoreURLError, VersionConflict
from safestate.stores import Store, open_store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def test_round_trip_and_versions(store: Store) -> None:
    assert store.load("s1").version == 0 and store.load("s1").values == {}
    first = store.commit("s1", {"a": b"1", "b": b"\x00\xff"})
    assert first > time.time() * 1000 - 60_000  # a new namespace starts from the clock
    assert store.commit("s1", {"a": b"2"}, ["b"]) == first + 1
    snap = store.load("s1")
    assert snap.values == {"a": b"2"} and snap.version == first + 1
    assert store.get("s1", "a") == b"2" and store.get("s1", "b") is None
    assert store.get("nope", "a") is None
    assert store.load("other").values == {}  # namespaces never see each other


def test_a_version_conflict_writes_nothing(store: Store) -> None:
    v1 = store.commit("s1", {"a": b"1"})
    with pytest.raises(VersionConflict, match=f"version {v1}, not 0"):
        store.commit("s1", {"a": b"X", "new": b"Y"}, ["a"], expected_version=0)
    assert store.load("s1").values == {"a": b"1"} and store.load("s1").version == v1
    assert store.commit("s1", {"a": b"2"}, expected_version=v1) == v1 + 1


def test_a_version_read_before_a_drop_never_matches_again(store: Store) -> None:
    stale = store.commit("s1", {"a": b"1"})
    store.drop("s1")
    for _ in range(3):
        store.commit("s1", {"a": b"2"})
    with pytest.raises(VersionConflict):
        store.commit("s1", {"a": b"stale"}, expected_version=stale)


def test_drop_and_expiry(store: Store) -> None:
    store.commit("gone", {"a": b"1"})
    assert store.drop("gone") is True and store.drop("gone") is False
    store.commit("short", {"a": b"1"}, ttl=0.2)
    store.commit("long", {"a": b"1"}, ttl=60)
    wait_for(lambda: store.load("short").values == {}, "the short-lived namespace to expire",
             timeout=10)
    store.cleanup()
    assert store.load("long").values == {"a": b"1"}


def test_one_round_trip_per_call(store: Store) -> None:
    before = store.round_trips
    store.commit("s1", {"a": b"1", "b": b"2", "c": b"3"}, ["d"])
    store.load("s1")
    assert store.round_trips - before == 2


def _increment(store: Store, namespace: str, key: str) -> None:
    """Optimistic read-modify-write: what mutate/increment do against a store."""
    while True:
        snap = store.load(namespace)
        value = int(snap.values.get(key, b"0")) + 1
        try:
            store.commit(namespace, {key: str(value).encode()}, expected_version=snap.version)
            return
        except VersionConflict:
            continue


def test_optimistic_increments_from_8_threads_lose_nothing(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(8)] if "memory" not in store_url else \
        [open_store(store_url)] * 8
    ops = 150

    def body(s: Store) -> None:
        for _ in range(ops):
            _increment(s, "shared", "n")

    threads = [threading.Thread(target=body, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert int(stores[0].load("shared").values["n"]) == 8 * ops


# A separate interpreter (not multiprocessing: AppTest replaces __main__, which spawn re-imports).
_PROCESS = """
import sys
from safestate.errors import VersionConflict
from safestate.stores import open_store

store = open_store(sys.argv[1])
for _ in range(int(sys.argv[2])):
    while True:
        snap = store.load("shared")
        value = int(snap.values.get("n", b"0")) + 1
        try:
            store.commit("shared", {"n": str(value).encode()}, expected_version=snap.version)
            break
        except VersionConflict:
            continue
store.close()
"""


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_two_processes_lose_no_increment(
    kind: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest
) -> None:
    url = (f"sqlite:///{tmp_path / 'state.db'}" if kind == "sqlite"
           else request.getfixturevalue("redis_server").url)
    open_store(url).drop("shared")
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS, url, "300"]) for _ in range(2)]
    assert [p.wait(120) for p in procs] == [0, 0]
    assert int(open_store(url).load("shared").values["n"]) == 600


@pytest.mark.parametrize(
    "url", ["postgres://x", "sqlite://", "sqlite://host/x.db", "", "file:///x"]
)
def test_bad_urls_are_named(url: str) -> None:
    with pytest.raises(StoreURLError, match=r"memory://, sqlite:///path/to/file\.db"):
        open_store(url)


@pytest.mark.parametrize(
    "url",
    ["sqlite:///:memory:", "sqlite:///file::memory:?cache=shared",
     "sqlite:///file:state?mode=memory&cache=shared"],
)
def test_in_memory_sqlite_is_refused_at_configure(
    url: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # were it opened as a file name, the file would appear here
    before = safestate.configure(store="memory://", identity="session", persist=())
    store = safestate.current_app().configuration.store
    with pytest.raises(StoreURLError) as info:
        safestate.configure(store=url, persist=["a"])
    message = str(info.value)
    assert ("an in-memory SQLite database is per connection, so the pooled connections would "
            "not share it; use memory:// for state kept in this process") in message
    assert safestate.current_app().configuration.settings == before
    assert safestate.current_app().configuration.store is store
    assert list(tmp_path.iterdir()) == []


def test_redis_prefixes_keep_apps_apart(redis_server: RedisServer) -> None:
    one, two = (open_store(f"{redis_server.url}?prefix={app}") for app in ("app1", "app2"))
    one.commit("shared", {"a": b"1"})
    assert two.load("shared").values == {}
    assert one.load("shared").values == {"a": b"1"}
    one.drop("shared")
