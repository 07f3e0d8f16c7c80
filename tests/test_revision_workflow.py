"""Revisions and cancels of a running order, on a real Temporal dev server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from o2a import ids
from o2a.catalog import load_catalog
from o2a.config import Settings
from o2a.errors import OrderConflictError
from o2a.models import (
    ComponentState,
    CustomerOrder,
    FulfillmentStatus,
    ItemReference,
    OrderState,
    OrderStatus,
    SalesOrderLine,
    Specification,
)
from starters.operator import cancel_order, revise_order
from starters.submit import start_order
from tests.test_order_workflow import sample, wait_for_state
from workflows.customer_order import CustomerOrderWorkflow

FIXED_PLAN, MOBILE_PLAN = "1.1.1", "1.2.1"
BROADBAND_LINES = {"1.3", "1.3.1", "1.3.2", "1.3.3"}


def delayed(order: CustomerOrder, seconds: float) -> CustomerOrder:
    """Every product line takes ``seconds`` per step, so revisions land mid-flight."""
    for line in order.lines:
        line.item.specifications = [
            s for s in line.item.specifications if s.name != "SimulatedDelay"
        ]
        if line.item.product_class:
            line.item.specifications.append(
                Specification(name="SimulatedDelay", value=str(seconds))
            )
    return order


def revision(order: CustomerOrder, number: int) -> CustomerOrder:
    return order.model_copy(deep=True, update={"revision": number})


def set_spec(order: CustomerOrder, line_id: str, name: str, value: str) -> None:
    line = next(line for line in order.lines if line.id == line_id)
    line.item.specifications = [s for s in line.item.specifications if s.name != name]
    line.item.specifications.append(Specification(name=name, value=value))


async def step_calls(client: Client, workflow_id: str) -> list[dict[str, object]]:
    """The provisioning-step inputs of every run of a SOM child, in order."""
    calls = []
    async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(workflow_id, run_id=run.run_id).fetch_history()
        for event in history.events:
            if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                continue
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "run_provisioning_step":
                calls.append(json.loads(attrs.input.payloads[0].data))
    return calls


async def mid_flight(
    client: Client, settings: Settings, order: CustomerOrder, after: float = 1.5
) -> WorkflowHandle:
    """Start the order and return once it has been in progress for ``after`` seconds."""
    handle = await start_order(client, order, settings)
    await wait_for_state(handle, OrderState.IN_PROGRESS)
    await asyncio.sleep(after)
    return handle


async def query(handle: WorkflowHandle) -> OrderStatus:
    return await handle.query(CustomerOrderWorkflow.status)


async def test_revision_drops_changes_and_adds_mid_flight(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = delayed(sample("triple_play.xml", order_number), 0.4)
    revised = revision(order, 2)
    revised.lines = [line for line in revised.lines if line.id not in BROADBAND_LINES]
    set_spec(revised, FIXED_PLAN, "CallerIdPresentation", "Restricted")
    revised.lines.append(
        SalesOrderLine(
            id="1.2.3",
            parent_id="1.2",
            root_id="1",
            item=ItemReference(
                name="International Calls",
                type_code="PRODUCT",
                product_class="Mobile Service Feature Class",
            ),
        )
    )
    async with worker():
        handle = await start_order(client, order, settings)
        await wait_for_state(handle, OrderState.IN_PROGRESS)
        await asyncio.sleep(1.5)  # broadband designed and activated; more under way
        await revise_order(client, revised)
        result = await handle.result()

    assert result.state is OrderState.COMPLETED, result
    assert result.revision == 2
    assert [(r.number, r.outcome) for r in result.revisions] == [(2, "accepted")]
    lines = {line.id: line for line in result.lines}
    for line_id in BROADBAND_LINES:
        assert lines[line_id].status is FulfillmentStatus.CANCELLED, lines[line_id]
    for line_id in set(lines) - BROADBAND_LINES:
        assert lines[line_id].status is FulfillmentStatus.COMPLETE, lines[line_id]
    components = {c.id: c for c in result.components}
    broadband = "Provision.BroadbandProvisioningSystem.bundle-1.3"
    assert components[broadband].state is ComponentState.CANCELLED
    assert result.status is FulfillmentStatus.COMPLETE

    prefix = f"order-{order_number}/"
    bb_calls = await step_calls(client, prefix + broadband)
    undone = {(c["line"]["id"], c["step"]) for c in bb_calls if str(c["step"]).startswith("undo-")}
    assert ("1.3.1", "undo-design") in undone, bb_calls

    fixed = await step_calls(client, prefix + "Provision.FixedProvisioningSystem.bundle-1.1")
    fixed_plan_steps = [c["step"] for c in fixed if c["line"]["id"] == FIXED_PLAN]
    assert "undo-design" in fixed_plan_steps and fixed_plan_steps.count("design") == 2, fixed
    assert [c["step"] for c in fixed if c["line"]["id"] == "1.1.2"] == [
        "design",
        "activate",
        "verify",
    ], "an untouched line was provisioned twice"

    mobile = await step_calls(client, prefix + "Provision.MobileProvisioningSystem.bundle-1.2")
    assert [c["step"] for c in mobile if c["line"]["id"] == MOBILE_PLAN] == [
        "design",
        "activate",
        "verify",
    ]
    assert [c["step"] for c in mobile if c["line"]["id"] == "1.2.3"] == [
        "design",
        "activate",
        "verify",
    ]

    crm = sorted(settings.outbox_dir.glob(f"USO.{order_number}.r2.u*.xml"))
    assert crm, "CRM heard nothing at revision 2"
    text = crm[-1].read_text()
    assert "<corecom:Number>2</corecom:Number>" in text


async def test_stale_revision_is_rejected_and_the_order_carries_on(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = delayed(sample("broadband_only.xml", order_number), 0.3)
    stale = revision(order, order.revision)
    set_spec(stale, stale.lines[-1].id, "Colour", "red")
    async with worker():
        handle = await start_order(client, order, settings)
        await revise_order(client, stale)
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert result.revision == order.revision
    assert len(result.revisions) == 1
    assert result.revisions[0].outcome == "rejected"
    assert "not higher" in (result.revisions[0].reason or "")
    assert all(line.status is FulfillmentStatus.COMPLETE for line in result.lines)
    rejection = [
        p
        for p in settings.outbox_dir.glob(f"USO.{order_number}.*.xml")
        if "REJECTED" in p.read_text()
    ]
    assert len(rejection) == 1


async def test_five_revisions_back_to_back_apply_in_order(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = delayed(sample("triple_play.xml", order_number), 0.2)
    revisions = []
    for number in range(2, 7):
        r = revision(order, number)
        set_spec(r, FIXED_PLAN, "CallerIdPresentation", f"v{number}")
        revisions.append(r)
    async with worker():
        handle = await start_order(client, order, settings)
        await wait_for_state(handle, OrderState.IN_PROGRESS)
        for r in revisions:
            await revise_order(client, r)
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert result.revision == 6
    assert [(r.number, r.outcome) for r in result.revisions] == [
        (n, "accepted") for n in range(2, 7)
    ]
    assert all(line.status is FulfillmentStatus.COMPLETE for line in result.lines)


async def test_unchanged_revision_plans_nothing(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = delayed(sample("broadband_only.xml", order_number), 0.3)
    async with worker():
        handle = await start_order(client, order, settings)
        await wait_for_state(handle, OrderState.IN_PROGRESS)
        await asyncio.sleep(1.0)
        await revise_order(client, revision(order, order.revision + 1))
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert [(r.number, r.outcome) for r in result.revisions] == [(order.revision + 1, "accepted")]
    provisioning = [c for c in result.components if c.function == "Provision"]
    for component in provisioning:
        calls = await step_calls(client, ids.provisioning_workflow_id(order_number, component.id))
        steps = [c["step"] for c in calls]
        assert not any(str(s).startswith("undo-") for s in steps), steps
        assert steps.count("design") == len(component.lines), steps


async def test_cancel_mid_flight_undoes_everything(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = delayed(sample("triple_play.xml", order_number), 1.0)
    async with worker():
        handle = await mid_flight(client, settings, order)
        await cancel_order(client, order_number, "customer changed their mind")
        result = await handle.result()
    assert result.state is OrderState.CANCELLED
    assert result.status is FulfillmentStatus.CANCELLED
    assert all(line.status is FulfillmentStatus.CANCELLED for line in result.lines)
    assert all(c.state is ComponentState.CANCELLED for c in result.components)
    for component in (c for c in result.components if c.function == "Provision"):
        calls = await step_calls(client, ids.provisioning_workflow_id(order_number, component.id))
        done = {(c["line"]["id"], c["step"]) for c in calls}
        for line_id, step in list(done):
            if not str(step).startswith("undo-"):
                assert (line_id, f"undo-{step}") in done, (component.id, line_id, step)
    crm = sorted(settings.outbox_dir.glob(f"USO.{order_number}.*.xml"))
    assert "CANCELLED" in crm[-1].read_text()


async def test_cancel_before_start_and_after_completion(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = sample("broadband_only.xml", order_number)
    handle = await start_order(client, order, settings)  # no worker yet: nothing has started
    await cancel_order(client, order_number, None)
    async with worker():
        result = await handle.result()
    assert result.state is OrderState.CANCELLED
    assert not list(settings.outbox_dir.glob(f"PPO.{order_number}.*"))

    second = sample("broadband_only.xml", order_number + "B")
    async with worker():
        done = await (await start_order(client, second, settings)).result()
    assert done.state is OrderState.COMPLETED
    with pytest.raises(OrderConflictError, match="completed"):
        await cancel_order(client, second.order_number, None)


async def test_revision_then_cancel_ends_cancelled(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = delayed(sample("triple_play.xml", order_number), 0.3)
    r2 = revision(order, 2)
    set_spec(r2, FIXED_PLAN, "CallerIdPresentation", "Restricted")
    async with worker():
        handle = await start_order(client, order, settings)
        await wait_for_state(handle, OrderState.IN_PROGRESS)
        await revise_order(client, r2)
        await cancel_order(client, order_number, "raced")
        result = await handle.result()
    assert result.state is OrderState.CANCELLED
    assert [r.outcome for r in result.revisions] == ["accepted", "cancelled"]
    assert all(line.status is FulfillmentStatus.CANCELLED for line in result.lines)


def hard_provisioning(settings: Settings, tmp_path: Path) -> Settings:
    """The test's settings with a catalog whose provisioning has a hard point of no return."""
    catalog = json.loads(load_catalog().model_dump_json())
    catalog["fulfillment_functions"]["Provision"]["point_of_no_return_kind"] = "hard"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return Settings(
        task_queue=settings.task_queue,
        outbox_dir=settings.outbox_dir,
        catalog_path=path,
        ui_url=settings.ui_url,
    )


async def wait_for_ponr(handle: WorkflowHandle, line_id: str) -> None:
    while not {line.id: line for line in (await query(handle)).lines}[line_id].point_of_no_return:
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("change", ["revision", "cancel"])
async def test_hard_point_of_no_return_refuses_the_change(
    client: Client,
    settings: Settings,
    worker: Callable,
    order_number: str,
    tmp_path: Path,
    change: str,
) -> None:
    hard = hard_provisioning(settings, tmp_path)
    order = delayed(sample("broadband_only.xml", order_number), 0.5)
    r2 = revision(order, 2)
    plan_line = next(x for x in r2.lines if x.item.product_class == "Broadband Service Plan Class")
    set_spec(r2, plan_line.id, "Speed", "2000 Mbps")
    async with worker(hard):
        handle = await start_order(client, order, hard)
        await asyncio.wait_for(wait_for_ponr(handle, plan_line.id), 30)  # activated
        if change == "revision":
            await revise_order(client, r2)
        else:
            await cancel_order(client, order_number, "too late")
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert result.revision == order.revision
    assert result.revisions[0].outcome == "rejected"
    assert "hard point of no return" in (result.revisions[0].reason or "")
    assert all(line.status is FulfillmentStatus.COMPLETE for line in result.lines)


async def function_steps(handle: WorkflowHandle) -> list[tuple[str, str]]:
    """(component, step) of every inline fulfillment call in the order's own history."""
    history = await handle.fetch_history()
    calls = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attrs = event.activity_task_scheduled_event_attributes
        if attrs.activity_type.name == "run_order_function":
            call = json.loads(attrs.input.payloads[0].data)
            calls.append((call["component_id"], call["step"]))
    return calls


async def test_cancel_after_billing_started_undoes_billing_first(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = delayed(sample("triple_play.xml", order_number), 0.5)
    init_billing = "InitiateBilling.BillingSystem.order"
    async with worker():
        handle = await start_order(client, order, settings)
        while True:
            states = {c.id: c.state for c in (await query(handle)).components}
            if states.get(init_billing) is ComponentState.COMPLETED:
                break
            await asyncio.sleep(0.1)
        await cancel_order(client, order_number, "after billing started")
        # A revision queued behind the cancel is answered, not lost.
        await revise_order(client, revision(order, 2))
        result = await handle.result()
    assert result.state is OrderState.CANCELLED
    assert [(r.number, r.outcome) for r in result.revisions] == [(1, "cancelled"), (2, "rejected")]
    steps = await function_steps(handle)
    assert (init_billing, "undo-billing") in steps
    assert ("SyncCustomer.BillingSystem.order", "undo-sync") in steps
    # Billing depended on the customer sync: it is undone first.
    assert steps.index((init_billing, "undo-billing")) < steps.index(
        ("SyncCustomer.BillingSystem.order", "undo-sync")
    )


async def test_second_revision_while_a_dropped_component_still_undoes(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = delayed(sample("triple_play.xml", order_number), 1.0)
    r2 = revision(order, 2)
    r2.lines = [line for line in r2.lines if line.id not in BROADBAND_LINES]
    r3 = revision(r2, 3)
    set_spec(r3, FIXED_PLAN, "CallerIdPresentation", "Restricted")
    async with worker():
        handle = await mid_flight(client, settings, order, after=2.5)
        await revise_order(client, r2)
        await revise_order(client, r3)
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert [(r.number, r.outcome) for r in result.revisions] == [(2, "accepted"), (3, "accepted")]
    components = {c.id: c.state for c in result.components}
    assert (
        components["Provision.BroadbandProvisioningSystem.bundle-1.3"] is ComponentState.CANCELLED
    )
    calls = await step_calls(
        client,
        ids.provisioning_workflow_id(
            order_number, "Provision.BroadbandProvisioningSystem.bundle-1.3"
        ),
    )
    done = {(c["line"]["id"], c["step"]) for c in calls}
    for line_id, step in list(done):
        if not str(step).startswith("undo-"):
            assert (line_id, f"undo-{step}") in done, (line_id, step)
