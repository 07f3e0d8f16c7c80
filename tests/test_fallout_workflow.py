"""Fallout and operator actions (resolve, suspend, resume, abort) on a real dev server.

Operator actions are updates: the workflow's validator refuses what the order's state does
not allow, and the caller gets the reason at once.
"""

from __future__ import annotations

import pytest
from lxml import etree
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from o2a import ids
from o2a.cli_format import format_status
from o2a.config import Settings
from o2a.models import ComponentState, FulfillmentMode, FulfillmentStatus, OrderState, Step
from o2a.ports import Destination
from o2a.service import OrderService
from tests.support import (
    PROV_BB,
    PROV_FIXED,
    PROV_MOBILE,
    FailingBus,
    GatedFulfillment,
    OrderHandle,
    StartWorker,
    act,
    cancel,
    child_idle,
    components_reach,
    finished,
    held,
    line_steps,
    messages,
    outcome,
    query,
    quick_triple_play,
    refusal,
    revise,
    revision,
    sample,
    set_spec,
    start,
    text_of,
    until,
    wait_for_state,
)
from workflows.contracts.customer_order import (
    ABORT_UPDATE,
    RESOLVE_UPDATE,
    RESUME_UPDATE,
    SUSPEND_UPDATE,
)


async def test_fault_raises_fallout_messages_and_resolve_completes(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = set_spec(
        sample("triple_play.xml", order_number),
        "1.1.1",
        "SimulatedFault",
        "activate:PORT_UNAVAILABLE:1",
    )
    async with worker():
        handle = await start(client, settings, order)
        await wait_for_state(handle, OrderState.FAILED)

        async def settled() -> bool:
            components = (await query(handle)).components
            return not any(c.state is ComponentState.IN_PROGRESS for c in components)

        await until(settled)
        status = await query(handle)
        assert status.state is OrderState.FAILED
        assert [(f.code, f.state, f.component, f.step) for f in status.fallouts] == [
            ("PORT_UNAVAILABLE", "open", PROV_FIXED, "activate")
        ]
        components = {c.id: c.state for c in status.components}
        assert components[PROV_MOBILE] is ComponentState.COMPLETED  # independent work went on

        fallout_id = status.fallouts[0].id
        fault = etree.parse(str(settings.outbox_dir / f"FAULT.{fallout_id}.xml")).getroot()
        assert etree.QName(fault).localname == "Fault"
        assert text_of(fault, "Code") == ["PORT_UNAVAILABLE"]
        assert text_of(fault, "Severity") == ["ERROR"]
        assert ids.provisioning_order_message_id(order_number, 1, PROV_FIXED) in text_of(
            fault, "EBMID"
        )
        corrective = text_of(fault, "CorrectiveAction")
        assert corrective and not any("o2a " in text for text in corrective), corrective
        ticket = etree.parse(str(settings.outbox_dir / f"TT.{fallout_id}.xml")).getroot()
        assert etree.QName(ticket).localname == "CreateTroubleTicketEBM"

        reason = await refusal(act(handle, RESOLVE_UPDATE, component=PROV_MOBILE))
        assert f"component {PROV_MOBILE} of order {order_number} has not failed" in reason
        assert f"failed: {PROV_FIXED}" in reason
        await act(handle, RESOLVE_UPDATE, component=PROV_FIXED, operator="ops")
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert [f.state for f in result.fallouts] == ["resolved"]
    assert all(line.status is FulfillmentStatus.COMPLETE for line in result.lines)
    assert [(a.action, a.component, a.operator) for a in result.operator_actions] == [
        ("resolve", PROV_FIXED, "ops")
    ]


async def test_resolve_with_nothing_failed_is_refused(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("broadband_only.xml", order_number)
    async with held(client, settings, worker, order, Step.DESIGN) as (handle, _, gate):
        reason = await refusal(act(handle, RESOLVE_UPDATE))
        assert reason == (
            f"order {order_number} is in_progress: nothing has failed, "
            "so there is nothing to resolve"
        )
        reason = await refusal(act(handle, RESUME_UPDATE))
        assert "only a suspended order can be resumed" in reason
        gate.release()
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert result.operator_actions == []


async def test_permanent_fault_then_fixing_revision_completes(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = set_spec(
        sample("triple_play.xml", order_number), "1.3.2", "SimulatedFault", "design:NO_STATIC_IP"
    )
    fixed = revision(order, 2)
    fixed.lines = [line for line in fixed.lines if line.id != "1.3.2"]
    async with worker():
        handle = await start(client, settings, order)
        await wait_for_state(handle, OrderState.FAILED)
        rid = await revise(handle, fixed)
        answer = await outcome(handle, rid)
        assert (answer.number, answer.outcome, answer.kind) == (2, "accepted", "revision")
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert result.revision == 2
    assert [f.state for f in result.fallouts] == ["resolved"]
    lines = {line.id: line.status for line in result.lines}
    assert lines["1.3.2"] is FulfillmentStatus.CANCELLED
    assert lines["1.3.1"] is FulfillmentStatus.COMPLETE


@pytest.mark.parametrize("how", ["cancel", "cancel-mode revision"])
async def test_permanent_fault_then_cancel_compensates(
    client: Client, settings: Settings, worker: StartWorker, order_number: str, how: str
) -> None:
    order = set_spec(
        sample("triple_play.xml", order_number), "1.3.2", "SimulatedFault", "design:NO_STATIC_IP"
    )
    gated = GatedFulfillment()
    async with worker(fulfillment=gated):
        handle = await start(client, settings, order)
        await wait_for_state(handle, OrderState.FAILED)
        await components_reach(handle, ComponentState.COMPLETED, PROV_MOBILE)
        if how == "cancel":
            rid = await cancel(handle, "cannot be fulfilled", operator="crm")
        else:
            cancelling = revision(order, 2)
            cancelling.fulfillment_mode = FulfillmentMode.CANCEL
            rid = await revise(handle, cancelling)
        answer = await outcome(handle, rid)
        result = await handle.result()
    # An outcome is numbered as the request that caused it.
    expected_number = 1 if how == "cancel" else 2
    assert (answer.number, answer.outcome, answer.kind, answer.request_id) == (
        expected_number,
        "cancelled",
        "cancel",
        rid,
    )
    if how == "cancel":
        assert answer.reason == "cannot be fulfilled"
    else:
        assert answer.reason == "revision 2 with FulfillmentModeCode CANCEL"
    assert result.state is OrderState.CANCELLED
    assert [(r.number, r.outcome) for r in result.revisions] == [(expected_number, "cancelled")]
    assert all(line.status is FulfillmentStatus.CANCELLED for line in result.lines)
    steps = line_steps(gated.steps(PROV_MOBILE))
    for line_id in ("1.2.1", "1.2.2"):
        assert steps[line_id] == [
            Step.DESIGN,
            Step.ACTIVATE,
            Step.VERIFY,
            Step.UNDO_VERIFY,
            Step.UNDO_ACTIVATE,
            Step.UNDO_DESIGN,
        ], steps


async def test_suspend_holds_new_steps_until_resume(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
    child_id = ids.provisioning_workflow_id(order_number, PROV_MOBILE)
    async with held(client, settings, worker, order, Step.ACTIVATE, PROV_MOBILE) as (
        handle,
        gated,
        activate,
    ):
        action = await act(handle, SUSPEND_UPDATE, operator="ops", reason="site survey")
        assert (action.action, action.reason) == ("suspend", "site survey")
        status = await wait_for_state(handle, OrderState.SUSPENDED)
        components = {c.id: c.state for c in status.components}
        assert components[PROV_MOBILE] is ComponentState.SUSPENDED  # running, shown suspended
        assert ComponentState.IN_PROGRESS not in components.values()

        reason = await refusal(act(handle, SUSPEND_UPDATE))
        assert reason == f"order {order_number} is already suspended"

        # The step under way finishes; the next one does not start while suspended.
        activate.release()

        async def activated() -> bool:
            components = {c.id: c for c in (await query(handle)).components}
            return components[PROV_MOBILE].milestone == "PROVISION_ACTIVATED"

        await until(activated)
        await until(lambda: child_idle(client, child_id))
        assert [step for _, step, _ in gated.steps(PROV_MOBILE)] == [Step.DESIGN, Step.ACTIVATE]
        assert (await query(handle)).state is OrderState.SUSPENDED

        await act(handle, RESUME_UPDATE, operator="ops")
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert [step for _, step, _ in gated.steps(PROV_MOBILE)] == [
        Step.DESIGN,
        Step.ACTIVATE,
        Step.VERIFY,
    ]
    assert [(a.action, a.operator) for a in result.operator_actions] == [
        ("suspend", "ops"),
        ("resume", "ops"),
    ]


async def test_abort_ends_at_once_without_compensation(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
    async with held(client, settings, worker, order, Step.ACTIVATE, PROV_FIXED) as (
        handle,
        gated,
        gate,
    ):
        await act(handle, ABORT_UPDATE, operator="ops", reason="duplicate order")
        result = await handle.result()
        gate.release()
    assert result.state is OrderState.ABORTED
    assert result.status is FulfillmentStatus.ABORTED
    components = {c.id: c.state for c in result.components}
    assert components[PROV_FIXED] is ComponentState.ABORTED
    assert set(components.values()) <= {ComponentState.COMPLETED, ComponentState.ABORTED}
    assert all(
        line.status in (FulfillmentStatus.COMPLETE, FulfillmentStatus.ABORTED)
        for line in result.lines
    )
    assert {line.id: line.status for line in result.lines}["1.1.1"] is FulfillmentStatus.ABORTED
    assert [(a.action, a.operator, a.reason) for a in result.operator_actions] == [
        ("abort", "ops", "duplicate order")
    ]
    # The children close with the order (Temporal terminates them once it has closed).
    children = [
        client.get_workflow_handle(ids.provisioning_workflow_id(order_number, component))
        for component in (PROV_MOBILE, PROV_FIXED, PROV_BB)
    ]

    async def closed() -> bool:
        statuses = [(await child.describe()).status for child in children]
        return WorkflowExecutionStatus.RUNNING not in statuses

    await until(closed)
    assert not any(step.is_undo for _, step, _ in gated.steps())
    # The order has ended: there is no workflow left to take another action.
    with pytest.raises(RPCError, match="completed"):
        await act(handle, ABORT_UPDATE)


async def test_transient_outage_is_retried_without_fallout(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = set_spec(
        sample("broadband_only.xml", order_number), "1.1.1", "SimulatedOutage", "activate:2"
    )
    gated = GatedFulfillment()
    async with worker(fulfillment=gated):
        result = await (await start(client, settings, order)).result()
    assert result.state is OrderState.COMPLETED
    assert result.fallouts == []
    assert not list(settings.outbox_dir.glob("FAULT.*"))
    activations = [c for c in gated.calls if c.step is Step.ACTIVATE]
    assert [c.attempt for c in activations] == [1, 2, 3]


async def test_priority_maps_to_temporal_priority(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("broadband_only.xml", order_number).model_copy(update={"priority": 9})
    async with held(client, settings, worker, order, Step.DESIGN) as (handle, _, gate):
        description = await handle.describe()
        assert description.raw_description.workflow_execution_info.priority.priority_key == 1
        request = await gate.wait_reached()
        # Inherited by the order's children.
        child = client.get_workflow_handle(
            ids.provisioning_workflow_id(order_number, request.component_id)
        )
        child_info = (await child.describe()).raw_description.workflow_execution_info
        assert child_info.priority.priority_key == 1
        await cancel(handle, "priority test only")
        gate.release()
        assert (await handle.result()).state is OrderState.CANCELLED


async def test_a_crm_update_that_cannot_be_delivered_is_an_incident_until_resolved(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """The order does not fail as a workflow, nor retry for ever: it waits in `failed` with
    an incident naming the message; resolve sends every undelivered message, in order."""
    bus = FailingBus(settings.outbox_dir, Destination.CRM_ORDER_UPDATE, refused=True)
    async with worker(bus=bus):
        handle = await start(client, settings, quick_triple_play(order_number))
        status = await wait_for_state(handle, OrderState.FAILED)
        first = ids.sales_order_update_message_id(order_number, 1, 1)
        incident = status.fallouts[0]
        assert incident.message_id == first
        assert incident.component == ""
        assert incident.code == "OutboundMessageRejected"
        assert "refused by the queue" in incident.message
        assert not messages(settings.outbox_dir, f"USO.{order_number}.r1")
        bus.failing.clear()
        await act(handle, RESOLVE_UPDATE, operator="ops", reason="CRM queue fixed")
        result = await finished(handle)
    assert result.state is OrderState.COMPLETED
    assert all(f.state == "resolved" for f in result.fallouts)
    sent = [path.stem for path, _ in messages(settings.outbox_dir, f"USO.{order_number}.r1")]
    assert sent[0] == first
    assert len(sent) == result.crm_updates_sent


async def test_a_provisioning_order_that_cannot_be_sent_is_fallout_of_its_component(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    bus = FailingBus(settings.outbox_dir, Destination.SOM_PROVISIONING_ORDER, refused=True)
    async with worker(bus=bus):
        handle = await start(client, settings, quick_triple_play(order_number))
        await until(lambda: _all_provisioning_failed(handle))
        status = await query(handle)
        codes = {f.component: f.code for f in status.fallouts}
        assert codes == dict.fromkeys((PROV_FIXED, PROV_MOBILE, PROV_BB), "OutboundMessageRejected")
        bus.failing.clear()
        await act(handle, RESOLVE_UPDATE)
        result = await finished(handle)
    assert result.state is OrderState.COMPLETED


async def test_a_bus_outage_delays_som_steps_without_spending_their_retry_budget(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """A ProvisioningOrderEBM, or a step's report, that the bus cannot take when the step's
    call sends it is sent by an activity of its own, retried up to the messages' 30-minute
    deadline: an outage longer than a step's retry budget (8 attempts, about 90 s) delays
    the order without fallout, and each system is called once per step."""
    bus = FailingBus(settings.outbox_dir, Destination.SOM_PROVISIONING_ORDER)
    systems = GatedFulfillment()
    children = [
        ids.provisioning_workflow_id(order_number, c) for c in (PROV_FIXED, PROV_MOBILE, PROV_BB)
    ]
    async with worker(bus=bus, fulfillment=systems):
        handle = await start(client, settings, quick_triple_play(order_number))
        await until(lambda: _each_retrying(client, children, "send_provisioning_order"))
        assert not [c for c in systems.calls if c.component_id.startswith("Provision.")]
        status = await OrderService(client, settings).status(order_number)
        retrying = {(r.activity, r.component): r.last_failure for r in status.retrying}
        for component in (PROV_FIXED, PROV_MOBILE, PROV_BB):
            failure = retrying[("send_provisioning_order", component)]
            assert failure == "som.provisioningorder is down (test)", status.retrying
        assert f"send_provisioning_order  {PROV_FIXED}" in format_status(status)
        bus.failing = {Destination.COM_FULFILLMENT_UPDATE}
        await until(lambda: _each_retrying(client, children, "send_fulfillment_update"))
        bus.failing.clear()
        result = await finished(handle)
    assert result.state is OrderState.COMPLETED, result
    assert not result.fallouts
    provisioning = [
        (c.component_id, c.step) for c in systems.calls if c.component_id.startswith("Provision.")
    ]
    assert sorted(provisioning) == sorted(
        (component, step)
        for component in (PROV_FIXED, PROV_MOBILE, PROV_BB)
        for step in (Step.DESIGN, Step.ACTIVATE, Step.VERIFY)
    )
    sent = settings.outbox_dir
    assert len(list(sent.glob(f"PPO.{order_number}.r1.*.xml"))) == 3
    assert len(list(sent.glob(f"PFOU.{order_number}.r1.*.xml"))) == 9


async def _each_retrying(client: Client, workflow_ids: list[str], activity: str) -> bool:
    """Each workflow's pending activity is this one, retried at least once."""
    for workflow_id in workflow_ids:
        try:
            description = await client.get_workflow_handle(workflow_id).describe()
        except RPCError:  # not started yet
            return False
        pending = description.raw_description.pending_activities
        if not any(p.activity_type.name == activity and p.attempt >= 2 for p in pending):
            return False
    return True


async def _all_provisioning_failed(handle: OrderHandle) -> bool:
    states = {c.id: c.state for c in (await query(handle)).components}
    return all(states.get(c) is ComponentState.FAILED for c in (PROV_FIXED, PROV_MOBILE, PROV_BB))
