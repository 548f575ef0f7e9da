"""The lock registry: mutual exclusion holds while entries are created and freed."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from conftest import raised_in_thread, wait_for

from safestate._locks import LockRegistry, check_timeout
from safestate.errors import LockNotOwnedError, LockTimeoutError


class _State:
    """A session's state object, as the registry sees it (something to watch)."""


def test_freeing_entries_while_they_are_used_never_breaks_mutual_exclusion() -> None:
    registry = LockRegistry()
    counter = {"n": 0}
    threads, ops = 8, 2_000
    stop = threading.Event()

    def user() -> None:
        for _ in range(ops):
            entry = registry.locked("s1")
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
    entry = registry.locked("s1")
    assert registry.remove_if_free("s1") is False
    assert registry.sweep(lambda key: True) == 0
    assert registry.get("s1") is entry
    entry.release()
    assert registry.sweep(lambda key: True) == 1
    assert registry.get("s1") is None


def test_reentrant_and_timeout() -> None:
    registry = LockRegistry()
    outer = registry.locked("s1")
    inner = registry.locked("s1")
    assert inner is outer and outer.depth == 2
    error = raised_in_thread(lambda: registry.locked("s1", timeout=0.05))
    assert isinstance(error, LockTimeoutError)
    assert "this session's state within 0.05 s" in str(error)
    assert "s1" not in str(error)  # session ids resume sessions: never in messages
    inner.release()
    assert outer.held
    outer.release()
    assert not outer.held


def test_waits_are_counted_by_the_holder() -> None:
    registry = LockRegistry()
    entry = registry.locked("s1")
    done = threading.Event()

    def waiter() -> None:
        registry.locked("s1").release()
        done.set()

    t = threading.Thread(target=waiter)
    t.start()
    wait_for(lambda: entry.waiters == 1, "the waiter to block on the lock")
    entry.release()
    t.join(30)
    assert done.is_set()
    assert entry.waits == 1 and entry.wait_ns > 0


def test_a_wait_on_a_freed_entry_still_counts() -> None:
    registry = LockRegistry()
    entry = registry.locked("s1")
    t = threading.Thread(target=lambda: registry.locked("s1").release())
    t.start()
    wait_for(lambda: entry.waiters == 1, "the waiter to block on the lock")
    # Free the entry while the waiter waits on it: the waiter must count its wait anyway.
    entry.dead = True
    with registry._guard:
        del registry._entries["s1"]
    entry.release()
    t.join(30)
    _, _, _, waits, wait_ns = registry.totals()
    assert waits == 1 and wait_ns > 0


def test_timeouts_are_checked_and_bound_the_whole_call() -> None:
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError, match="timeout"):
            check_timeout(bad)
    with pytest.raises(TypeError, match="timeout"):
        check_timeout("1")  # type: ignore[arg-type]


def test_entry_keeps_the_latest_state_and_lets_go_when_freed() -> None:
    registry = LockRegistry()
    old, new = _State(), _State()
    registry.locked("s1", old).release()
    registry.locked("s1", new).release()  # AppTest reuses one id for a new state object
    entry = registry.get("s1")
    assert entry is not None and entry.record is not None and entry.record.state is new
    assert registry.sweep(lambda key: key == "s1") == 1
    assert registry.entries() == [] and entry.record is None and entry.dead


def test_registry_memory_per_session_stays_under_1_kib() -> None:
    import tracemalloc

    count = 10_000
    states = [_State() for _ in range(count)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        registry = LockRegistry()
        for i, state in enumerate(states):
            registry.locked(f"{i:08d}-0000-4000-8000-000000000000", state).release()
        per_session = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    assert per_session <= 1024
    # The estimate get_session_stats reports is within reach of the measurement.
    assert registry.memory_per_entry() <= 2 * per_session


def test_only_the_holder_may_release_and_the_lock_stays_held() -> None:
    registry = LockRegistry()
    with registry.locked("s1") as entry:
        error = raised_in_thread(entry.release)
        assert isinstance(error, LockNotOwnedError)
        assert "this session's state" in str(error) and "s1" not in str(error)
        assert entry.held and entry.depth == 1  # still this thread's
    assert not entry.held
