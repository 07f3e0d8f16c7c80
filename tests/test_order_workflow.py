"""CustomerOrderWorkflow and ProvisioningOrderWorkflow on a real Temporal dev server."""

from __future__ import annotations

import json

import pytest
from lxml import etree
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError

from o2a import ids, visibility
from o2a.config import Settings
from o2a.models import ComponentState, FulfillmentStatus, OrderState, Step
from tests.support import (
    PROV_FIXED,
    GatedFulfillment,
    StartWorker,
    held,
    messages,
    query,
    quick_triple_play,
    sample,
    set_spec,
    start,
    text_of,
    until,
    wait_for_state,
)
from workflows.contracts.customer_order import OperatorRequest
from workflows.customer_order import CustomerOrderWorkflow
from workflows.order_patches import NO_LOCAL_ACTIVITIES_PATCH

FUNCTION_STEPS = {
    "SyncCustomer": [Step.SYNC],
    "Provision": [Step.DESIGN, Step.ACTIVATE, Step.VERIFY],
    "Ship": [Step.SHIP],
    "InitiateBilling": [Step.BILLING],
    "FulfillBilling": [Step.BILLING],
}


async def test_triple_play_completes(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
    gated = GatedFulfillment()
    async with worker(fulfillment=gated):
        handle = await start(client, settings, order)
        result = await handle.result()

    assert result.state is OrderState.COMPLETED
    assert result.status is FulfillmentStatus.COMPLETE
    for line in result.lines:
        assert line.status is FulfillmentStatus.COMPLETE, line
        assert line.milestone, line
    provisioning = [c for c in result.components if c.function == "Provision"]
    assert {c.target_system for c in provisioning} == {
        "FixedProvisioningSystem",
        "MobileProvisioningSystem",
        "BroadbandProvisioningSystem",
    }
    assert {c.function for c in result.components} >= {
        "SyncCustomer",
        "Provision",
        "Ship",
        "InitiateBilling",
        "FulfillBilling",
    }
    assert all(c.state is ComponentState.COMPLETED for c in result.components)
    plans = [line for line in result.lines if line.product_class == "Mobile Service Plan Class"]
    assert plans and all("MSISDN" in line.data for line in plans)

    # One fulfillment call per step for all the lines of a component.
    for component in result.components:
        expected = FUNCTION_STEPS[component.function]
        calls = gated.steps(component.id)
        assert [step for _, step, _ in calls] == expected, component.id
        assert all(lines == component.lines for _, _, lines in calls), calls

    # One ProcessProvisioningOrderEBM per provisioning component, under the child's ID; each
    # child carries the order number as a search attribute.
    ppo = sorted(settings.outbox_dir.glob(f"PPO.{order_number}.*.xml"))
    assert len(ppo) == len(provisioning)
    for component in provisioning:
        child = client.get_workflow_handle(ids.provisioning_workflow_id(order_number, component.id))
        described = await child.describe()
        assert described.status is WorkflowExecutionStatus.COMPLETED
        assert described.typed_search_attributes.get(visibility.ORDER_NUMBER) == order_number

        # Each step reports with its own call; the last report is the component completed,
        # every line with its data (it reaches COM as the child's result).
        history = await child.fetch_history()
        called = [
            e.activity_task_scheduled_event_attributes.activity_type.name
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
        # the first also sends the component's ProvisioningOrderEBM
        assert called == ["announce_fulfill_and_report"] + ["fulfill_and_report"] * 2, called
        reports = messages(settings.outbox_dir, f"PFOU.{order_number}.r1.{component.id}")
        milestones = [text_of(report, "MilestoneCode")[0] for _, report in reports]
        assert milestones == ["PROVISION_DESIGNED", "PROVISION_ACTIVATED", "PROVISION_COMPLETE"]
        completed = reports[-1][1]
        assert text_of(completed, "Code") == ["COMPLETED"]
        assert text_of(completed, "ID")[2:] == component.lines  # after sender, component

    # CRM heard IN PROGRESS first and COMPLETE last, each message under its own EBMID.
    crm = messages(settings.outbox_dir, f"USO.{order_number}.r1")
    assert len(crm) == result.crm_updates_sent
    order_statuses = [text_of(m, "Code")[0] for _, m in crm]
    assert order_statuses[0] == "IN PROGRESS"
    assert order_statuses[-1] == "COMPLETE"
    for path, message in crm:
        assert etree.QName(message).localname == "UpdateSalesOrderEBM"
        assert text_of(message, "EBMID") == [path.stem]

    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(visibility.ORDER_STATE) == "completed"
    assert attrs.get(visibility.ORDER_STATUS) == "COMPLETE"


async def test_com_runs_no_local_activity(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """The decomposition and every CRM update are regular activities, whose results are
    events: a local activity's result reaches the workflow apart from its marker, later
    when a query was answered meanwhile, and the order then fails on replay
    (workflows/messages.py says how)."""
    async with worker():
        handle = await start(client, settings, quick_triple_play(order_number))
        result = await handle.result()

    assert result.state is OrderState.COMPLETED
    history = await handle.fetch_history()
    markers = [
        e.marker_recorded_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert [m.marker_name for m in markers] == ["core_patch"]
    [patch] = markers[0].details["patch-data"].payloads
    assert json.loads(patch.data)["id"] == NO_LOCAL_ACTIVITIES_PATCH
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled.count("decompose_order") == 1
    crm = messages(settings.outbox_dir, f"USO.{order_number}.r1")
    assert scheduled.count("send_sales_order_update") == len(crm) == result.crm_updates_sent
    assert text_of(crm[-1][1], "Code")[0] == "COMPLETE"


async def test_second_start_of_an_order_is_refused(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """The order's workflow ID is its business key: one order, one workflow, ever."""
    order = sample("broadband_only.xml", order_number)
    async with held(client, settings, worker, order, Step.DESIGN) as (handle, _, gate):
        with pytest.raises(WorkflowAlreadyStartedError):
            await start(client, settings, order)
        gate.release()
        await handle.result()
        with pytest.raises(WorkflowAlreadyStartedError):
            await start(client, settings, order)
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert len(runs) == 1


async def test_fault_waits_in_failed_state_until_resolved(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
    voice = next(
        line for line in order.lines if line.item.product_class == "Fixed Service Plan Class"
    )
    set_spec(order, voice.id, "SimulatedFault", "activate:PORT_UNAVAILABLE:1")
    async with worker():
        handle = await start(client, settings, order)
        status = await wait_for_state(handle, OrderState.FAILED)
        assert [f.code for f in status.fallouts] == ["PORT_UNAVAILABLE"]
        assert status.fallouts[0].state == "open"
        assert status.fallouts[0].step == "activate"
        by_id = {line.id: line for line in status.lines}
        assert by_id[voice.id].status is FulfillmentStatus.FAILED
        assert status.status is FulfillmentStatus.FAILED

        async def settled() -> bool:
            status = await query(handle)
            return not any(c.state is ComponentState.IN_PROGRESS for c in status.components)

        await until(settled)
        status = await query(handle)
        assert status.state is OrderState.FAILED
        mobile = [c for c in status.components if c.target_system == "MobileProvisioningSystem"]
        assert mobile and mobile[0].state is ComponentState.COMPLETED
        billing = [c for c in status.components if c.function == "FulfillBilling"]
        assert billing[0].state is ComponentState.PENDING  # waits for the failed provisioning

        action = await handle.execute_update(
            CustomerOrderWorkflow.resolve,
            OperatorRequest(operator="ops-1", reason="port released by donor"),
        )
        assert (action.action, action.operator, action.component) == ("resolve", "ops-1", None)
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert result.fallouts[0].state == "resolved"
    assert [(a.action, a.operator, a.reason) for a in result.operator_actions] == [
        ("resolve", "ops-1", "port released by donor")
    ]
    fixed = result.components[[c.id for c in result.components].index(PROV_FIXED)]
    assert fixed.state is ComponentState.COMPLETED


async def test_large_order_keeps_parent_history_small(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("business_200.xml", order_number)
    assert len(order.lines) == 200
    async with worker():
        handle = await start(client, settings, order)
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    history = await handle.fetch_history()
    assert len(history.events) < 2000, len(history.events)
