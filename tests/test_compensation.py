"""Compensation and the correctness debts of issue 8, on a real dev server: a cancel whose
undo fails, a bug in a spawned task, AMEND sending only what changed, a revise or cancel
reaching a SOM child as it finishes, and the revision number a revised child speaks with.

Mid-flight is made with gates (a held fulfillment step, or a held outbound message), never
with sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from o2a import ids
from o2a.adapters.outbox import OutboxBus
from o2a.client import data_converter, failure_message, interceptors
from o2a.config import Settings
from o2a.models import (
    ComponentState,
    CustomerOrder,
    FulfillmentStatus,
    LineUpdate,
    OperatorActionView,
    OrderComponent,
    OrderState,
    OrderStatus,
    Step,
)
from o2a.ports import Destination, MessageBus
from o2a.service import OrderService
from tests.support import (
    INIT_BILL,
    PROV_BB,
    PROV_FIXED,
    PROV_MOBILE,
    SHIP,
    SYNC,
    WAIT,
    GatedFulfillment,
    OrderHandle,
    StartWorker,
    cancel,
    components_reach,
    finished,
    held,
    line_steps,
    outcome,
    query,
    quick_triple_play,
    revise,
    revision,
    running,
    sample,
    set_spec,
    signalled,
    start,
    until,
)
from workers.worker import build_worker
from workflows.contracts.customer_order import (
    RESOLVE_UPDATE,
    WORKFLOW_TYPE,
    OperatorRequest,
)
from workflows.customer_order import CustomerOrderWorkflow
from workflows.provisioning_order import ProvisioningOrderWorkflow

BB_LINES = ["1.3.1", "1.3.2"]
UNDO_ALL = [Step.UNDO_VERIFY, Step.UNDO_ACTIVATE, Step.UNDO_DESIGN]
DO_ALL = [Step.DESIGN, Step.ACTIVATE, Step.VERIFY]


async def attention(client: Client, settings: Settings, order_number: str) -> OrderStatus:
    """Through the service, as ``o2a submit --wait`` asks: the order once it needs someone."""
    return await asyncio.wait_for(
        OrderService(client, settings).wait_for_attention(order_number), WAIT
    )


async def resolved_cancel(
    handle: OrderHandle, rid: str, component: str | None = None
) -> OrderStatus:
    """An operator resolves the failed undo: the cancel goes on to its end, every line
    CANCELLED and the cancel's outcome ``cancelled``."""
    await handle.execute_update(
        RESOLVE_UPDATE,
        OperatorRequest(operator="ops", reason="undo system fixed", component=component),
        result_type=OperatorActionView,
    )
    view = await outcome(handle, rid)
    result = await finished(handle)
    assert view.outcome == "cancelled", view
    assert result.state is OrderState.CANCELLED, result
    assert {line.status for line in result.lines} == {FulfillmentStatus.CANCELLED}
    return result


def broadband_since(gated: GatedFulfillment, since: int) -> list[tuple[str, Step, list[str]]]:
    """(component, step, lines) of the broadband calls after the first ``since`` calls."""
    return [call for call in gated.steps()[since:] if call[0] == PROV_BB]


def async_true(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


def incidents(status: OrderStatus) -> list[tuple[str, str | None, str, str]]:
    return [(f.component, f.step, f.code, f.state) for f in status.fallouts]


# --- a cancel whose undo fails stays in fallout until resolved --------------------------------


@pytest.mark.parametrize("others", ["held", "finishing"])
async def test_cancel_whose_som_undo_fails_waits_failed_until_resolve_retries_it(
    client: Client, settings: Settings, worker: StartWorker, order_number: str, others: str
) -> None:
    """Broadband's SOM child is running when the cancel comes, and its own undo fails.

    ``held``: every SOM child is held in its last step until each has the cancel (the
    signals all reach running children). ``finishing``: the fixed and mobile children run
    free, so they may finish just as COM signals them the cancel.
    """
    order = set_spec(
        quick_triple_play(order_number), "1.3.1", "SimulatedFault", "undo-activate:UNDO_FAILED:1"
    )
    gated = GatedFulfillment()
    held_components = [PROV_BB, PROV_FIXED, PROV_MOBILE] if others == "held" else [PROV_BB]
    verify = gated.hold(Step.VERIFY, None if others == "held" else PROV_BB)
    async with running(client, settings, worker, order, gated) as handle:
        await until(async_true(lambda: len(verify.held) == len(held_components)))
        rid = await cancel(handle, reason="customer moved")
        for component in held_components:  # it reached the running children
            await signalled(client, ids.provisioning_workflow_id(order_number, component), "cancel")
        verify.release()
        failed = await attention(client, settings, order_number)
        assert failed.state is OrderState.FAILED, (failed.state, incidents(failed))
        assert (PROV_BB, "undo-activate", "UNDO_FAILED", "open") in incidents(failed)
        assert not [r for r in failed.revisions if r.outcome == "cancelled"], failed.revisions
        still = await query(handle)
        assert still.state is OrderState.FAILED, "a failed undo must wait for an operator"
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING

        before_resolve = len(gated.calls)
        result = await resolved_cancel(handle, rid, PROV_BB)

    retried = line_steps(broadband_since(gated, before_resolve))
    assert Step.UNDO_ACTIVATE in retried.get("1.3.1", []), gated.steps(PROV_BB)
    assert not [f for f in result.fallouts if f.state == "open"], result.fallouts
    # The undo's retry is the component's second run, undo only: it announces itself with a
    # ProvisioningOrderEBM of its own before its first (undo) call.
    rerun = ids.provisioning_order_message_id(order_number, 1, PROV_BB, 2)
    assert (settings.outbox_dir / f"{rerun}.xml").exists(), sorted(settings.outbox_dir.iterdir())


async def test_cancel_whose_inline_undo_fails_runs_no_later_wave_until_resolved(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """InitiateBilling's undo fails: SyncCustomer (it depended on) is not undone before the
    operator resolves; resolve undoes billing again, then customer sync.

    The simulator's COUNT counts the component's runs, and undoing finished work is the
    component's second run: ``undo-billing:UNDO_FAILED:2`` makes that undo fail and the retry
    after resolve (run 3) succeed (docs/architecture.md §3, "The simulator")."""
    order = set_spec(
        quick_triple_play(order_number), "1.4", "SimulatedFault", "undo-billing:UNDO_FAILED:2"
    )
    # Every provisioning component stays in its SOM child, held at design.
    async with held(client, settings, worker, order, Step.DESIGN) as (handle, gated, design):
        await components_reach(handle, ComponentState.COMPLETED, SYNC, INIT_BILL, SHIP)
        rid = await cancel(handle, reason="customer changed their mind")

        async def failed_or_went_on() -> bool:
            went_on = any(c.step is Step.UNDO_SYNC for c in gated.calls)
            return went_on or (await query(handle)).state is OrderState.FAILED

        await until(failed_or_went_on)
        status = await query(handle)
        calls = [(c.component_id, c.step) for c in gated.calls]
        undo_calls = [
            (c.component_id, c.step.value, f"run {c.run}") for c in gated.calls if c.step.is_undo
        ]
        assert (INIT_BILL, Step.UNDO_BILLING) in calls, calls
        assert status.state is OrderState.FAILED, (status.state, undo_calls)
        assert (INIT_BILL, "undo-billing", "UNDO_FAILED", "open") in incidents(status)
        assert (SYNC, Step.UNDO_SYNC) not in calls, "a later undo wave ran past the failure"

        design.release()  # the SOM children undo themselves meanwhile
        await resolved_cancel(handle, rid)

    undo = [
        (c.component_id, c.step)
        for c in gated.calls
        if c.component_id in (SYNC, INIT_BILL) and c.step.is_undo
    ]
    assert undo == [
        (INIT_BILL, Step.UNDO_BILLING),
        (INIT_BILL, Step.UNDO_BILLING),
        (SYNC, Step.UNDO_SYNC),
    ], undo


# --- a bug in a spawned task fails the workflow task ------------------------------------------


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class BuggyCustomerOrderWorkflow(CustomerOrderWorkflow):
    """The order workflow with a bug in the task that runs an inline component."""

    @workflow.init
    def __init__(self, order: CustomerOrder) -> None:
        super().__init__(order)

        async def call_function(component: OrderComponent) -> list[LineUpdate]:
            raise KeyError("bug")

        self._runner._work.call_function = call_function  # type: ignore[method-assign]

    @workflow.run
    async def run(self, order: CustomerOrder) -> OrderStatus:
        return await super().run(order)


async def task_failures(events: list[HistoryEvent]) -> list[str]:
    """Their messages, decoded: with payload encryption they are sealed too."""
    return [
        await failure_message(data_converter(), e.workflow_task_failed_event_attributes.failure)
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def test_bug_in_a_spawned_task_fails_the_workflow_task_and_a_fix_carries_on(
    client: Client,
    temporal_address: str,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
) -> None:
    # The worker the settings make, with the buggy order workflow instead. It is built on a
    # connection of its own: the SDK allows one worker per task queue per connection, even
    # one never started.
    spare = await Client.connect(
        temporal_address, data_converter=data_converter(), interceptors=interceptors()
    )
    config = build_worker(spare, settings).config()
    config["client"] = client
    config["workflows"] = [BuggyCustomerOrderWorkflow, ProvisioningOrderWorkflow]
    failures: list[str] = []
    async with Worker(**config):
        handle = await start(client, settings, quick_triple_play(order_number))

        async def task_failed() -> bool:
            failures[:] = await task_failures(list((await handle.fetch_history()).events))
            return bool(failures)

        await until(task_failed)
        assert "bug" in failures[0], failures
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING

    async with worker():  # the fixed code, on the same task queue
        try:
            result = await finished(handle)
        except TimeoutError:
            # Failures after the first attempt are not written to history: say how far it got.
            task = (await handle.describe()).raw_description.pending_workflow_task
            pytest.fail(
                f"the fixed worker did not finish the order in {WAIT}s: its workflow task is "
                f"at attempt {task.attempt} (a task that cannot replay the recorded commands "
                "fails or times out on every attempt)"
            )
    assert result.state is OrderState.COMPLETED


# --- AMEND sends only what changed --------------------------------------------------------------


async def test_amend_sends_billing_only_the_changed_and_removed_lines(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = quick_triple_play(order_number)
    discount = next(line for line in order.lines if line.id == "1.4")
    order.lines.append(
        discount.model_copy(deep=True, update={"id": "1.5", "business_component_id": "1-X-150"})
    )
    second = set_spec(revision(order, 2), "1.4", "DiscountAmount", "-15.00")
    second.lines = [line for line in second.lines if line.id != "1.5"]
    async with held(client, settings, worker, order, Step.VERIFY, PROV_BB) as (
        handle,
        gated,
        verify,
    ):
        await components_reach(handle, ComponentState.COMPLETED, INIT_BILL)
        view = await outcome(handle, await revise(handle, second))
        assert view.outcome == "accepted", view
        verify.release()
        result = await finished(handle)

    assert result.state is OrderState.COMPLETED and result.revision == 2, result
    billing = gated.steps(INIT_BILL)
    assert billing == [
        (INIT_BILL, Step.BILLING, [line.id for line in order.lines]),
        (INIT_BILL, Step.UNDO_BILLING, ["1.5"]),
        (INIT_BILL, Step.AMEND_BILLING, ["1.4"]),
    ], billing
    amended = next(c for c in gated.calls if c.step is Step.AMEND_BILLING)
    assert amended.lines[0].item.spec("DiscountAmount") == "-15.00"
    lines = {line.id: line.status for line in result.lines}
    assert lines["1.5"] is FulfillmentStatus.CANCELLED
    assert lines["1.4"] is FulfillmentStatus.COMPLETE


async def test_amend_that_falls_out_sends_only_what_is_left_after_resolve(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """The undo of a removed line succeeded before the amend fell out: the retry after
    resolve amends, and does not undo that line a second time."""
    order = quick_triple_play(order_number)
    discount = next(line for line in order.lines if line.id == "1.4")
    order.lines.append(
        discount.model_copy(deep=True, update={"id": "1.5", "business_component_id": "1-X-150"})
    )
    second = set_spec(revision(order, 2), "1.4", "DiscountAmount", "-15.00")
    second = set_spec(second, "1.4", "SimulatedFault", "amend-billing:AMEND_REFUSED:2")
    second.lines = [line for line in second.lines if line.id != "1.5"]
    async with held(client, settings, worker, order, Step.VERIFY, PROV_BB) as (
        handle,
        gated,
        verify,
    ):
        await components_reach(handle, ComponentState.COMPLETED, INIT_BILL)
        await outcome(handle, await revise(handle, second))
        await components_reach(handle, ComponentState.FAILED, INIT_BILL)
        await handle.execute_update(
            CustomerOrderWorkflow.resolve, OperatorRequest(component=INIT_BILL)
        )
        verify.release()
        result = await finished(handle)

    assert result.state is OrderState.COMPLETED, result
    assert gated.steps(INIT_BILL)[1:] == [
        (INIT_BILL, Step.UNDO_BILLING, ["1.5"]),
        (INIT_BILL, Step.AMEND_BILLING, ["1.4"]),
        (INIT_BILL, Step.AMEND_BILLING, ["1.4"]),
    ], gated.steps(INIT_BILL)


@pytest.mark.parametrize("then", ["resolve", "cancel"])
async def test_dropped_component_whose_own_undo_falls_out_is_undone_after_resolve(
    client: Client, settings: Settings, worker: StartWorker, order_number: str, then: str
) -> None:
    """A revision drops broadband while its SOM child runs; the child's undo fails. The
    order waits failed; resolve runs that undo again and only then can the order finish."""
    order = set_spec(
        quick_triple_play(order_number), "1.3.1", "SimulatedFault", "undo-design:UNDO_FAILED:1"
    )
    dropped = sample("revisions/triple_play_r2_remove_bundle.xml", order_number)
    async with held(client, settings, worker, order, Step.ACTIVATE, PROV_BB) as (
        handle,
        gated,
        activate,
    ):
        view = await outcome(handle, await revise(handle, dropped))
        assert view.outcome == "accepted", view
        activate.release()
        await components_reach(handle, ComponentState.FAILED, PROV_BB)
        status = await query(handle)
        assert status.state is OrderState.FAILED, status.state
        if then == "cancel":  # the cancel, too, waits for the failed undo to be resolved
            await cancel(handle, reason="customer gave up")
        await handle.execute_update(CustomerOrderWorkflow.resolve, OperatorRequest())
        result = await finished(handle)

    expected = OrderState.COMPLETED if then == "resolve" else OrderState.CANCELLED
    assert result.state is expected, result.state
    components = {c.id: c.state for c in result.components}
    assert components[PROV_BB] is ComponentState.CANCELLED
    undo_designs = [
        c for c in gated.calls if c.component_id == PROV_BB and c.step is Step.UNDO_DESIGN
    ]
    assert len(undo_designs) == 2, gated.steps(PROV_BB)


# --- a revise or cancel reaching a SOM child as it finishes -----------------------------------


class GatedBus:
    """The outbox, except that one message waits until the test releases it."""

    def __init__(self, inner: MessageBus, message_id: str) -> None:
        self._inner = inner
        self._message_id = message_id
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    async def publish(self, destination: Destination, message_id: str, document: bytes) -> bytes:
        if message_id == self._message_id and not self.opened.is_set():
            self.reached.set()
            await self.opened.wait()
        return await self._inner.publish(destination, message_id, document)


@asynccontextmanager
async def broadband_finishing(
    client: Client, settings: Settings, order: CustomerOrder, hold: str
) -> AsyncIterator[tuple[OrderHandle, GatedFulfillment, asyncio.Event]]:
    """The order, with the broadband SOM child held at the end of its work: in its last step
    (verify), or sending its final report (the third ProcessFulfillmentOrderUpdateEBM).
    Yields the order, the fulfillment calls, and the event that lets the child go on."""
    gated = GatedFulfillment()
    final_report = ids.fulfillment_update_message_id(order.order_number, 1, PROV_BB, 3)
    bus = GatedBus(OutboxBus(settings.outbox_dir), final_report)
    verify = gated.hold(Step.VERIFY, PROV_BB)
    if hold == "final report":
        verify.release()
    else:
        bus.opened.set()
    async with build_worker(client, settings, bus=bus, fulfillment=gated):
        handle = await start(client, settings, order)
        try:
            if hold == "final report":
                await asyncio.wait_for(bus.reached.wait(), WAIT)
                yield handle, gated, bus.opened
            else:
                await verify.wait_reached()
                yield handle, gated, verify.opened
        finally:
            bus.opened.set()
            gated.release_all()


@pytest.mark.parametrize("hold", ["last step", "final report"])
async def test_revise_reaching_a_som_child_as_it_finishes(
    client: Client, settings: Settings, order_number: str, hold: str
) -> None:
    order = quick_triple_play(order_number)
    second = set_spec(revision(order, 2), "1.3.2", "IPv4Prefix", "/29")
    async with broadband_finishing(client, settings, order, hold) as (handle, gated, go_on):
        rid = await revise(handle, second)
        view = await outcome(handle, rid)
        since = len(gated.calls)
        go_on.set()
        result = await finished(handle)

    assert view.outcome == "accepted", view
    assert result.state is OrderState.COMPLETED and result.revision == 2, result
    states = {c.id: c.state for c in result.components}
    assert states[PROV_BB] is ComponentState.COMPLETED
    assert {line.status for line in result.lines} == {FulfillmentStatus.COMPLETE}
    after = broadband_since(gated, since)
    steps = line_steps(after)
    # The changed line's old work is undone and done again; the unchanged one is left be.
    assert steps.get("1.3.2") == [*UNDO_ALL, *DO_ALL], after
    assert "1.3.1" not in steps, after
    redone = [c for c in gated.calls[since:] if c.component_id == PROV_BB and not c.step.is_undo]
    assert {c.revision for c in redone} == {2}, [(c.step, c.revision) for c in redone]
    assert redone[-1].lines[0].item.spec("IPv4Prefix") == "/29"


@pytest.mark.parametrize("hold", ["last step", "final report"])
async def test_cancel_reaching_a_som_child_as_it_finishes(
    client: Client, settings: Settings, order_number: str, hold: str
) -> None:
    order = quick_triple_play(order_number)
    async with broadband_finishing(client, settings, order, hold) as (handle, gated, go_on):
        rid = await cancel(handle, reason="moved abroad")
        await signalled(client, ids.provisioning_workflow_id(order_number, PROV_BB), "cancel")
        since = len(gated.calls)
        go_on.set()
        view = await outcome(handle, rid)
        result = await finished(handle)

    assert view.outcome == "cancelled", view
    assert result.state is OrderState.CANCELLED, result
    assert {line.status for line in result.lines} == {FulfillmentStatus.CANCELLED}
    after = broadband_since(gated, since)
    steps = line_steps(after)
    for line_id in BB_LINES:
        assert steps.get(line_id) == UNDO_ALL, after


# --- a revised SOM child speaks with the new revision ---------------------------------------


async def test_revised_som_child_calls_and_reports_with_the_new_revision(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = quick_triple_play(order_number)
    second = set_spec(revision(order, 2), "1.3.2", "IPv4Prefix", "/29")
    child_id = ids.provisioning_workflow_id(order_number, PROV_BB)
    async with held(client, settings, worker, order, Step.DESIGN, PROV_BB) as (
        handle,
        gated,
        design,
    ):
        rid = await revise(handle, second)
        await signalled(client, child_id, "revise")
        since = len(gated.calls)
        design.release()
        assert (await outcome(handle, rid)).outcome == "accepted"
        result = await finished(handle)

    assert result.state is OrderState.COMPLETED and result.revision == 2
    later = [c for c in gated.calls[since:] if c.component_id == PROV_BB and not c.step.is_undo]
    assert [c.step for c in later][-2:] == [Step.ACTIVATE, Step.VERIFY], later
    assert [(c.step, c.revision) for c in later] == [(c.step, 2) for c in later]
    assert all(".r2." in c.request_id for c in later), [c.request_id for c in later]

    prefix = f"PFOU.{order_number}."
    reports = sorted(
        (path.name for path in settings.outbox_dir.glob(f"{prefix}r*.{PROV_BB}.u*.xml")),
        key=lambda name: name.rsplit(".u", 1)[1],
    )
    revisions = [name.removeprefix(prefix).split(".", 1)[0] for name in reports]
    assert "r2" in revisions, reports
    first_r2 = revisions.index("r2")
    assert set(revisions[first_r2:]) == {"r2"}, reports
    # design, activate and the final report all come after the revise took effect
    assert len(revisions[first_r2:]) >= 3, reports


async def test_abort_during_a_cancel_ends_the_order_aborted_without_more_undo(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """An abort stops a cancel under way at once: the order ends aborted (not cancelled),
    and no later undo wave starts (customer sync, which billing depended on, is not undone)."""
    gated = GatedFulfillment()
    design = gated.hold(Step.DESIGN, PROV_BB)
    undo_billing = gated.hold(Step.UNDO_BILLING, INIT_BILL)
    async with running(client, settings, worker, quick_triple_play(order_number), gated) as handle:
        await design.wait_reached()
        await components_reach(handle, ComponentState.COMPLETED, SYNC, INIT_BILL)
        await cancel(handle, reason="customer changed their mind")
        await undo_billing.wait_reached()
        await handle.execute_update(
            CustomerOrderWorkflow.abort, OperatorRequest(operator="ops", reason="stop it")
        )
        result = await finished(handle)
        undo_billing.release()
        assert result.state is OrderState.ABORTED
        assert result.status is FulfillmentStatus.ABORTED
        assert [r.outcome for r in result.revisions] == ["rejected"]  # the cancel, cut short
        assert Step.UNDO_SYNC not in [c.step for c in gated.calls]
