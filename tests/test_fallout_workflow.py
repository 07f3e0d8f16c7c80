"""Fallout and operator actions (resolve, suspend, resume, abort) on a real dev server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from lxml import etree
from temporalio.client import Client, WorkflowExecutionStatus

from o2a import ids
from o2a.config import Settings
from o2a.errors import OrderConflictError
from o2a.models import ComponentState, CustomerOrder, FulfillmentStatus, OrderState
from starters.operator import (
    abort_order,
    cancel_order,
    resolve_order,
    resume_order,
    revise_order,
    suspend_order,
)
from starters.submit import start_order
from tests.test_order_workflow import sample, text_of, wait_for_state
from tests.test_revision_workflow import (
    delayed,
    mid_flight,
    query,
    revision,
    set_spec,
    step_calls,
)

FIXED = "Provision.FixedProvisioningSystem.bundle-1.1"
MOBILE = "Provision.MobileProvisioningSystem.bundle-1.2"
BROADBAND = "Provision.BroadbandProvisioningSystem.bundle-1.3"


def with_spec(order: CustomerOrder, line_id: str, name: str, value: str) -> CustomerOrder:
    set_spec(order, line_id, name, value)
    return order


async def test_fault_raises_fallout_messages_and_resolve_completes(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = with_spec(
        sample("triple_play.xml", order_number),
        "1.1.1",
        "SimulatedFault",
        "activate:PORT_UNAVAILABLE:1",
    )
    async with worker():
        handle = await start_order(client, order, settings)
        await wait_for_state(handle, OrderState.FAILED)
        while (await query(handle)).components and any(
            c.state is ComponentState.IN_PROGRESS for c in (await query(handle)).components
        ):
            await asyncio.sleep(0.2)
        status = await query(handle)
        assert status.state is OrderState.FAILED
        assert [(f.code, f.state, f.component) for f in status.fallouts] == [
            ("PORT_UNAVAILABLE", "open", FIXED)
        ]
        components = {c.id: c.state for c in status.components}
        assert components[MOBILE] is ComponentState.COMPLETED  # independent work went on

        fallout_id = status.fallouts[0].id
        fault = etree.parse(str(settings.outbox_dir / f"FAULT.{fallout_id}.xml")).getroot()
        assert etree.QName(fault).localname == "Fault"
        assert text_of(fault, "Code") == ["PORT_UNAVAILABLE"]
        assert text_of(fault, "Severity") == ["ERROR"]
        assert ids.provisioning_order_message_id(order_number, 1, FIXED) in text_of(fault, "EBMID")
        assert text_of(fault, "CorrectiveAction")
        ticket = etree.parse(str(settings.outbox_dir / f"TT.{fallout_id}.xml")).getroot()
        assert etree.QName(ticket).localname == "CreateTroubleTicketEBM"

        with pytest.raises(OrderConflictError, match="has not failed"):
            await resolve_order(client, order_number, MOBILE)
        await resolve_order(client, order_number, FIXED)
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert [f.state for f in result.fallouts] == ["resolved"]
    assert all(line.status is FulfillmentStatus.COMPLETE for line in result.lines)


async def test_permanent_fault_then_fixing_revision_completes(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = with_spec(
        sample("triple_play.xml", order_number), "1.3.2", "SimulatedFault", "design:NO_STATIC_IP"
    )
    fixed = revision(order, 2)
    fixed.lines = [line for line in fixed.lines if line.id != "1.3.2"]
    async with worker():
        handle = await start_order(client, order, settings)
        await wait_for_state(handle, OrderState.FAILED)
        await revise_order(client, fixed)
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert result.revision == 2
    assert [f.state for f in result.fallouts] == ["resolved"]
    lines = {line.id: line.status for line in result.lines}
    assert lines["1.3.2"] is FulfillmentStatus.CANCELLED
    assert lines["1.3.1"] is FulfillmentStatus.COMPLETE


async def test_permanent_fault_then_cancel_compensates(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = with_spec(
        sample("triple_play.xml", order_number), "1.3.2", "SimulatedFault", "design:NO_STATIC_IP"
    )
    async with worker():
        handle = await start_order(client, order, settings)
        await wait_for_state(handle, OrderState.FAILED)
        await cancel_order(client, order_number, "cannot be fulfilled")
        result = await handle.result()
    assert result.state is OrderState.CANCELLED
    assert all(line.status is FulfillmentStatus.CANCELLED for line in result.lines)
    calls = await step_calls(client, ids.provisioning_workflow_id(order_number, MOBILE))
    assert {c["step"] for c in calls} >= {"design", "undo-design", "activate", "undo-activate"}


async def test_suspend_holds_new_steps_until_resume(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = delayed(sample("triple_play.xml", order_number), 0.5)
    async with worker():
        handle = await start_order(client, order, settings)
        await wait_for_state(handle, OrderState.IN_PROGRESS)
        await asyncio.sleep(0.3)
        await suspend_order(client, order_number)
        await wait_for_state(handle, OrderState.SUSPENDED)
        await asyncio.sleep(1.5)  # steps under way finish
        before = await step_calls(client, ids.provisioning_workflow_id(order_number, MOBILE))
        await asyncio.sleep(2.0)
        after = await step_calls(client, ids.provisioning_workflow_id(order_number, MOBILE))
        assert len(after) == len(before), "a new step started while suspended"
        assert (await query(handle)).state is OrderState.SUSPENDED
        with pytest.raises(OrderConflictError, match="suspended"):
            await suspend_order(client, order_number)
        await resume_order(client, order_number)
        result = await handle.result()
    assert result.state is OrderState.COMPLETED


async def test_abort_ends_at_once_without_compensation(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = delayed(sample("triple_play.xml", order_number), 1.0)
    async with worker():
        handle = await mid_flight(client, settings, order)
        await abort_order(client, order_number, "duplicate order")
        result = await handle.result()
    assert result.state is OrderState.ABORTED
    for component in (MOBILE, FIXED, BROADBAND):
        child = client.get_workflow_handle(ids.provisioning_workflow_id(order_number, component))
        assert (await child.describe()).status is not WorkflowExecutionStatus.RUNNING
        calls = await step_calls(client, child.id)
        assert not any(str(c["step"]).startswith("undo-") for c in calls)
    with pytest.raises(OrderConflictError, match="aborted"):
        await abort_order(client, order_number, None)


async def test_transient_outage_is_retried_without_fallout(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = with_spec(
        sample("broadband_only.xml", order_number), "1.1.1", "SimulatedOutage", "activate:2"
    )
    async with worker():
        result = await (await start_order(client, order, settings)).result()
    assert result.state is OrderState.COMPLETED
    assert result.fallouts == []
    assert not list(settings.outbox_dir.glob("FAULT.*"))


async def test_priority_maps_to_temporal_priority(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = sample("broadband_only.xml", order_number).model_copy(update={"priority": 9})
    handle = await start_order(client, order, settings)
    description = await handle.describe()
    assert description.raw_description.workflow_execution_info.priority.priority_key == 1
    await cancel_order(client, order_number, "priority test only")
    async with worker():
        assert (await handle.result()).state is OrderState.CANCELLED
