"""OpenTelemetry traces: set up once per process from the standard ``OTEL_*`` variables, and
the W3C trace context carried across o2a's doors and the bus.

Temporal carries the context itself: the ``TracingInterceptor`` (o2a/client.py) puts it in
the headers of every workflow start, signal, update, activity and child workflow. What is
o2a's own is either end of a trace: an HTTP request (o2a/api/app.py) or an inbound bus
message (``consuming``) opens it, and every message o2a publishes on NATS (``producing``)
carries it on in a ``traceparent`` header, so CRM and the fulfillment systems join it.

Export follows the OpenTelemetry environment specification: ``OTEL_TRACES_EXPORTER``
(a comma list of ``otlp``, ``console``, ``none``), ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``: ``grpc``, ``http/protobuf``), the OTLP exporters' own
``OTEL_EXPORTER_OTLP_*`` (endpoint, headers, certificate, timeout), ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_PROPAGATORS``. One departure: with neither
``OTEL_TRACES_EXPORTER`` nor an OTLP endpoint set, nothing is exported (rather than the
spec's default ``otlp`` to localhost), so a laptop without a collector logs no export errors,
and then spans are not recorded either (``OTEL_TRACES_SAMPLER`` can still ask for them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler
from opentelemetry.trace import SpanKind

from o2a.errors import InputError

EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_PROTOCOL = "http/protobuf"
"""The specification's default; a collector listens on 4318 for it, 4317 for gRPC."""

_provider: TracerProvider | None = None
_tracer = trace.get_tracer("o2a")
"""A proxy until the provider is set: spans made before go nowhere, after to the provider."""


def configure_tracing(service_name: str) -> TracerProvider:
    """The process's tracer provider, made by the first caller (whose ``service_name`` is
    the default of ``OTEL_SERVICE_NAME``). Tests add their own span processor to it.
    Raises InputError for a variable that names no exporter or protocol."""
    global _provider
    if _provider is None:
        exporters = span_exporters(os.environ)
        provider = TracerProvider(
            resource=_resource(service_name), sampler=span_sampler(exporters, os.environ)
        )
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _provider = provider
    return _provider


def span_sampler(exporters: list[SpanExporter], env: Mapping[str, str]) -> Sampler | None:
    """With nothing to export to, spans are not recorded (unless a caller's trace context
    says it samples, or ``OTEL_TRACES_SAMPLER`` asks): the trace context still travels,
    and recording spans nobody reads cost the worker about 6% of its CPU under load.
    None: the provider's own choice, by ``OTEL_TRACES_SAMPLER``."""
    if exporters or env.get("OTEL_TRACES_SAMPLER"):
        return None
    return ParentBased(ALWAYS_OFF)


def shutdown_tracing() -> None:
    """Export what is still buffered: the CLI leaves with ``os._exit``, skipping atexit."""
    if _provider is not None:
        _provider.shutdown()


def span_exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    names = _names(env)
    exporters: list[SpanExporter] = []
    if "console" in names:
        exporters.append(ConsoleSpanExporter())
    if "otlp" in names:
        exporters.append(_otlp_exporter(env))
    return exporters


def _names(env: Mapping[str, str]) -> set[str]:
    text = env.get("OTEL_TRACES_EXPORTER")
    if text is None:
        endpoints = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
        return {"otlp"} if any(env.get(name) for name in endpoints) else set()
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(EXPORTERS))
    if unknown:
        raise InputError(
            f"OTEL_TRACES_EXPORTER: unknown exporter {unknown[0]!r} (one of {', '.join(EXPORTERS)})"
        )
    return names - {"none"}


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    """The OTLP exporters read their endpoint, headers and TLS settings from the
    environment themselves."""
    variable = (
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
        if "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" in env
        else "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    protocol = env.get(variable, DEFAULT_PROTOCOL)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as OTLPHttpSpanExporter,
        )

        return OTLPHttpSpanExporter()
    raise InputError(f"{variable}: unknown protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")


def _resource(service_name: str) -> Resource:
    """``OTEL_SERVICE_NAME`` or a ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES`` wins over
    the process's own name."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    return resource


def trace_headers() -> dict[str, str]:
    """The current trace context as message headers (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def producing(subject: str, headers: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """A producer span around a publish on ``subject``; yields ``headers`` with its context."""
    with _tracer.start_as_current_span(
        f"publish {subject}", kind=SpanKind.PRODUCER, attributes=_messaging(subject)
    ):
        yield {**headers, **trace_headers()}


@contextmanager
def consuming(subject: str, headers: Mapping[str, str] | None) -> Iterator[trace.Span]:
    """A consumer span, child of the trace the message's headers carry (a new trace if
    none), current for the block: what the handler starts joins that trace."""
    with _tracer.start_as_current_span(
        f"process {subject}",
        context=propagate.extract(dict(headers or {})),
        kind=SpanKind.CONSUMER,
        attributes=_messaging(subject),
    ) as span:
        yield span


def _messaging(subject: str) -> dict[str, str]:
    return {"messaging.system": "nats", "messaging.destination.name": subject}
