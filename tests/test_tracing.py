"""One trace from CRM's request to the messages the order sends: a real API server, a real
worker on the session's dev server, real NATS. The spans are read from an in-memory exporter
on the process's tracer provider (o2a/telemetry.py), the messages from the bus."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from o2a import ids, telemetry
from o2a.bus import MSG_ID
from o2a.config import Settings
from o2a.errors import InputError
from o2a.models import OrderState
from o2a.ports import Destination
from tests.support import (
    StartWorker,
    acked,
    bus_connection,
    bus_messages,
    closed,
    running_api,
    running_listener,
    same_client,
    sample_document,
)

AIA = "/aia/ProcessSalesOrderFulfillment"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this process ends during the test. The provider is the process's one, set
    once; the exporter, shut down afterwards, takes no more."""
    exporter = InMemorySpanExporter()
    telemetry.configure_tracing("o2a-test").add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


async def test_an_api_request_is_one_trace_to_the_messages_on_the_bus(
    client: Client,
    bus_settings: Settings,
    worker: StartWorker,
    order_number: str,
    spans: InMemorySpanExporter,
) -> None:
    caller = secrets.token_hex(16)
    traceparent = f"00-{caller}-{secrets.token_hex(8)}-01"
    async with (
        worker(bus_settings),
        running_api(client, bus_settings) as api,
        httpx.AsyncClient(base_url=api.url) as http,
    ):
        headers = api.headers("integrator", traceparent=traceparent)
        headers["Content-Type"] = "application/xml"
        created = await http.post(AIA, content=sample_document(order_number), headers=headers)
        assert created.status_code == 201, created.text
        assert (await closed(client, order_number)).state is OrderState.COMPLETED

    ours = [s for s in spans.get_finished_spans() if trace_id(s) == caller]
    names = {s.name for s in ours}
    assert "POST /aia/ProcessSalesOrderFulfillment" in names, names
    assert "StartWorkflow:CustomerOrderWorkflow" in names, names
    assert "RunWorkflow:CustomerOrderWorkflow" in names, names
    assert "RunWorkflow:ProvisioningOrderWorkflow" in names, names  # the SOM children
    som = {"RunActivity:announce_fulfill_and_report", "RunActivity:fulfill_and_report"}
    assert som | {"RunActivity:fulfill"} <= names, names  # SOM's steps, COM's inline calls
    assert f"publish {bus_settings.subject_prefix}.crm.salesorder.update" in names, names
    workflow_ids = {s.attributes.get("temporalWorkflowID") for s in ours if s.attributes}
    assert ids.order_workflow_id(order_number) in workflow_ids, workflow_ids
    assert any(str(w).startswith(ids.order_workflow_id(order_number) + "/") for w in workflow_ids)

    async with bus_connection(bus_settings) as connection:
        js = await connection.jetstream()
        for destination in (Destination.SOM_PROVISIONING_ORDER, Destination.CRM_ORDER_UPDATE):
            stored = await bus_messages(js, connection.subjects.of(destination))
            mine = [
                m for m in stored if ids.names_order((m.headers or {})["Nats-Msg-Id"], order_number)
            ]
            assert mine, destination
            for message in mine:
                parent = (message.headers or {}).get("traceparent", "")
                assert parent.split("-")[1:2] == [caller], (destination, message.headers)


async def test_a_bus_message_from_crm_is_one_trace_with_its_order(
    client: Client,
    bus_settings: Settings,
    worker: StartWorker,
    order_number: str,
    spans: InMemorySpanExporter,
) -> None:
    crm = secrets.token_hex(16)
    headers = {MSG_ID: f"EBM.{order_number}", "traceparent": f"00-{crm}-{secrets.token_hex(8)}-01"}
    async with (
        worker(bus_settings),
        running_listener(bus_settings, same_client(client)) as listener,
        bus_connection(bus_settings) as connection,
    ):
        js = await connection.jetstream()
        subject = connection.subjects.sales_order
        ack = await js.publish(subject, sample_document(order_number), headers=headers)
        await acked(connection, listener, ack.seq)
        assert (await closed(client, order_number)).state is OrderState.COMPLETED
    names = {s.name for s in spans.get_finished_spans() if trace_id(s) == crm}
    assert {f"process {subject}", "StartWorkflow:CustomerOrderWorkflow"} <= names, names
    assert {"RunWorkflow:ProvisioningOrderWorkflow", "RunActivity:fulfill"} <= names, names


def test_spans_nothing_exports_are_not_recorded_unless_the_sampler_variable_asks() -> None:
    quiet = telemetry.span_sampler([], {})
    assert quiet is not None
    described = quiet.get_description()
    assert described.startswith("ParentBased{root:AlwaysOffSampler,"), described
    assert "remoteParentSampled:AlwaysOnSampler" in described, described
    assert telemetry.span_sampler([], {"OTEL_TRACES_SAMPLER": "always_on"}) is None
    assert (
        telemetry.span_sampler(telemetry.span_exporters({"OTEL_TRACES_EXPORTER": "console"}), {})
        is None
    )


def test_exporters_follow_the_otel_variables() -> None:
    assert telemetry.span_exporters({}) == []
    assert telemetry.span_exporters({"OTEL_TRACES_EXPORTER": "none"}) == []
    console = telemetry.span_exporters({"OTEL_TRACES_EXPORTER": "console"})
    assert [type(e).__name__ for e in console] == ["ConsoleSpanExporter"]
    grpc = telemetry.span_exporters(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    )
    http = telemetry.span_exporters({"OTEL_TRACES_EXPORTER": "otlp,console"})
    assert [type(e).__module__.split(".")[-2] for e in grpc + http[1:]] == ["grpc", "http"]
    for exporter in grpc + http:
        exporter.shutdown()
    with pytest.raises(InputError, match="OTEL_TRACES_EXPORTER: unknown exporter 'jaeger'"):
        telemetry.span_exporters({"OTEL_TRACES_EXPORTER": "otlp,jaeger"})
    with pytest.raises(InputError, match="OTEL_EXPORTER_OTLP_PROTOCOL: unknown protocol"):
        telemetry.span_exporters(
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "udp"}
        )
