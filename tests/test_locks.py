"""The lock registry: mutual exclusion holds while entries are created and freed."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from safestate import LockTimeoutError
from safestate._locks import LockRegistry


class _State:
    """A session's state object, as the registry sees it (something to watch)."""


def test_freeing_entries_while_they_are_used_never_breaks_mutual_exclusion() -> None:
    registry = LockRegistry()
    counter = {"n": 0}
    threads, ops = 8, 2_000
    stop = threading.Event()

    def user() -> None:
        for _ in range(ops):
            entry = registry.acquire("s1")
            try:
                value = counter["n"]
                time.sleep(0)  # invite a thread switch inside the critical section
                counter["n"] = value + 1
            finally:
                entry.release()
            time.sleep(0)  # leave the lock free now and then, so the sweeper can free it

    def sweeper() -> None:
        while not stop.is_set():
            registry.remove_if_free("s1")
            time.sleep(0)

    # Switch threads every few bytecodes so that the sweeper lands between a user's
    # lookup and its acquire (checked: without the `dead` re-check this test fails).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        sweep = threading.Thread(target=sweeper)
        sweep.start()
        users = [threading.Thread(target=user) for _ in range(threads)]
        for t in users:
            t.start()
        for t in users:
            t.join(120)
        stop.set()
        sweep.join(30)
    finally:
        sys.setswitchinterval(interval)
    assert counter["n"] == threads * ops
    assert registry.cleaned > 0  # the sweeper really did free entries in between


def test_a_held_lock_is_never_freed() -> None:
    registry = LockRegistry()
    entry = registry.acquire("s1")
    assert registry.remove_if_free("s1") is False
    assert registry.sweep(lambda key: True) == 0
    assert registry.get("s1") is entry
    entry.release()
    assert registry.sweep(lambda key: True) == 1
    assert registry.get("s1") is None


def test_reentrant_and_timeout() -> None:
    registry = LockRegistry()
    outer = registry.acquire("s1")
    inner = registry.acquire("s1")
    assert inner is outer and outer.depth == 2
    errors: list[BaseException] = []

    def other() -> None:
        try:
            registry.acquire("s1", timeout=0.05)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(30)
    assert len(errors) == 1 and isinstance(errors[0], LockTimeoutError)
    assert "s1" in str(errors[0])
    inner.release()
    assert outer.held
    outer.release()
    assert not outer.held


def test_waits_are_counted_by_the_holder() -> None:
    registry = LockRegistry()
    entry = registry.acquire("s1")
    acquired = threading.Event()

    def waiter() -> None:
        registry.acquire("s1").release()
        acquired.set()

    t = threading.Thread(target=waiter)
    t.start()
    deadline = time.monotonic() + 10
    # The waiter is blocked once it has tried the lock; release then.
    while t.is_alive() and not acquired.is_set() and time.monotonic() < deadline:
        if entry._lock.locked():
            break
    entry.release()
    t.join(30)
    assert acquired.is_set()
    assert registry.get("s1") is not None
    assert entry.waits in (0, 1)  # 1 unless the waiter came after the release


def test_entry_keeps_the_latest_state_and_lets_go_when_freed() -> None:
    registry = LockRegistry()
    old, new = _State(), _State()
    registry.acquire("s1", old).release()
    registry.acquire("s1", new).release()  # AppTest reuses one id for a new state object
    assert registry.states() == [new]
    entry = registry.get("s1")
    assert entry is not None
    assert registry.sweep(lambda key: key == "s1") == 1
    assert registry.states() == [] and entry.state is None and entry.dead


@pytest.mark.parametrize("count", [10_000])
def test_registry_memory_stays_small(count: int) -> None:
    registry = LockRegistry()
    for i in range(count):
        registry.acquire(str(i)).release()
    assert registry.memory_per_entry() <= 1024
