"""Operator actions as updates with validators, ``await_attention``, ``request_outcome`` and
the order's search attributes, on a real dev server.

Mid-flight is made with gates on the fulfillment steps (``GatedFulfillment``), never with
sleeps: a held step keeps the order running for as long as the test needs it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.service import RPCError

from o2a import ids
from o2a.config import Settings
from o2a.models import (
    ComponentState,
    FulfillmentMode,
    FulfillmentStatus,
    OperatorActionView,
    OrderState,
    OrderStatus,
    RevisionView,
    Step,
)
from o2a.service import OrderService
from tests.support import (
    FULFIL_BILL,
    INIT_BILL,
    PROV_BB,
    PROV_FIXED,
    PROV_MOBILE,
    SYNC,
    GatedFulfillment,
    Held,
    OrderHandle,
    StartWorker,
    child_idle,
    components_reach,
    finished,
    fulfillment_calls,
    held,
    outcome,
    query,
    quick_triple_play,
    refusal,
    request_id,
    revise,
    revision,
    running,
    set_spec,
    until,
    wait_for_state,
)
from workflows.contracts.customer_order import (
    ABORT_UPDATE,
    AWAIT_ATTENTION_UPDATE,
    REQUEST_OUTCOME_UPDATE,
    RESOLVE_UPDATE,
    RESUME_UPDATE,
    SUSPEND_UPDATE,
    OperatorRequest,
    OutcomeRequest,
    RevisionRequest,
)
from workflows.customer_order import CustomerOrderWorkflow

UPDATE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED: lambda e: (
        e.workflow_execution_update_admitted_event_attributes.request.meta.update_id
    ),
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: lambda e: (
        e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
    ),
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED: lambda e: (
        e.workflow_execution_update_rejected_event_attributes.rejected_request.meta.update_id
    ),
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED: lambda e: (
        e.workflow_execution_update_completed_event_attributes.meta.update_id
    ),
}


def operator(action: str, component: str | None = None) -> OperatorRequest:
    return OperatorRequest(operator=f"ops-{action}", reason=f"why {action}", component=component)


def update_id() -> str:
    return f"test-{uuid.uuid4().hex}"


async def act(
    handle: OrderHandle, update: str, request: OperatorRequest, uid: str | None = None
) -> OperatorActionView:
    """An operator action the validator accepts (else WorkflowUpdateFailedError)."""
    view: OperatorActionView = await handle.execute_update(
        update, request, id=uid, result_type=OperatorActionView
    )
    return view


async def attention(handle: OrderHandle) -> OrderStatus:
    status: OrderStatus = await handle.execute_update(
        AWAIT_ATTENTION_UPDATE, result_type=OrderStatus
    )
    return status


async def updates_in_history(handle: OrderHandle) -> set[str]:
    """The IDs of every update the order's history mentions, in any update event."""
    history = await handle.fetch_history()
    return {UPDATE_EVENTS[e.event_type](e) for e in history.events if e.event_type in UPDATE_EVENTS}


Holding = Callable[[Step, str], AbstractAsyncContextManager[Held]]


@pytest.fixture
def holding(client: Client, settings: Settings, worker: StartWorker, order_number: str) -> Holding:
    """``async with holding(step, component) as (handle, gated, gate):`` the quick triple
    play, ``held`` at that step until ``gate.release()`` or the block ends."""

    def hold(step: Step, component: str) -> AbstractAsyncContextManager[Held]:
        return held(client, settings, worker, quick_triple_play(order_number), step, component)

    return hold


# --- validators -------------------------------------------------------------------------------


async def test_validators_refuse_what_a_running_order_does_not_allow_and_write_nothing(
    holding: Holding,
) -> None:
    async with holding(Step.DESIGN, PROV_BB) as (handle, _, _):
        await wait_for_state(handle, OrderState.IN_PROGRESS)
        refused: dict[str, str] = {}

        async def refuse(update: str, request: OperatorRequest) -> str:
            uid = update_id()
            reason = await refusal(act(handle, update, request, uid))
            refused[uid] = reason
            return reason

        assert "nothing has failed" in await refuse(RESOLVE_UPDATE, operator("resolve"))
        assert "only a suspended order can be resumed" in await refuse(
            RESUME_UPDATE, operator("resume")
        )
        accepted = {update_id(): "suspend"}
        [suspend_id] = accepted
        action = await act(handle, SUSPEND_UPDATE, operator("suspend"), suspend_id)
        assert (action.action, action.operator, action.reason) == (
            "suspend",
            "ops-suspend",
            "why suspend",
        )
        assert "already suspended" in await refuse(SUSPEND_UPDATE, operator("suspend"))
        resume_id = update_id()
        accepted[resume_id] = "resume"
        await act(handle, RESUME_UPDATE, operator("resume"), resume_id)

        in_history = await updates_in_history(handle)
        assert set(accepted) <= in_history, "accepted updates must be in history"
        assert not set(refused) & in_history, f"a refused update left events: {refused}"
        status = await query(handle)
        assert [a.action for a in status.operator_actions] == ["suspend", "resume"]


async def test_failed_order_refuses_resolving_a_healthy_component_and_allows_suspend(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = set_spec(quick_triple_play(order_number), "1.3.1", "SimulatedFault", "design:NO_FIBRE")
    async with running(client, settings, worker, order) as handle:
        failed = await attention(handle)
        assert failed.state is OrderState.FAILED, failed
        refused: list[str] = []

        async def refuse(update: str, request: OperatorRequest) -> str:
            uid = update_id()
            refused.append(uid)
            return await refusal(act(handle, update, request, uid))

        reason = await refuse(RESOLVE_UPDATE, operator("resolve", PROV_MOBILE))
        assert "has not failed" in reason and PROV_BB in reason, reason

        # Accepted actions, each recorded with who and why.
        await act(handle, RESOLVE_UPDATE, operator("resolve", PROV_BB))

        async def failed_again() -> bool:
            status = await query(handle)
            return status.state is OrderState.FAILED and len(status.fallouts) == 2

        await until(failed_again)
        await act(handle, SUSPEND_UPDATE, operator("suspend"))
        assert (await wait_for_state(handle, OrderState.SUSPENDED)).state is OrderState.SUSPENDED
        assert "already suspended" in await refuse(SUSPEND_UPDATE, operator("suspend"))
        await act(handle, RESUME_UPDATE, operator("resume"))
        await act(handle, ABORT_UPDATE, operator("abort"))
        second = update_id()
        try:
            await act(handle, ABORT_UPDATE, operator("abort again"), second)
        except WorkflowUpdateFailedError as err:
            assert "already being aborted" in str(getattr(err.cause, "message", err.cause))
        except RPCError as err:  # the first abort closed the workflow: the server refuses
            assert "completed" in str(err), err
        else:
            raise AssertionError("a second abort was accepted")
        result = await finished(handle)

        assert result.state is OrderState.ABORTED
        assert [(a.action, a.operator, a.reason, a.component) for a in result.operator_actions] == [
            ("resolve", "ops-resolve", "why resolve", PROV_BB),
            ("suspend", "ops-suspend", "why suspend", None),
            ("resume", "ops-resume", "why resume", None),
            ("abort", "ops-abort", "why abort", None),
        ]
        in_history = await updates_in_history(handle)
        assert not {*refused, second} & in_history


# --- abort and suspend ------------------------------------------------------------------------


async def test_abort_ends_the_order_without_compensation(
    client: Client, holding: Holding, order_number: str
) -> None:
    async with holding(Step.ACTIVATE, PROV_BB) as (handle, gated, _):
        others = (SYNC, INIT_BILL, PROV_FIXED, PROV_MOBILE)
        await components_reach(handle, ComponentState.COMPLETED, *others)
        action = await act(handle, ABORT_UPDATE, OperatorRequest(operator="jane", reason="fraud"))
        assert (action.action, action.operator, action.reason) == ("abort", "jane", "fraud")
        result = await finished(handle)
        child = client.get_workflow_handle(ids.provisioning_workflow_id(order_number, PROV_BB))

        async def child_closed() -> bool:
            return (await child.describe()).status is not WorkflowExecutionStatus.RUNNING

        await until(child_closed)

    assert result.state is OrderState.ABORTED
    assert result.status is FulfillmentStatus.ABORTED
    components = {c.id: c.state for c in result.components}
    assert components[PROV_BB] is ComponentState.ABORTED
    assert components[FULFIL_BILL] is ComponentState.ABORTED
    assert components[INIT_BILL] is ComponentState.COMPLETED
    # Every line waits for FulfillBilling, so none finished: all end ABORTED.
    lines = {line.id: line.status for line in result.lines}
    assert set(lines.values()) == {FulfillmentStatus.ABORTED}, lines
    assert not [c for c in gated.calls if c.step.is_undo], "abort must not compensate"
    assert [(a.action, a.operator, a.reason) for a in result.operator_actions] == [
        ("abort", "jane", "fraud")
    ]


async def test_suspended_order_starts_no_new_step_until_resumed(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    gated = GatedFulfillment()
    design = gated.hold(Step.DESIGN, PROV_BB)
    sync = gated.hold(Step.SYNC, SYNC)
    async with running(client, settings, worker, quick_triple_play(order_number), gated) as handle:
        await design.wait_reached()
        await sync.wait_reached()
        await act(handle, SUSPEND_UPDATE, operator("suspend"))
        status = await wait_for_state(handle, OrderState.SUSPENDED)
        components = {c.id: c.state for c in status.components}
        assert components[PROV_BB] is ComponentState.SUSPENDED, components
        assert components[SYNC] is ComponentState.SUSPENDED, components
        assert components[INIT_BILL] is ComponentState.PENDING, components

        # The steps under way finish...
        child_id = ids.provisioning_workflow_id(order_number, PROV_BB)
        design.release()
        sync.release()
        await until(lambda: child_idle(client, child_id, reports=1))  # design reported

        async def sync_done() -> bool:
            return any(
                c.id == SYNC and c.state is ComponentState.COMPLETED
                for c in (await query(handle)).components
            )

        await until(sync_done)
        # ...and nothing new starts: not the next provisioning step, not InitiateBilling.
        called = [(c.component_id, c.step) for c in gated.calls]
        assert (PROV_BB, Step.ACTIVATE) not in called, called
        assert (INIT_BILL, Step.BILLING) not in called, called
        child_steps = [c["step"] for c in await fulfillment_calls(client, child_id)]
        assert child_steps == ["design"], child_steps
        order_steps = [
            c["step"] for c in await fulfillment_calls(client, ids.order_workflow_id(order_number))
        ]
        assert "billing" not in order_steps, order_steps

        before_resume = len(gated.calls)
        await act(handle, RESUME_UPDATE, operator("resume"))
        result = await finished(handle)

    assert result.state is OrderState.COMPLETED
    after = [(c.component_id, c.step) for c in gated.calls[before_resume:]]
    assert (PROV_BB, Step.ACTIVATE) in after and (INIT_BILL, Step.BILLING) in after, after


# --- waiting for attention ----------------------------------------------------------------------


async def test_await_attention_returns_failed_on_a_permanent_fault(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = set_spec(quick_triple_play(order_number), "1.2.1", "SimulatedFault", "activate:NO_SIM")
    async with running(client, settings, worker, order) as handle:
        status = await attention(handle)
        await handle.terminate("test over")
    assert status.state is OrderState.FAILED
    assert [(f.component, f.code, f.state) for f in status.fallouts] == [
        (PROV_MOBILE, "NO_SIM", "open")
    ]


async def test_await_attention_returns_completed_otherwise(holding: Holding) -> None:
    async with holding(Step.DESIGN, PROV_BB) as (handle, _, design):
        waiting = await handle.start_update(
            AWAIT_ATTENTION_UPDATE,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            result_type=OrderStatus,
        )
        design.release()
        status = await waiting.result()
    assert status.state is OrderState.COMPLETED
    assert status.status is FulfillmentStatus.COMPLETE


# --- outcomes of revisions and cancels ------------------------------------------------------


async def test_request_outcome_answers_accepted_stale_and_unknown_requests(
    holding: Holding, order_number: str
) -> None:
    second = set_spec(revision(quick_triple_play(order_number), 2), "1.3.2", "IPv4Prefix", "/29")
    async with holding(Step.DESIGN, PROV_BB) as (handle, _, design):
        accepted_id = await revise(handle, second)
        accepted = await outcome(handle, accepted_id)
        assert (accepted.number, accepted.outcome, accepted.request_id, accepted.kind) == (
            2,
            "accepted",
            accepted_id,
            "revision",
        )
        stale_id = await revise(handle, second)
        stale = await outcome(handle, stale_id)
        assert (stale.number, stale.outcome, stale.request_id) == (2, "rejected", stale_id)
        assert "not higher" in (stale.reason or ""), stale

        reason = await refusal(
            handle.execute_update(
                REQUEST_OUTCOME_UPDATE,
                OutcomeRequest(request_id="never-sent"),
                result_type=RevisionView,
            )
        )
        assert "never-sent" in reason, reason
        design.release()
        result = await finished(handle)

    assert result.state is OrderState.COMPLETED
    assert result.revision == 2
    assert [(r.number, r.outcome, r.request_id) for r in result.revisions] == [
        (2, "accepted", accepted_id),
        (2, "rejected", stale_id),
    ]


async def test_cancel_mode_revision_is_numbered_as_the_request(
    holding: Holding, order_number: str
) -> None:
    cancel = revision(quick_triple_play(order_number), 2).model_copy(
        update={"fulfillment_mode": FulfillmentMode.CANCEL}
    )
    async with holding(Step.DESIGN, PROV_BB) as (handle, _, design):
        rid = request_id()
        await handle.signal(
            CustomerOrderWorkflow.revise, RevisionRequest(order=cancel, request_id=rid)
        )
        answer = await handle.start_update(
            REQUEST_OUTCOME_UPDATE,
            OutcomeRequest(request_id=rid),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            result_type=RevisionView,
        )
        design.release()
        view = await answer.result()
        result = await finished(handle)

    assert (view.number, view.outcome, view.kind, view.request_id) == (
        2,
        "cancelled",
        "cancel",
        rid,
    )
    assert result.state is OrderState.CANCELLED
    assert [(r.number, r.outcome, r.kind) for r in result.revisions] == [(2, "cancelled", "cancel")]


# --- visibility -------------------------------------------------------------------------------


async def test_order_number_finds_the_order_and_every_som_child(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """Submitted through the service, as every door does; the children inherit nothing by
    themselves, so COM must give them the order's search attributes."""
    async with worker():
        submitted = await OrderService(client, settings).submit(quick_triple_play(order_number))
        result = await finished(
            client.get_workflow_handle_for(CustomerOrderWorkflow.run, submitted.workflow_id)
        )
    assert result.state is OrderState.COMPLETED
    expected = {
        ids.order_workflow_id(order_number),
        *(
            ids.provisioning_workflow_id(order_number, c)
            for c in (PROV_BB, PROV_FIXED, PROV_MOBILE)
        ),
    }
    found: set[str] = set()

    async def all_found() -> bool:
        found.clear()
        async for wf in client.list_workflows(f'OrderNumber = "{order_number}"'):
            found.add(wf.id)
        return found == expected

    try:
        await until(all_found)
    except TimeoutError:
        pytest.fail(f"OrderNumber = {order_number!r} finds {sorted(found)}, not {sorted(expected)}")
