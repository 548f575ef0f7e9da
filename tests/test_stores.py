"""Store behaviour, the same for every store: memory, a real SQLite file, a real Redis."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import RedisServer, wait_for

import safestate
from safestate.errors import StoreURLError, VersionConflict
from safestate.stores import Committed, Store, open_store
from safestate.stores import sqlite as sqlite_store
from safestate.stores.base import EVERYTHING, Listener


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

    raised: list[BaseException] = []

    def body(s: Store) -> None:
        try:
            for _ in range(ops):
                _increment(s, "shared", "n")
        except BaseException as exc:  # a thread's error would otherwise be a mere warning
            raised.append(exc)

    threads = [threading.Thread(target=body, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not raised
    assert not any(t.is_alive() for t in threads)
    assert int(stores[0].load("shared").values["n"]) == 8 * ops


def _first_writes_at_once(url: str, count: int) -> list[BaseException]:
    """``count`` store objects for ``url``, each making its first commit at one moment; what
    they raised."""
    stores = [open_store(url) for _ in range(count)]
    at_once = threading.Barrier(count)
    raised: list[BaseException] = []

    def first_write(i: int, store: Store) -> None:
        at_once.wait(10)
        try:
            store.commit(f"own{i}", {"k": b"v"})
        except BaseException as exc:
            raised.append(exc)

    threads = [threading.Thread(target=first_write, args=(i, s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for store in stores:
        store.close()
    return raised


def test_sqlite_stores_opening_a_new_file_at_once_all_open_it(tmp_path: pathlib.Path) -> None:
    """Switching a new file to WAL meets another connection's switch with "database is
    locked" at once, SQLite's busy timeout notwithstanding (1 new file in 10 in CI)."""
    for attempt in range(30):
        raised = _first_writes_at_once(f"sqlite:///{tmp_path}/new{attempt}.db", 8)
        assert not raised, f"file {attempt}: {raised[0]!r}"


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


# -- change notifications: what other Store objects (processes) commit --------------------------


class Heard:
    """A subscriber: the changes it was called with, in order."""

    def __init__(self) -> None:
        self.changes: list[Committed] = []

    def __call__(self, change: Committed) -> None:
        self.changes.append(change)

    def wait(self, change: Committed, timeout: float = 20.0) -> None:
        wait_for(lambda: change in self.changes, f"{change} to be heard", timeout)


def _shared_url(kind: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> str:
    """A store URL several Store objects share: one SQLite file, or one Redis (a prefix of
    its own, so no other test's stores are heard)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return f"{server.url}?prefix=t{secrets.token_hex(4)}"


@pytest.fixture(params=["sqlite", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    return _shared_url(request.param, tmp_path, request)


@pytest.fixture
def two(shared_url: str) -> Iterator[tuple[Store, Store]]:
    """Two Store objects on one database, as two processes have."""
    a, b = open_store(shared_url), open_store(shared_url)
    yield a, b
    a.close()
    b.close()


def _thread(store: Store) -> threading.Thread:
    thread = store._listener.thread  # type: ignore[attr-defined]
    assert thread is not None
    return thread


def test_a_commit_is_heard_by_the_other_store_object_not_its_own(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    heard_a, heard_b = Heard(), Heard()
    a.subscribe(heard_a)
    b.subscribe(heard_b)
    v1 = a.commit("s", {"a": b"1", "b": b"2"})
    v2 = a.commit("s", {"a": b"3"}, ["b"])
    heard_b.wait(Committed("s", v2, ("a", "b")))
    # A namespace that starts afresh (new, or again after it expired) changed every key.
    assert heard_b.changes == [Committed("s", v1, None), Committed("s", v2, ("a", "b"))]
    v3 = b.commit("s", {"c": b"4"})
    heard_a.wait(Committed("s", v3, ("c",)))
    assert heard_a.changes == [Committed("s", v3, ("c",))]  # none of A's own commits
    v4 = a.commit("s", {"d": b"5"})
    heard_b.wait(Committed("s", v4, ("d",)))
    assert heard_b.changes[2:] == [Committed("s", v4, ("d",))]  # nor of B's own


def test_an_echo_is_heard_as_one(two: tuple[Store, Store]) -> None:
    # A write made by a run a live update started: the other replica must not rerun its
    # readers for it, or two replicas would rerun each other forever.
    a, b = two
    heard = Heard()
    b.subscribe(heard)
    v1 = a.commit("s", {"a": b"1"})
    v2 = a.commit("s", {"a": b"2"}, echo=True)
    heard.wait(Committed("s", v2, ("a",), echo=True))
    assert heard.changes == [Committed("s", v1, None), Committed("s", v2, ("a",), echo=True)]


@pytest.mark.parametrize("catches_up", [True, False])
def test_a_listener_slow_to_start_reports_a_gap_unless_its_loop_catches_up(
    catches_up: bool,
) -> None:
    # subscribe() waits LISTEN_WAIT for the loop to listen. A loop that starts later may have
    # missed changes, so everything is reported as changed; SQLite's poller reads on from
    # where its change log stood at subscribe() (a loaded machine made it late, and its
    # exact changes were lost), so for it a late start is no gap.
    go = threading.Event()
    change = Committed("s", 1, ("a",))

    def watch(stop: threading.Event) -> None:
        go.wait(30)  # starts listening after subscribe() stopped waiting for it
        listener.listening()
        listener.notify(change)
        stop.wait(30)

    store = open_store("memory://")
    listener = Listener(store, watch, catches_up=catches_up)
    heard = Heard()
    try:
        listener.subscribe(heard)  # returns after LISTEN_WAIT: the loop is not listening yet
        go.set()
        heard.wait(change)
        assert heard.changes == ([change] if catches_up else [EVERYTHING, change])
    finally:
        listener.close()
        store.close()


def test_a_drop_is_heard_with_every_key(two: tuple[Store, Store]) -> None:
    a, b = two
    heard = Heard()
    b.subscribe(heard)
    version = a.commit("s", {"a": b"1"})
    assert a.drop("s") is True
    heard.wait(Committed("s", 0, None))
    assert a.drop("s") is False  # nothing was there: nothing to hear
    after = a.commit("t", {"a": b"1"})
    heard.wait(Committed("t", after, None))
    assert heard.changes == [Committed("s", version, None), Committed("s", 0, None),
                             Committed("t", after, None)]


def test_sqlite_expired_namespaces_swept_are_heard(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    a, b = open_store(url), open_store(url)
    try:
        heard = Heard()
        b.subscribe(heard)
        a.commit("short", {"a": b"1"}, ttl=0.05)
        wait_for(lambda: a.load("short").version == 0, "the namespace to expire", timeout=10)
        assert a.cleanup() == 1
        heard.wait(Committed("short", 0, None))
    finally:
        a.close()
        b.close()


def test_closed_subscriptions_and_stores_call_back_no_more(two: tuple[Store, Store]) -> None:
    a, b = two
    first, second = Heard(), Heard()
    subscription = b.subscribe(first)
    b.subscribe(second)
    a.commit("s", {"a": b"1"})
    version = a.commit("s", {"a": b"2"})
    second.wait(Committed("s", version, ("a",)))
    first.wait(Committed("s", version, ("a",)))  # several subscribers, each called
    subscription.close()
    subscription.close()  # again: a no-op
    later = a.commit("s", {"a": b"3"})
    second.wait(Committed("s", later, ("a",)))
    assert Committed("s", later, ("a",)) not in first.changes
    thread = _thread(b)
    assert thread.is_alive()
    b.close()
    assert not thread.is_alive()  # joined by close()
    last = a.commit("s", {"a": b"4"})
    assert a.load("s").version == last
    assert Committed("s", last, ("a",)) not in second.changes


def test_a_callback_that_raises_stops_no_other(
    two: tuple[Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="safestate")
    a, b = two
    heard = Heard()

    def broken(change: Committed) -> None:
        raise RuntimeError(f"the value was {a.load('s').values}")  # quotes a value

    a.commit("s", {"visible_key": b"top-secret-value"})
    b.subscribe(broken)
    b.subscribe(heard)
    versions = [a.commit("s", {"visible_key": b"top-secret-value"}) for _ in range(3)]
    for version in versions:
        heard.wait(Committed("s", version, ("visible_key",)))
    assert _thread(b).is_alive()
    logged = [r.getMessage() for r in caplog.records if r.name == "safestate"]
    failures = [m for m in logged if "raised RuntimeError" in m]
    assert len(failures) == 1, logged  # the first; the rest are counted for the next line
    assert "broken" in failures[0] and "'visible_key'" in failures[0]
    assert not any("top-secret" in m for m in logged)


def test_a_commit_in_another_process_is_heard(shared_url: str) -> None:
    store = open_store(shared_url)
    try:
        heard = Heard()
        store.subscribe(heard)
        code = ("import sys; from safestate.stores import open_store; s = open_store(sys.argv[1]);"
                " s.commit('s', {'a': b'1'}); print(s.commit('s', {'b': b'2'}, ['a'])); s.close()")
        out = subprocess.run([sys.executable, "-c", code, shared_url], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        heard.wait(Committed("s", int(out), ("b", "a")))
    finally:
        store.close()


def test_memory_subscriptions_never_call_back() -> None:
    store = open_store("memory://")
    heard = Heard()
    subscription = store.subscribe(heard)
    store.commit("s", {"a": b"1"})
    store.drop("s")
    subscription.close()
    store.close()
    assert heard.changes == []


def test_redis_listener_reports_a_gap_after_a_restart(tmp_path: pathlib.Path) -> None:
    server = RedisServer(tmp_path)  # our own server: this test stops it
    stores: list[Store] = []
    try:
        a, b = (open_store(server.url) for _ in range(2))
        stores += [a, b]
        heard = Heard()
        b.subscribe(heard)
        version = a.commit("s", {"a": b"1"})
        heard.wait(Committed("s", version, None))
        thread = _thread(b)

        server.stop()
        late = Heard()
        c = open_store(server.url)
        stores.append(c)
        c.subscribe(late)  # with the server down: raises nothing, listens once it is back
        server.start()  # same port

        heard.wait(EVERYTHING)  # messages may have been lost while it was down
        late.wait(EVERYTHING)
        assert thread.is_alive() and _thread(b) is thread
        after = a.commit("s", {"a": b"2"})
        heard.wait(Committed("s", after, ("a",)))
        late.wait(Committed("s", after, ("a",)))
        assert heard.changes == [Committed("s", version, None), EVERYTHING,
                                 Committed("s", after, ("a",))]
    finally:
        for store in stores:
            store.close()
        server.stop()


def test_redis_change_messages_carry_key_names_never_values(redis_server: RedisServer) -> None:
    import redis

    prefix = f"t{secrets.token_hex(4)}"
    store = open_store(f"{redis_server.url}?prefix={prefix}")
    raw = redis.Redis.from_url(redis_server.url)
    pubsub = raw.pubsub()
    try:
        pubsub.subscribe(f"{prefix}:changes:0")
        first = pubsub.get_message(timeout=10)
        assert first is not None and first["type"] == "subscribe"
        first_version = store.commit("s", {"visible_key": b"top-secret-value"})
        version = store.commit("s", {"visible_key": b"top-secret-value"}, ["gone_key"])
        store.drop("s")
        messages = []
        while len(messages) < 3:
            message = pubsub.get_message(timeout=10)
            assert message is not None, messages
            messages.append(message["data"])
        assert not any(b"top-secret" in m for m in messages)
        origin = json.loads(messages[0])["o"]
        assert [json.loads(m) for m in messages] == [
            {"o": origin, "n": "s", "k": None, "v": first_version},
            {"o": origin, "n": "s", "k": ["visible_key", "gone_key"], "v": version},
            {"o": origin, "n": "s", "k": None, "v": 0},
        ]
    finally:
        pubsub.close()
        raw.close()
        store.close()


def test_sqlite_change_log_holds_key_names_never_values_and_is_pruned(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "PRUNE_EVERY", 10)
    monkeypatch.setattr(sqlite_store, "LOG_ROWS", 5)
    monkeypatch.setattr(sqlite_store, "LOG_SECONDS", 0.0)
    db_path = tmp_path / "state.db"
    store = open_store(f"sqlite:///{db_path}")
    try:
        for _ in range(25):
            store.commit("s", {"visible_key": b"top-secret-value"})
    finally:
        store.close()
    raw = sqlite3.connect(db_path)
    try:
        rows = raw.execute("SELECT * FROM safestate_changes").fetchall()
    finally:
        raw.close()
    # Pruned by the 10th and the 20th commit: rows 16..25 are left.
    assert [r[0] for r in rows] == list(range(16, 26))
    assert all(r[1] == "s" and r[3] == '["visible_key"]' for r in rows)
    assert not any("top-secret" in str(r) for r in rows)


def test_sqlite_replaced_file_is_heard_as_a_gap(tmp_path: pathlib.Path) -> None:
    db_path = tmp_path / "state.db"
    url = f"sqlite:///{db_path}?poll=0.02"
    a, b = open_store(url), open_store(url)
    try:
        heard = Heard()
        b.subscribe(heard)
        version = a.commit("s", {"a": b"1"})
        heard.wait(Committed("s", version, None))
        for suffix in ("-wal", "-shm", ""):
            os.remove(f"{db_path}{suffix}")
        heard.wait(EVERYTHING)  # the poller reopened the file now at the path
        after = a.commit("s", {"a": b"2"})
        heard.wait(Committed("s", after, None))  # new in the new file
        assert heard.changes == [Committed("s", version, None), EVERYTHING,
                                 Committed("s", after, None)]
    finally:
        a.close()
        b.close()


def test_sqlite_subscribe_while_out_of_reach_listens_once_it_is_back(
    tmp_path: pathlib.Path,
) -> None:
    folder = tmp_path / "later"
    url = f"sqlite:///{folder / 'state.db'}"
    a, b = open_store(url), open_store(url)
    try:
        heard = Heard()
        b.subscribe(heard)  # raises nothing: the poller retries
        assert _thread(b).is_alive()
        folder.mkdir()
        heard.wait(EVERYTHING)  # what was committed before it listened is unknown
        version = a.commit("s", {"a": b"1"})
        heard.wait(Committed("s", version, None))
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("poll", ["0", "-1", "abc", "nan", "inf", ""])
def test_sqlite_poll_must_be_a_positive_number(poll: str, tmp_path: pathlib.Path) -> None:
    with pytest.raises(StoreURLError, match=r"poll=.* is no positive number of seconds"):
        open_store(f"sqlite:///{tmp_path / 'state.db'}?poll={poll}")
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}?poll=0.05")
    assert store.poll == 0.05  # type: ignore[attr-defined]
    store.close()
