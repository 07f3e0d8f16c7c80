"""The process's Temporal runtime and its Prometheus endpoint, and the bus's meters on it.

One runtime per process, made before the first client (``o2a/client.py`` connects with
it): the SDK's own metrics (workflow task latency, schedule-to-start, polls, ...) and
o2a's business metrics from the workflows' replay-safe meter (``workflows/order_metrics.py``)
are served at ``http://<bind>/metrics`` by the runtime's exporter. Without a port the
process keeps the SDK's default runtime: nothing is served, meters record nowhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from nats.aio.msg import Msg
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from o2a.errors import InputError
from o2a.server import ServerError

if TYPE_CHECKING:
    from o2a.bus import Subjects

METRICS_PORT_VARIABLE = "O2A_METRICS_PORT"
DEFAULT_PORT = 9464
"""Of `o2a up`'s worker endpoint: the port registered for OpenTelemetry's Prometheus
exporter, clear of Prometheus itself (9090)."""

DURATION_BUCKETS: Sequence[float] = (
    1,
    5,
    15,
    60,
    300,
    900,
    3600,
    4 * 3600,
    24 * 3600,
    7 * 24 * 3600,
    30 * 24 * 3600,
)
"""Seconds, from a quick inline call to a month-long future-dated order."""
BUCKETS: Mapping[str, Sequence[float]] = {
    "o2a_order_cycle_seconds": DURATION_BUCKETS,
    "o2a_component_duration_seconds": DURATION_BUCKETS,
}

_runtime: Runtime | None = None


def serve(port: int, host: str = "0.0.0.0") -> Runtime:
    """The process's runtime, exporting at ``host:port`` (once per process: a second call
    returns the first runtime). Counters get Prometheus's ``_total``; durations are
    seconds."""
    global _runtime
    if _runtime is None:
        exporter = PrometheusConfig(
            bind_address=f"{host}:{port}",
            counters_total_suffix=True,
            durations_as_seconds=True,
            histogram_bucket_overrides=BUCKETS,
        )
        try:
            _runtime = Runtime(telemetry=TelemetryConfig(metrics=exporter))
        except ValueError as exc:  # the port is taken
            raise ServerError(
                f"cannot serve metrics on port {port} ({exc}): choose another with "
                "--metrics-port or O2A_METRICS_PORT"
            ) from None
    return _runtime


def runtime() -> Runtime:
    """What every client of the process connects with."""
    return _runtime or Runtime.default()


def configured_port(environ: Mapping[str, str] = os.environ) -> int | None:
    """``O2A_METRICS_PORT``; None when unset."""
    raw = environ.get(METRICS_PORT_VARIABLE, "").strip()
    return metrics_port(raw, METRICS_PORT_VARIABLE) if raw else None


def metrics_port(raw: str, source: str) -> int:
    """A port from the command line or ``O2A_METRICS_PORT``; InputError otherwise."""
    if not raw.strip().isdecimal() or not 0 < int(raw) < 65536:
        raise InputError(f"{source} must be a port number from 1 to 65535, got {raw!r}")
    return int(raw)


def _meter() -> MetricMeter:
    return runtime().metric_meter


def bus_published(subjects: Subjects, subject: str) -> None:
    """A message stored on the bus (the broker's ack received), by stream."""
    _meter().create_counter("o2a_bus_published", "Messages published on the bus").add(
        1, {"stream": subjects.stream_of(subject)}
    )


def bus_fetched(consumer: str, batch: Sequence[Msg]) -> None:
    """Messages a consumer fetched, and its lag after them: the messages still waiting for
    it (JetStream's ``num_pending``, carried by every message, so read without a request;
    the last of a batch that emptied the stream says 0)."""
    if not batch:
        return
    attributes = {"consumer": consumer}
    meter = _meter()
    meter.create_counter("o2a_bus_consumed", "Messages read from the bus").add(
        len(batch), attributes
    )
    meter.create_gauge("o2a_bus_consumer_pending", "Messages waiting for a bus consumer").set(
        batch[-1].metadata.num_pending, attributes
    )
