"""Opt-in Prometheus metrics: ``enable_metrics(port=9100)``.

Counts that safestate keeps anyway (operations, lock waits, sessions) are read
when Prometheus scrapes, by a collector, so they cost nothing between scrapes.
What needs a timer (how long a lock wait or a store round trip took) and errors
are reported through the slots in ``_events``, which are empty until metrics are
enabled and only looked at on paths that are already slow. Every metric is
labelled by scope, store, operation or error class: never by session, key or value.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _events
from .errors import InvalidArgumentError, quote

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

Stats = Callable[[], dict[str, Any]]

#: Seconds; from an uncontended hand-over (microseconds) to a stuck holder.
WAIT_BUCKETS = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0)
#: Seconds; from an in-memory store (microseconds) to a store that is timing out.
STORE_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25,
                 0.5, 1.0, 5.0)


@dataclass
class _Enabled:
    registry: CollectorRegistry
    port: int | None
    addr: str
    collectors: list[Any]
    server: Any = None


_lock = threading.Lock()
_enabled: _Enabled | None = None
#: Where scrapes read the counters: the package's app's ``get_session_stats`` without a sweep.
_source: Stats | None = None


def watch(stats: Stats) -> None:
    """Read the counters scrapes report from ``stats`` (the app the package uses now).

    Called by the package when it puts an app in place; metrics that are on switch over.
    """
    global _source
    _source = stats


def enable_metrics(
    port: int | None = None,
    *,
    addr: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
) -> CollectorRegistry:
    """Collect safestate's metrics in ``registry`` (default: prometheus_client's) and, given a
    ``port``, serve them at http://addr:port/metrics; return the registry.

    Safe to call on every script run: a repeat with the same arguments does nothing.
    Raises ImportError without prometheus_client, InvalidArgumentError (a ValueError and
    TypeError) for a bad port, registry or addr, ValueError when metrics are already on
    with other arguments, OSError when the port is taken
    (nothing is enabled then).
    """
    global _enabled
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError("safestate metrics need prometheus_client: "
                          "pip install 'streamlit-safestate[metrics]'") from exc
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 < port < 65536):
        raise InvalidArgumentError(f"metrics port must be an int from 1 to 65535, got "
                                   f"{quote(port)}")
    if registry is not None and not isinstance(registry, prometheus_client.CollectorRegistry):
        raise InvalidArgumentError(
            "enable_metrics(registry=...) takes a prometheus_client.CollectorRegistry (or "
            f"None for the default one), got {type(registry).__name__}")
    if not isinstance(addr, str) or not addr:
        raise InvalidArgumentError(f"enable_metrics(addr=...) takes a host address such as "
                                   f"'127.0.0.1', got {quote(addr)}")
    target = registry if registry is not None else prometheus_client.REGISTRY
    with _lock:
        if _enabled is not None:
            if (_enabled.registry, _enabled.port, _enabled.addr) != (target, port, addr):
                raise ValueError(
                    f"safestate metrics are already on (port {_enabled.port}, addr "
                    f"{_enabled.addr!r}); call disable_metrics() first to change them")
            return target
        enabled = _register(target, port, addr)
        if port is not None:
            try:
                enabled.server, _ = prometheus_client.start_http_server(
                    port, addr=addr, registry=target)
            except OSError as exc:
                _unregister(enabled)
                raise OSError(exc.errno, f"safestate metrics could not be served on "
                                         f"{addr}:{port}: {exc.strerror}; choose another "
                                         "port") from exc
        _enabled = enabled
        return target


def disable_metrics() -> None:
    """Stop collecting and serving safestate's metrics (a no-op when they are off)."""
    global _enabled
    with _lock:
        if _enabled is None:
            return
        enabled, _enabled = _enabled, None
        _unregister(enabled)
        if enabled.server is not None:
            enabled.server.shutdown()
            enabled.server.server_close()


def metrics_enabled() -> bool:
    """Whether enable_metrics() is in force."""
    return _enabled is not None


def _register(registry: CollectorRegistry, port: int | None, addr: str) -> _Enabled:
    from prometheus_client import Counter, Histogram

    def made(metric: Any) -> Any:
        collectors.append(metric)
        return metric

    collectors: list[Any] = []
    try:
        lock_wait = made(Histogram(
            "safestate_lock_wait_seconds", "How long a call waited for a lock it then took.",
            ["scope"], buckets=WAIT_BUCKETS, registry=registry))
        store_latency = made(Histogram(
            "safestate_store_latency_seconds", "Duration of one store round trip.",
            ["store", "operation"], buckets=STORE_BUCKETS, registry=registry))
        store_calls = made(Counter(
            "safestate_store_round_trips", "Store round trips, by outcome.",
            ["store", "operation", "outcome"], registry=registry))
        errors = made(Counter(
            "safestate_errors", "safestate errors raised, by class, those safestate handles "
            "itself included (a VersionConflict that mutate() retried, a dependency "
            "is_ready() found not ready).", ["error"], registry=registry))
        state = made(_StateCollector())
        registry.register(state)
    except BaseException:
        _unregister(_Enabled(registry, port, addr, collectors))
        raise

    # Label children looked up once: a lock wait is observed while the lock is held.
    waits = {scope: lock_wait.labels(scope) for scope in ("session", "shared")}
    stores: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    def on_wait(scope: str, seconds: float) -> None:
        waits[scope].observe(seconds)

    def on_store(store: str, operation: str, seconds: float, failed: bool) -> None:
        children = stores.get((store, operation))
        if children is None:
            children = stores[store, operation] = (
                store_latency.labels(store, operation),
                store_calls.labels(store, operation, "ok"),
                store_calls.labels(store, operation, "failed"))
        children[0].observe(seconds)
        children[2 if failed else 1].inc()

    def on_error(name: str) -> None:
        errors.labels(name).inc()

    _events.lock_wait, _events.store_call, _events.error = on_wait, on_store, on_error
    return _Enabled(registry, port, addr, collectors)


def _unregister(enabled: _Enabled) -> None:
    _events.lock_wait = _events.store_call = _events.error = None
    for collector in enabled.collectors:
        with contextlib.suppress(KeyError):  # never registered (it failed half-way)
            enabled.registry.unregister(collector)


class _StateCollector:
    """Reads safestate's own counters when Prometheus scrapes (from the ``watch``ed app)."""

    def describe(self) -> list[Metric]:
        # Given, so registering does not run a collection at import time.
        return list(self._families(None))

    def collect(self) -> Iterator[Metric]:
        # Without sweeping: a scrape must not be what frees ended sessions (the sweeper does).
        source = _source
        yield from self._families(None if source is None else source())

    @staticmethod
    def _families(stats: dict[str, Any] | None) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = stats or {}
        shared = s.get("shared", {})
        ops = CounterMetricFamily("safestate_operations", "safestate calls that took a lock.",
                                  labels=["scope"])
        waits = CounterMetricFamily("safestate_lock_waits",
                                    "Lock acquisitions that had to wait.", labels=["scope"])
        held = GaugeMetricFamily("safestate_locks_held", "Locks held right now.",
                                 labels=["scope"])
        sessions = GaugeMetricFamily("safestate_sessions",
                                     "Tracked sessions by what the runtime says of them.",
                                     labels=["status"])
        tracked = GaugeMetricFamily("safestate_sessions_tracked",
                                    "Sessions in the lock registry (live bookkeeping).")
        cleaned = CounterMetricFamily("safestate_sessions_cleaned",
                                      "Sessions whose bookkeeping was freed.")
        if stats is not None:
            ops.add_metric(["session"], s["operations"])
            ops.add_metric(["shared"], shared["operations"])
            waits.add_metric(["session"], s["lock_waits"])
            waits.add_metric(["shared"], shared["lock_waits"])
            held.add_metric(["session"], s["locks_held"])
            held.add_metric(["shared"], int(shared["lock_held"]))
            for status in ("active", "disconnected", "ended", "untold"):
                sessions.add_metric(["unknown" if status == "untold" else status],
                                    s[f"sessions_{status}"])
            tracked.add_metric([], s["sessions_tracked"])
            cleaned.add_metric([], s["sessions_cleaned"])
        yield from (ops, waits, held, sessions, tracked, cleaned)
