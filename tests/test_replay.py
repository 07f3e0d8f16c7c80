"""Replay of recorded histories: a workflow change that breaks them needs workflow.patched.

The histories under tests/histories/ come from real runs on the dev server, one per path
through the workflows that matters (completion, fallout and resolve, a revision and a cancel
mid-flight, a cancel whose undo fails, suspend and resume). To record them again after an
intended change (and say why in docs/architecture.md, "Recorded histories"):
``O2A_RECORD_HISTORIES=1 pytest tests/test_replay.py tests/test_continue_as_new.py`` (the
latter records an order and a child that continued as new, on a server of its own).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory

from o2a import ids
from o2a.client import data_converter
from o2a.config import Settings
from o2a.models import CustomerOrder, OrderState, OrderStatus, Step
from tests.support import (
    HISTORIES,
    PROV_FIXED,
    RECORD_HISTORIES,
    GatedFulfillment,
    OrderHandle,
    StartWorker,
    cancel,
    order_histories,
    query,
    quick_triple_play,
    request_id,
    revision,
    sample,
    save_history,
    set_spec,
    start,
    wait_for_state,
)
from workers.worker import build_replayer
from workflows.contracts.customer_order import (
    CancelRequest,
    OperatorRequest,
    OutcomeRequest,
    RevisionRequest,
)
from workflows.customer_order import CustomerOrderWorkflow

ORDER_SCENARIOS = (
    "triple_play",
    "fallout_resolved",
    "revised_mid_flight",
    "cancelled_mid_flight",
    "cancel_undo_failed",
    "suspended_resumed",
    "continued_as_new",
    "continued_run",
)
"""The COM histories, each recorded again when a COM patch came, the older kept."""

CHILD_SCENARIOS = ("triple_play_provisioning", "revised_provisioning", "continued_provisioning")
"""The SOM histories, each recorded again when SOM's patches changed, the older kept."""

SCENARIOS = {
    "continued_as_new",
    "continued_run",
    "continued_provisioning",
    "triple_play",
    "triple_play_provisioning",
    "fallout_resolved",
    "revised_mid_flight",
    "revised_provisioning",
    "cancelled_mid_flight",
    "cancel_undo_failed",
    "suspended_resumed",
    # Kept from before the SOM steps sent their own reports (workflow.patched
    # "step-call-sends-its-report"): a re-recording does not make these again.
    "triple_play_provisioning_before_step_reports",
    "revised_provisioning_before_step_reports",
    # Kept from before COM sent its CRM updates as local activities and left its
    # ProvisioningOrderEBMs to the children (workflow.patched
    # "crm-updates-local-and-som-announces", which implies every older COM patch), and the
    # children of those orders.
    *(f"{name}_before_local_updates" for name in ORDER_SCENARIOS),
    # Kept from before COM ran no local activity (workflow.patched
    # "com-without-local-activities", workflows/messages.py says why): the decomposition
    # and the CRM updates are markers in these.
    *(f"{name}_with_local_activities" for name in ORDER_SCENARIOS),
    *(f"{name}_before_som_announces" for name in CHILD_SCENARIOS),
    # Kept from before COM said its children have every SOM patch (``som_patched``): each
    # of these asks step-call-sends-its-report and holds its marker.
    *(f"{name}_before_som_patched" for name in CHILD_SCENARIOS),
}


def recorded() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


@pytest.mark.skipif(RECORD_HISTORIES, reason="recording run")
def test_histories_are_present() -> None:
    assert {p.stem for p in recorded()} == SCENARIOS


@pytest.mark.skipif(RECORD_HISTORIES, reason="recording run")
@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.stem)
async def test_replay(path: Path) -> None:
    data = json.loads(path.read_text())
    history = WorkflowHistory.from_json(data["workflow_id"], data["history"])
    replayer = build_replayer(data_converter())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


QUERIED_ORDERS = 16
"""Enough that the older code (COM's local activities) failed in 2 of 6 runs."""


@pytest.mark.skipif(RECORD_HISTORIES, reason="recording run")
async def test_orders_queried_while_they_run_replay(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """Orders are queried all the time (the API, the console): every query, live or
    replaying an order that left the cache, and every history replays. With COM's local
    activities a query answered as one finished made the run hear its result a workflow
    task later than replay does, and the order failed on replay (workflows/messages.py)."""
    numbers = [f"{order_number}Q{i}" for i in range(QUERIED_ORDERS)]
    stop = asyncio.Event()

    async def poll(handle: OrderHandle) -> None:
        while not stop.is_set():
            await query(handle)

    async with worker():
        handles = [await start(client, settings, quick_triple_play(n)) for n in numbers]
        pollers = [asyncio.create_task(poll(h)) for h in handles]
        for handle in handles[::2]:
            await cancel(handle, reason="changed their mind")
        results = await asyncio.gather(*(h.result() for h in handles))
        stop.set()
        await asyncio.gather(*pollers)
    assert {r.state for r in results} <= {OrderState.COMPLETED, OrderState.CANCELLED}
    replayer = build_replayer(data_converter())
    for number in numbers:
        for history in await order_histories(client, number):
            result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
            assert result.replay_failure is None, (history.workflow_id, result.replay_failure)


Handle = WorkflowHandle[CustomerOrderWorkflow, OrderStatus]


async def _start(client: Client, settings: Settings, order: CustomerOrder) -> Handle:
    return await client.start_workflow(
        CustomerOrderWorkflow.run,
        order,
        id=ids.order_workflow_id(order.order_number),
        task_queue=settings.task_queue,
    )


async def _save_child(client: Client, name: str, order_number: str, component: str) -> None:
    child = client.get_workflow_handle(ids.provisioning_workflow_id(order_number, component))
    save_history(name, await child.fetch_history())


@pytest.mark.skipif(not RECORD_HISTORIES, reason="set O2A_RECORD_HISTORIES=1 to record")
async def test_record_histories(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    gated = GatedFulfillment()
    activate = gated.hold(Step.ACTIVATE, PROV_FIXED)
    async with worker(fulfillment=gated):
        # Straight through.
        number = f"REPLAY-{order_number}"
        done = await _start(client, settings, sample("triple_play.xml", number))
        activate.release()
        assert (await done.result()).state is OrderState.COMPLETED
        save_history("triple_play", await done.fetch_history())
        await _save_child(client, "triple_play_provisioning", number, PROV_FIXED)

        # Fallout, then the operator's resolve.
        faulty = sample("broadband_only.xml", f"REPLAY-F-{order_number}")
        plan_line = next(
            line
            for line in faulty.lines
            if line.item.product_class == "Broadband Service Plan Class"
        )
        set_spec(faulty, plan_line.id, "SimulatedFault", "design:NO_CAPACITY:1")
        failing = await _start(client, settings, faulty)
        await wait_for_state(failing, OrderState.FAILED)
        await failing.execute_update(
            CustomerOrderWorkflow.resolve, OperatorRequest(operator="recorder", reason="fixed")
        )
        assert (await failing.result()).state is OrderState.COMPLETED
        save_history("fallout_resolved", await failing.fetch_history())

        # A revision (drop broadband, change the voice plan, add a mobile feature) and a
        # cancel, each landing while the fixed line is being activated.
        for name in ("revised_mid_flight", "cancelled_mid_flight"):
            number = f"REPLAY-{name}-{order_number}"
            gate = gated.hold(Step.ACTIVATE, PROV_FIXED)
            running = await _start(client, settings, sample("triple_play.xml", number))
            await gate.wait_reached()
            request = request_id()
            if name == "cancelled_mid_flight":
                await running.signal(
                    CustomerOrderWorkflow.cancel,
                    CancelRequest(request_id=request, reason="recorded cancel"),
                )
            else:
                changed = sample("revisions/triple_play_r2_combined.xml", number)
                await running.signal(
                    CustomerOrderWorkflow.revise,
                    RevisionRequest(order=changed, request_id=request),
                )
            gate.release()
            outcome = await running.execute_update(
                CustomerOrderWorkflow.request_outcome, OutcomeRequest(request_id=request)
            )
            assert outcome.outcome in ("accepted", "cancelled"), outcome
            await running.result()
            save_history(name, await running.fetch_history())
            if name == "revised_mid_flight":
                await _save_child(client, "revised_provisioning", number, PROV_FIXED)

        # A cancel whose undo fails: the order waits in fallout until resolved.
        number = f"REPLAY-U-{order_number}"
        order = set_spec(
            sample("triple_play.xml", number), "1.1.1", "SimulatedFault", "undo-design:UNDONE:1"
        )
        gate = gated.hold(Step.ACTIVATE, PROV_FIXED)
        undoing = await _start(client, settings, order)
        await gate.wait_reached()
        await undoing.signal(CustomerOrderWorkflow.cancel, CancelRequest(request_id=request_id()))
        gate.release()
        await wait_for_state(undoing, OrderState.FAILED)
        await undoing.execute_update(CustomerOrderWorkflow.resolve, OperatorRequest())
        assert (await undoing.result()).state is OrderState.CANCELLED
        save_history("cancel_undo_failed", await undoing.fetch_history())

        # Suspend and resume, with a revision waiting behind them.
        number = f"REPLAY-S-{order_number}"
        gate = gated.hold(Step.ACTIVATE, PROV_FIXED)
        held = await _start(client, settings, sample("triple_play.xml", number))
        await gate.wait_reached()
        await held.execute_update(
            CustomerOrderWorkflow.suspend, OperatorRequest(operator="recorder", reason="check")
        )
        gate.release()
        await wait_for_state(held, OrderState.SUSPENDED)
        await held.execute_update(CustomerOrderWorkflow.resume, OperatorRequest())
        await held.signal(
            CustomerOrderWorkflow.revise,
            RevisionRequest(
                order=revision(sample("triple_play.xml", number), 2), request_id=request_id()
            ),
        )
        assert (await held.result()).state is OrderState.COMPLETED
        save_history("suspended_resumed", await held.fetch_history())
