"""Revisions and cancels of a running order, on a real Temporal dev server.

"Mid-flight" is made with gates: the test holds the fulfillment step it wants the order to
be at, sends the change, and releases the step once the order has taken the change.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from o2a import ids
from o2a.catalog import load_catalog
from o2a.config import Settings
from o2a.models import (
    ComponentState,
    FulfillmentStatus,
    ItemReference,
    OrderState,
    SalesOrderLine,
    Step,
)
from o2a.ports import FulfillmentRequest
from tests.support import (
    FULFIL_BILL,
    INIT_BILL,
    PROV_BB,
    PROV_FIXED,
    PROV_MOBILE,
    SHIP,
    SYNC,
    GatedFulfillment,
    StartWorker,
    act,
    cancel,
    components_reach,
    finished,
    fulfillment_calls,
    held,
    line_steps,
    messages,
    outcome,
    query,
    revise,
    revision,
    running,
    sample,
    set_spec,
    signalled,
    start,
    text_of,
    until,
)
from workflows.contracts.customer_order import (
    RESUME_UPDATE,
    SUSPEND_UPDATE,
    CancelRequest,
    RevisionRequest,
)
from workflows.customer_order import CustomerOrderWorkflow

FIXED_PLAN, MOBILE_PLAN = "1.1.1", "1.2.1"
BROADBAND_LINES = ["1.3", "1.3.1", "1.3.2", "1.3.3"]
DESIGN_ACTIVATE_VERIFY = [Step.DESIGN, Step.ACTIVATE, Step.VERIFY]


def every_step_undone(calls: list[tuple[str, Step, list[str]]]) -> list[tuple[str, Step]]:
    """(line, step) of every do step in ``calls`` whose undo step never came after it."""
    open_work: list[tuple[str, Step]] = []
    for _, step, lines in calls:
        for line_id in lines:
            if step.is_undo:
                done = Step(step.value.removeprefix("undo-"))
                if (line_id, done) in open_work:
                    open_work.remove((line_id, done))
            else:
                open_work.append((line_id, step))
    return open_work


async def test_revision_drops_changes_and_adds_mid_flight(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
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
    gated = GatedFulfillment()
    gates = [
        gated.hold(Step.ACTIVATE, PROV_FIXED),  # designed; activating
        gated.hold(Step.VERIFY, PROV_MOBILE),  # designed and activated; verifying
        gated.hold(Step.VERIFY, PROV_BB),
    ]
    async with running(client, settings, worker, order, gated) as handle:
        for gate in gates:
            await gate.wait_reached()
        # Customer sync, initial billing and shipping are done: billing takes the change in
        # place, the shipment is taken back.
        await components_reach(handle, ComponentState.COMPLETED, SYNC, INIT_BILL, SHIP)
        rid = await revise(handle, revised)
        answer = await outcome(handle, rid)
        assert (answer.number, answer.outcome, answer.kind) == (2, "accepted", "revision")
        gated.release_all()
        result = await handle.result()

    assert result.state is OrderState.COMPLETED, result
    assert result.revision == 2
    assert [(r.number, r.outcome, r.request_id) for r in result.revisions] == [(2, "accepted", rid)]
    lines = {line.id: line for line in result.lines}
    for line_id in BROADBAND_LINES:
        assert lines[line_id].status is FulfillmentStatus.CANCELLED, lines[line_id]
    for line_id in set(lines) - set(BROADBAND_LINES):
        assert lines[line_id].status is FulfillmentStatus.COMPLETE, lines[line_id]
    components = {c.id: c for c in result.components}
    assert components[PROV_BB].state is ComponentState.CANCELLED
    assert components[SHIP].state is ComponentState.CANCELLED
    assert result.status is FulfillmentStatus.COMPLETE

    # The dropped bundle: everything it did is undone, latest first.
    assert line_steps(gated.steps(PROV_BB))["1.3.1"] == [
        *DESIGN_ACTIVATE_VERIFY,
        Step.UNDO_VERIFY,
        Step.UNDO_ACTIVATE,
        Step.UNDO_DESIGN,
    ]
    assert [step for _, step, _ in gated.steps(SHIP)] == [Step.SHIP, Step.UNDO_SHIP]

    # The changed line is undone and done again; its untouched sibling is done once.
    fixed = line_steps(gated.steps(PROV_FIXED))
    assert fixed[FIXED_PLAN] == [
        Step.DESIGN,
        Step.ACTIVATE,
        Step.UNDO_ACTIVATE,
        Step.UNDO_DESIGN,
        *DESIGN_ACTIVATE_VERIFY,
    ], fixed
    assert fixed["1.1.2"] == DESIGN_ACTIVATE_VERIFY, "an untouched line was provisioned twice"

    # The added line is provisioned by the running child; the plan it joined, once.
    mobile = line_steps(gated.steps(PROV_MOBILE))
    assert mobile[MOBILE_PLAN] == DESIGN_ACTIVATE_VERIFY
    assert mobile["1.2.3"] == DESIGN_ACTIVATE_VERIFY
    # After the revise, the child's calls say the new revision.
    mobile_calls = [c for c in gated.calls if c.component_id == PROV_MOBILE]
    assert [c.revision for c in mobile_calls if "1.2.3" in [ln.id for ln in c.lines]] == [2, 2, 2]

    # Completed billing and customer sync take the change in place: the removed lines get
    # the undo step, the changed one the amend step, the added one the do step; untouched
    # lines are not sent again.
    for component, step in ((SYNC, Step.SYNC), (INIT_BILL, Step.BILLING)):
        assert gated.steps(component)[1:] == [
            (component, step.undo(), BROADBAND_LINES),
            (component, step.amend(), [FIXED_PLAN]),
            (component, step, ["1.2.3"]),
        ], gated.steps(component)
    # Final billing had not started: it runs once, with the revised order.
    assert gated.steps(FULFIL_BILL) == [
        (FULFIL_BILL, Step.BILLING, [line.id for line in revised.lines])
    ]

    crm = sorted(settings.outbox_dir.glob(f"USO.{order_number}.r2.u*.xml"))
    assert crm, "CRM heard nothing at revision 2"
    assert "<corecom:Number>2</corecom:Number>" in crm[-1].read_text()


async def test_stale_revision_is_rejected_and_the_order_carries_on(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("broadband_only.xml", order_number)
    stale = revision(order, order.revision)
    set_spec(stale, stale.lines[-1].id, "Colour", "red")
    async with held(client, settings, worker, order, Step.DESIGN) as (handle, _, gate):
        rid = await revise(handle, stale)
        answer = await outcome(handle, rid)
        gate.release()
        result = await handle.result()
    assert (answer.number, answer.outcome, answer.kind, answer.request_id) == (
        order.revision,
        "rejected",
        "revision",
        rid,
    )
    assert answer.reason == f"revision {order.revision} is not higher than the current 1"
    assert result.state is OrderState.COMPLETED
    assert result.revision == order.revision
    assert result.revisions == [answer]
    assert all(line.status is FulfillmentStatus.COMPLETE for line in result.lines)
    rejection = [
        p
        for p in settings.outbox_dir.glob(f"USO.{order_number}.*.xml")
        if "REJECTED" in p.read_text()
    ]
    assert len(rejection) == 1


@pytest.mark.parametrize("kind", ["revision", "cancel"])
async def test_a_request_signalled_again_is_taken_once(
    client: Client, settings: Settings, worker: StartWorker, order_number: str, kind: str
) -> None:
    """A bus message redelivered after its signal, or a door's retry, repeats the request
    ID: the order takes it once (no second outcome, such as a revision 'not higher')."""
    order = sample("broadband_only.xml", order_number)
    changed = revision(order, 2)
    set_spec(changed, changed.lines[-1].id, "Colour", "red")
    async with held(client, settings, worker, order, Step.DESIGN) as (handle, _, gate):
        if kind == "revision":
            rid = await revise(handle, changed)
            await handle.signal(
                CustomerOrderWorkflow.revise, RevisionRequest(order=changed, request_id=rid)
            )
        else:
            rid = await cancel(handle, reason="twice")
            await handle.signal(
                CustomerOrderWorkflow.cancel, CancelRequest(request_id=rid, reason="twice")
            )
        gate.release()
        answer = await outcome(handle, rid)
        result = await handle.result()
    assert answer.outcome == ("accepted" if kind == "revision" else "cancelled")
    assert result.revisions == [answer]
    assert result.state is (OrderState.COMPLETED if kind == "revision" else OrderState.CANCELLED)


async def test_five_revisions_back_to_back_apply_in_order(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
    revisions = []
    for number in range(2, 7):
        r = revision(order, number)
        set_spec(r, FIXED_PLAN, "CallerIdPresentation", f"v{number}")
        revisions.append(r)
    async with held(client, settings, worker, order, Step.ACTIVATE, PROV_FIXED) as (
        handle,
        gated,
        gate,
    ):
        rids = [await revise(handle, r) for r in revisions]
        answers = [await outcome(handle, rid) for rid in rids]
        gate.release()
        result = await handle.result()
    assert [(a.number, a.outcome, a.request_id) for a in answers] == [
        (n, "accepted", rid) for n, rid in zip(range(2, 7), rids, strict=True)
    ]
    assert result.state is OrderState.COMPLETED
    assert result.revision == 6
    assert result.revisions == answers
    assert all(line.status is FulfillmentStatus.COMPLETE for line in result.lines)
    # The running child took all five: the changed line is redone once, at revision 6.
    fixed = [c for c in gated.calls if c.component_id == PROV_FIXED]
    assert line_steps(gated.steps(PROV_FIXED))[FIXED_PLAN] == [
        Step.DESIGN,
        Step.ACTIVATE,
        Step.UNDO_ACTIVATE,
        Step.UNDO_DESIGN,
        *DESIGN_ACTIVATE_VERIFY,
    ]
    assert [c.revision for c in fixed[-3:]] == [6, 6, 6]
    assert _spec(fixed[-1], FIXED_PLAN, "CallerIdPresentation") == "v6"


def _spec(request: FulfillmentRequest, line_id: str, name: str) -> str | None:
    line = next(line for line in request.lines if line.id == line_id)
    return line.item.spec(name)


async def test_unchanged_revision_plans_nothing(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("broadband_only.xml", order_number)
    async with held(client, settings, worker, order, Step.ACTIVATE) as (handle, gated, gate):
        rid = await revise(handle, revision(order, order.revision + 1))
        assert (await outcome(handle, rid)).outcome == "accepted"
        gate.release()
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert [(r.number, r.outcome) for r in result.revisions] == [(order.revision + 1, "accepted")]
    for component in result.components:
        steps = [step for _, step, _ in gated.steps(component.id)]
        assert not any(step.is_undo for step in steps), (component.id, steps)
        assert len(steps) == len(set(steps)), (component.id, steps)  # nothing done twice
        assert all(lines == component.lines for _, _, lines in gated.steps(component.id))


async def test_cancel_mid_flight_undoes_everything(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
    async with held(client, settings, worker, order, Step.ACTIVATE, PROV_FIXED) as (
        handle,
        gated,
        gate,
    ):
        rid = await cancel(handle, "customer changed their mind")
        # The running child is told to undo itself while its step is still under way.
        await signalled(client, ids.provisioning_workflow_id(order_number, PROV_FIXED), "cancel")
        gate.release()
        answer = await outcome(handle, rid)
        result = await handle.result()
    assert (answer.number, answer.outcome, answer.kind) == (1, "cancelled", "cancel")
    assert answer.reason == "customer changed their mind"
    assert result.state is OrderState.CANCELLED
    assert result.status is FulfillmentStatus.CANCELLED
    assert all(line.status is FulfillmentStatus.CANCELLED for line in result.lines)
    assert all(c.state is ComponentState.CANCELLED for c in result.components)
    for component in result.components:
        left = every_step_undone(gated.steps(component.id))
        assert not left, (component.id, left)
    assert line_steps(gated.steps(PROV_FIXED))[FIXED_PLAN] == [
        Step.DESIGN,
        Step.ACTIVATE,
        Step.UNDO_ACTIVATE,
        Step.UNDO_DESIGN,
    ]
    crm = sorted(settings.outbox_dir.glob(f"USO.{order_number}.*.xml"))
    assert "CANCELLED" in crm[-1].read_text()


async def test_cancel_before_start_and_after_completion(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("broadband_only.xml", order_number)
    handle = await start(client, settings, order)  # no worker yet: nothing has started
    await cancel(handle)
    gated = GatedFulfillment()
    async with worker(fulfillment=gated):
        result = await handle.result()
    assert result.state is OrderState.CANCELLED
    assert [(r.number, r.outcome, r.reason) for r in result.revisions] == [
        (1, "cancelled", "cancel requested")
    ]
    assert not list(settings.outbox_dir.glob(f"PPO.{order_number}.*"))
    assert gated.calls == []

    second = sample("broadband_only.xml", order_number + "B")
    async with worker():
        done_handle = await start(client, settings, second)
        done = await done_handle.result()
    assert done.state is OrderState.COMPLETED
    # A finished order has no workflow left to take a cancel.
    with pytest.raises(RPCError, match="completed"):
        await cancel(done_handle)


async def test_revision_then_cancel_ends_cancelled(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
    r2 = revision(order, 2)
    set_spec(r2, FIXED_PLAN, "CallerIdPresentation", "Restricted")
    async with held(client, settings, worker, order, Step.ACTIVATE, PROV_FIXED) as (
        handle,
        gated,
        gate,
    ):
        revised = await revise(handle, r2)
        cancelled = await cancel(handle, "raced")
        assert (await outcome(handle, revised)).outcome == "accepted"
        gate.release()
        answer = await outcome(handle, cancelled)
        result = await handle.result()
    assert result.state is OrderState.CANCELLED
    assert [(r.number, r.outcome, r.kind) for r in result.revisions] == [
        (2, "accepted", "revision"),
        (2, "cancelled", "cancel"),
    ]
    assert result.revisions[1] == answer
    assert all(line.status is FulfillmentStatus.CANCELLED for line in result.lines)
    assert not every_step_undone(gated.steps(PROV_FIXED))


def hard_provisioning(settings: Settings, tmp_path: Path) -> Settings:
    """The test's settings with a catalog whose provisioning has a hard point of no return."""
    catalog = json.loads(load_catalog().model_dump_json())
    catalog["fulfillment_functions"]["Provision"]["point_of_no_return_kind"] = "hard"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return dataclasses.replace(settings, catalog_path=path)


@pytest.mark.parametrize("change", ["revision", "cancel"])
async def test_hard_point_of_no_return_refuses_the_change(
    client: Client,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
    tmp_path: Path,
    change: str,
) -> None:
    hard = hard_provisioning(settings, tmp_path)
    order = sample("broadband_only.xml", order_number)
    r2 = revision(order, 2)
    plan_line = next(x for x in r2.lines if x.item.product_class == "Broadband Service Plan Class")
    set_spec(r2, plan_line.id, "Speed", "2000 Mbps")
    # Held once activated: past the point of no return.
    async with held(client, hard, worker, order, Step.VERIFY) as (handle, gated, gate):

        async def past_ponr() -> bool:
            lines = {line.id: line for line in (await query(handle)).lines}
            return lines[plan_line.id].point_of_no_return

        await until(past_ponr)
        rid = await (revise(handle, r2) if change == "revision" else cancel(handle, "too late"))
        answer = await outcome(handle, rid)
        gate.release()
        result = await handle.result()
    assert answer.outcome == "rejected"
    assert answer.kind == change
    assert "hard point of no return" in (answer.reason or "")
    assert result.state is OrderState.COMPLETED
    assert result.revision == order.revision
    assert result.revisions == [answer]
    assert all(line.status is FulfillmentStatus.COMPLETE for line in result.lines)
    assert not any(step.is_undo for _, step, _ in gated.steps())


async def test_cancel_after_billing_started_undoes_billing_first(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
    async with held(client, settings, worker, order, Step.ACTIVATE, PROV_FIXED) as (
        handle,
        _,
        gate,
    ):
        await components_reach(handle, ComponentState.COMPLETED, INIT_BILL)
        cancelled = await cancel(handle, "after billing started")
        # A revision queued behind the cancel is answered, not lost.
        late = await revise(handle, revision(order, 2))
        await signalled(client, ids.provisioning_workflow_id(order_number, PROV_FIXED), "cancel")
        gate.release()
        result = await handle.result()  # the order ends as soon as it has answered both
    assert result.state is OrderState.CANCELLED
    assert [(r.request_id, r.number, r.outcome) for r in result.revisions] == [
        (cancelled, 1, "cancelled"),
        (late, 2, "rejected"),
    ]
    assert result.revisions[1].reason == "order is cancelled"
    calls = await fulfillment_calls(client, handle.id)
    steps = [(c["component_id"], c["step"]) for c in calls]
    assert (INIT_BILL, "undo-billing") in steps
    assert (SYNC, "undo-sync") in steps
    # Billing depended on the customer sync: it is undone first.
    assert steps.index((INIT_BILL, "undo-billing")) < steps.index((SYNC, "undo-sync"))
    assert not any(component == FULFIL_BILL for component, _ in steps)


async def test_every_revision_outcome_reaches_crm(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """Outcomes recorded back to back (an accepted revision, then a duplicate rejected before
    the next report, then a cancel): CRM hears each one, in order."""
    order = sample("triple_play.xml", order_number)
    async with held(client, settings, worker, order, Step.ACTIVATE, PROV_FIXED) as (
        handle,
        _,
        gate,
    ):
        requests = [
            await revise(handle, revision(order, 2)),
            await revise(handle, revision(order, 2)),
            await cancel(handle, "customer changed their mind"),
            await revise(handle, revision(order, 3)),
        ]
        await signalled(client, ids.provisioning_workflow_id(order_number, PROV_FIXED), "cancel")
        gate.release()
        result = await finished(handle)  # the order ends as soon as it has answered them all
    answers = {r.request_id: r.outcome for r in result.revisions}
    assert [answers[request] for request in requests] == [
        "accepted",
        "rejected",
        "cancelled",
        "rejected",
    ]
    reported = [
        (text_of(element, "Number")[0], text_of(element, "OutcomeCode")[0])
        for _, root in messages(settings.outbox_dir, f"USO.{order_number}.r*")
        for element in root.iter("{*}RevisionOutcome")
    ]
    assert reported == [
        ("2", "ACCEPTED"),
        ("2", "REJECTED"),
        ("2", "CANCELLED"),
        ("3", "REJECTED"),
    ]


async def test_second_revision_while_a_dropped_component_still_undoes(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
    r2 = revision(order, 2)
    r2.lines = [line for line in r2.lines if line.id not in BROADBAND_LINES]
    r3 = revision(r2, 3)
    set_spec(r3, FIXED_PLAN, "CallerIdPresentation", "Restricted")
    gated = GatedFulfillment()
    verifying = gated.hold(Step.VERIFY, PROV_BB)
    undoing = gated.hold(Step.UNDO_ACTIVATE, PROV_BB)
    async with running(client, settings, worker, order, gated) as handle:
        await verifying.wait_reached()
        dropped = await revise(handle, r2)
        assert (await outcome(handle, dropped)).outcome == "accepted"
        verifying.release()
        await undoing.wait_reached()  # the dropped broadband child is undoing its work
        changed = await revise(handle, r3)
        assert (await outcome(handle, changed)).outcome == "accepted"
        undoing.release()
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert [(r.number, r.outcome) for r in result.revisions] == [(2, "accepted"), (3, "accepted")]
    components = {c.id: c.state for c in result.components}
    assert components[PROV_BB] is ComponentState.CANCELLED
    assert not every_step_undone(gated.steps(PROV_BB))
    assert line_steps(gated.steps(PROV_BB))["1.3.1"] == [
        *DESIGN_ACTIVATE_VERIFY,
        Step.UNDO_VERIFY,
        Step.UNDO_ACTIVATE,
        Step.UNDO_DESIGN,
    ]


async def test_revisions_taken_before_a_rerun_all_reach_the_systems(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """Revision 2 changes a line of completed work (billing amends it in place, fixed
    provisioning redoes it), but before those reruns start (the order is suspended) revision
    3 changes another line of the same components: each system must end with revision 3."""
    order = sample("triple_play.xml", order_number)
    r2 = revision(order, 2)
    set_spec(r2, FIXED_PLAN, "CallerIdPresentation", "Restricted")
    r3 = revision(r2, 3)
    set_spec(r3, "1.1.2", "Colour", "blue")
    # Mobile activation, held, keeps the order running.
    async with held(client, settings, worker, order, Step.ACTIVATE, PROV_MOBILE) as (
        handle,
        gated,
        gate,
    ):
        await components_reach(handle, ComponentState.COMPLETED, SYNC, INIT_BILL, PROV_FIXED)
        await act(handle, SUSPEND_UPDATE)
        for r in (r2, r3):
            assert (await outcome(handle, await revise(handle, r))).outcome == "accepted"
        await act(handle, RESUME_UPDATE)
        gate.release()
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert result.revision == 3
    wanted = {line.id: line for line in r3.lines}
    stale = []
    for component in (SYNC, INIT_BILL, PROV_FIXED):
        # What the system holds for each line: the content of the last call that sent it.
        last: dict[str, tuple[Step, SalesOrderLine]] = {}
        for call in gated.calls:
            if call.component_id == component:
                for line in call.lines:
                    last[line.id] = (call.step, line)
        for line_id in (FIXED_PLAN, "1.1.2"):
            step, line = last[line_id]
            if step.is_undo or line != wanted[line_id]:
                stale.append((component, line_id, step.value, gated.steps(component)[1:]))
    assert not stale, "systems left with an earlier revision's content:\n" + "\n".join(
        map(str, stale)
    )


async def test_every_som_run_that_sends_anything_announces_itself_first(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """A completed broadband bundle loses a line: its line is undone by a run of its own,
    and the rest is run again with nothing left to do (it reports completion at once).
    Every run that sent an update sent its ProvisioningOrderEBM too."""
    order = sample("triple_play.xml", order_number)
    revised = revision(order, 2)
    revised.lines = [line for line in revised.lines if line.id != "1.3.2"]  # Static IP
    gated = GatedFulfillment()
    billing = gated.hold(Step.BILLING, FULFIL_BILL)
    async with running(client, settings, worker, order, gated) as handle:
        await billing.wait_reached()
        await components_reach(handle, ComponentState.COMPLETED, PROV_BB)
        rid = await revise(handle, revised)
        gated.release_all()  # the billing call under way finishes before the change
        assert (await outcome(handle, rid)).outcome == "accepted"
        result = await handle.result()
    assert result.state is OrderState.COMPLETED, result

    def run_of(path: Path) -> str:
        attempt = path.stem.split(".")[2]  # rN or rN-nR
        return attempt.partition("-")[2] or "n1"

    announced = {
        run_of(p): p for p in settings.outbox_dir.glob(f"PPO.{order_number}.*.{PROV_BB}.xml")
    }
    reported = {
        run_of(p) for p in settings.outbox_dir.glob(f"PFOU.{order_number}.*.{PROV_BB}.u*.xml")
    }
    assert len(reported) > 1, reported  # the bundle ran again after the revision
    assert reported <= set(announced), (sorted(reported), sorted(announced))
