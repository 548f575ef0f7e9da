"""Metrics and logs: off by default, exact when on, never carrying a user's values."""

from __future__ import annotations

import logging
import pathlib
import socket
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Server, free_port, run_app, wait_for
from prometheus_client import CollectorRegistry
from streamlit_client import StreamlitSession

import safestate
from safestate import _events
from safestate._locks import LockRegistry
from safestate.stores import open_store

HERE = pathlib.Path(__file__).parent


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    """Metrics on, into a registry of this test's own; off again afterwards."""
    reg = CollectorRegistry()
    safestate.monitoring.enable_metrics(registry=reg)
    yield reg
    safestate.monitoring.disable_metrics()


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels) or 0.0


def test_metrics_are_off_by_default() -> None:
    assert not safestate.monitoring.metrics_enabled()
    assert (_events.lock_wait, _events.store_call, _events.error) == (None, None, None)
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("safestate_sessions_tracked") is None


def test_operations_are_counted_exactly(registry: CollectorRegistry) -> None:
    def app() -> None:
        import safestate as ss

        for i in range(25):
            ss.safe_set("n", i)
        ss.increment("clicks")
        for _ in range(7):
            ss.shared.increment("total")

    session_before = value(registry, "safestate_operations_total", scope="session")
    shared_before = value(registry, "safestate_operations_total", scope="shared")
    run_app(app)
    assert value(registry, "safestate_operations_total", scope="session") - session_before == 26
    assert value(registry, "safestate_operations_total", scope="shared") - shared_before == 7
    assert value(registry, "safestate_sessions_tracked") >= 1


def test_a_lock_wait_is_observed_in_the_histogram(registry: CollectorRegistry) -> None:
    before = value(registry, "safestate_lock_wait_seconds_count", scope="shared")
    waits_before = value(registry, "safestate_lock_waits_total", scope="shared")
    waiter = threading.Thread(target=safestate.shared.increment, args=("waited",))
    with safestate.shared.session_lock():
        waiter.start()
        wait_for(lambda: safestate.shared.stats()["lock_waiters"] == 1,
                 "the waiter to block on the lock")
    waiter.join(10)
    assert value(registry, "safestate_lock_wait_seconds_count", scope="shared") == before + 1
    assert value(registry, "safestate_lock_waits_total", scope="shared") == waits_before + 1
    assert value(registry, "safestate_lock_wait_seconds_sum", scope="shared") > 0


def test_lock_timeout_is_counted_and_logged_without_values(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    safestate.shared.safe_set("secret_note", "hunter2-value")
    before = value(registry, "safestate_errors_total", error="LockTimeoutError")
    outcome: list[BaseException] = []

    def contender() -> None:
        try:
            with safestate.shared.session_lock(timeout=0.05):
                pass
        except BaseException as exc:
            outcome.append(exc)

    caplog.set_level(logging.INFO, logger="safestate")
    with safestate.shared.session_lock():
        t = threading.Thread(target=contender)
        t.start()
        t.join(10)
    assert [type(e) for e in outcome] == [safestate.errors.LockTimeoutError]
    assert value(registry, "safestate_errors_total", error="LockTimeoutError") == before + 1
    assert "lock timeout" in caplog.text and "the shared state" in caplog.text
    assert "hunter2" not in caplog.text


def test_a_session_lock_timeout_is_one_error(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="safestate")
    locks = LockRegistry()
    before = value(registry, "safestate_errors_total", error="LockTimeoutError")
    holder = locks.locked("sid-1")
    outcome: list[BaseException] = []

    def contender() -> None:
        try:
            locks.locked("sid-1", timeout=0.05)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=contender)
    t.start()
    t.join(10)
    holder.release()
    assert [type(e) for e in outcome] == [safestate.errors.LockTimeoutError]
    assert "0.05" in str(outcome[0])  # the timeout asked for, not what was left of it
    # The registry's slow path waits on the entry with what is left: one error, not two.
    assert value(registry, "safestate_errors_total", error="LockTimeoutError") == before + 1
    assert "sid-1" not in caplog.text and "session " in caplog.text


def test_store_round_trips_and_latency(
    registry: CollectorRegistry, tmp_path: pathlib.Path
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        store.commit("ns", {"k": b"1"})
        store.load("ns")
        store.load("ns")
        with pytest.raises(safestate.errors.VersionConflict):
            store.commit("ns", {"k": b"2"}, expected_version=1)
    finally:
        store.close()
    ok = {"store": "sqlite", "outcome": "ok"}
    assert value(registry, "safestate_store_round_trips_total", operation="load", **ok) == 2
    # A refused commit is an answer, not a fault.
    assert value(registry, "safestate_store_round_trips_total", operation="commit", **ok) == 2
    assert value(registry, "safestate_store_latency_seconds_count", store="sqlite",
                 operation="load") == 2
    assert value(registry, "safestate_errors_total", error="VersionConflict") == 1


def test_store_faults_are_counted_and_logged_with_the_url_masked(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    caplog.set_level(logging.WARNING, logger="safestate")
    store = open_store(f"redis://:s3cret-pass@127.0.0.1:{port}/0?socket_timeout=1")
    try:
        with pytest.raises(safestate.StoreUnavailable):
            store.commit("ns", {"k": b"private-value"})
    finally:
        store.close()
    assert value(registry, "safestate_store_round_trips_total", store="redis",
                 operation="commit", outcome="failed") == 1
    assert value(registry, "safestate_errors_total", error="StoreUnavailable") == 1
    assert "store commit failed" in caplog.text
    assert "s3cret" not in caplog.text and "private-value" not in caplog.text


def test_recovery_events_are_logged_by_session_label(caplog: pytest.LogCaptureFixture) -> None:
    def app() -> None:
        import safestate as ss

        def broken() -> object:
            raise ConnectionError("password=swordfish refused")

        ss.register_dependency("db", broken, description="The database")
        ss.require("db")

    caplog.set_level(logging.INFO, logger="safestate")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(app, default_timeout=30).run()
    at.run()  # still down: logged when health changes, not on every rerun
    assert caplog.text.count("dependency 'db' could not be built: ConnectionError") == 1
    at.button(key="safestate_recovery_reset").click().run()
    text = caplog.text
    assert "recovery panel shown for db" in text
    assert "session reset" in text
    assert "swordfish" not in text  # an exception's message may carry the app's data
    assert "test session id" not in text and "session " in text


def test_metrics_are_served_on_the_chosen_port() -> None:
    reg = CollectorRegistry()
    port = free_port()
    try:
        assert safestate.monitoring.enable_metrics(port, registry=reg) is reg
        # every rerun calls it
        assert safestate.monitoring.enable_metrics(port, registry=reg) is reg
        with pytest.raises(ValueError, match="already on"):
            safestate.monitoring.enable_metrics(port + 1, registry=reg)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert "safestate_sessions_tracked" in body
        assert "safestate_operations_total" in body
    finally:
        safestate.monitoring.disable_metrics()
    assert not safestate.monitoring.metrics_enabled()


def test_a_taken_port_raises_and_enables_nothing() -> None:
    reg = CollectorRegistry()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}.*choose another port"):
            safestate.monitoring.enable_metrics(port, registry=reg)
    assert not safestate.monitoring.metrics_enabled()
    assert (_events.lock_wait, _events.store_call, _events.error) == (None, None, None)
    # Nothing stayed registered: the same registry takes the metrics again.
    try:
        assert safestate.monitoring.enable_metrics(registry=reg) is reg
    finally:
        safestate.monitoring.disable_metrics()


def test_disabling_empties_every_slot_and_the_registry() -> None:
    reg = CollectorRegistry()
    safestate.monitoring.enable_metrics(registry=reg)
    assert None not in (_events.lock_wait, _events.store_call, _events.error)
    safestate.monitoring.disable_metrics()
    assert (_events.lock_wait, _events.store_call, _events.error) == (None, None, None)
    assert list(reg.collect()) == []
    safestate.monitoring.disable_metrics()  # twice is fine


@pytest.mark.parametrize("bad", ["9100", 0, 70000, True, 1.5])
def test_a_bad_port_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="metrics port must be an int"):
        safestate.monitoring.enable_metrics(bad, registry=CollectorRegistry())
    assert not safestate.monitoring.metrics_enabled()


def scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_a_deployment_port_serves_live_sessions_and_their_cleanup(
    tmp_path: pathlib.Path,
) -> None:
    port = free_port()
    server = Server(HERE / "apps" / "isolation_app.py", tmp_path / "streamlit.log",
                    env={"SAFESTATE_METRICS_PORT": str(port)})
    try:
        sessions = [StreamlitSession(server.port) for _ in range(3)]
        for i, s in enumerate(sessions):
            assert s.run(f"name=u{i}").value("VISITS") == "1"
        m = scrape(port)
        assert m["safestate_sessions{status=active}"] == 3
        assert m["safestate_sessions_tracked"] == 3
        assert m["safestate_operations_total{scope=shared}"] == 3
        for s in sessions:
            s.close()
        # Ended after the disconnected TTL, then freed by the sweeper: no new session
        # arrives and a scrape does not sweep, so nothing else could free them.
        wait_for(lambda: scrape(port)["safestate_sessions_tracked"] == 0,
                 "the closed sessions to be freed", timeout=60)
        assert scrape(port)["safestate_sessions_cleaned_total"] == 3
    finally:
        server.stop()


def deployed(**settings: str) -> Any:
    """A fresh app whose deployment (secrets, environment) gives ``settings``."""
    return safestate.testing.fresh_app(deployment=lambda: settings)


def test_deployment_port_that_is_not_a_port_names_the_setting() -> None:
    with deployed(metrics_port="ninety") as app, pytest.raises(
            ValueError, match=r"SAFESTATE_METRICS_PORT.*'ninety'"):
        app.configuration.ensure()
    assert not safestate.monitoring.metrics_enabled()


def test_deployment_port_that_is_taken_is_logged_and_the_app_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="safestate")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with deployed(metrics_port=str(port)) as app:
            app.configuration.ensure()  # no exception: monitoring must not stop the app
    assert not safestate.monitoring.metrics_enabled()
    assert f"127.0.0.1:{port}" in caplog.text


def test_deployment_port_when_the_app_already_turned_metrics_on(
    caplog: pytest.LogCaptureFixture, registry: CollectorRegistry
) -> None:
    caplog.set_level(logging.INFO, logger="safestate")
    with deployed(metrics_port=str(free_port())) as app:
        app.configuration.ensure()  # the app's own enable_metrics() stands; no error
    assert safestate.monitoring.metrics_enabled()
    assert "metrics are already on" in caplog.text


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"registry": 5}, ["CollectorRegistry", "int"]),
    ({"registry": "default"}, ["CollectorRegistry", "str"]),
    ({"addr": 127001}, ["addr", "127.0.0.1"]),
])
def test_bad_metrics_arguments_are_named_errors(kwargs: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(safestate.errors.InvalidArgumentError) as info:
        safestate.monitoring.enable_metrics(**kwargs)
    for word in words:
        assert word in str(info.value)
    assert not safestate.monitoring.metrics_enabled()


def test_a_store_that_stays_down_logs_once_per_interval_with_a_count(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    from conftest import RedisServer

    server = RedisServer(tmp_path)  # our own: this test stops it
    store = open_store(server.url + "?socket_timeout=1")
    caplog.set_level(logging.INFO, logger="safestate")
    try:
        store.commit("ns", {"k": b"1"})
        server.stop()
        for _ in range(50):  # every session's every call fails while it is down
            with pytest.raises(safestate.StoreUnavailable):
                store.load("ns")
        faults = [r for r in caplog.records if "failed" in r.getMessage()]
        assert len(faults) == 1 and "store load failed" in faults[0].getMessage()
        assert store.faults is not None
        store.faults.interval = 0.0  # the interval has passed: the next fault is logged
        with pytest.raises(safestate.StoreUnavailable):
            store.load("ns")
        faults = [r for r in caplog.records if "failed" in r.getMessage()]
        assert len(faults) == 2 and "49 more fault(s)" in faults[1].getMessage()
        store.faults.interval = 3600.0
        for _ in range(5):
            with pytest.raises(safestate.StoreUnavailable):
                store.load("ns")
        server.start()
        assert store.load("ns").values == {"k": b"1"}  # the store answers again: said once
        back = [r for r in caplog.records if "answers again" in r.getMessage()]
        assert len(back) == 1 and "5 more fault(s)" in back[0].getMessage()
        store.load("ns")
        assert len([r for r in caplog.records if "answers again" in r.getMessage()]) == 1
    finally:
        store.close()
        server.stop()
