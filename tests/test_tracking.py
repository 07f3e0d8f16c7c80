"""Status rules and the fulfillment tracker, driven through a whole triple-play plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from o2a.catalog import load_catalog
from o2a.decomposition import decompose
from o2a.inbound import read_order_file
from o2a.models import (
    ComponentState,
    ComponentUpdate,
    CustomerOrder,
    FulfillmentStatus,
    HeardLine,
    HeardUpdate,
    LineUpdate,
    OrderState,
    ServiceActionCode,
)
from o2a.tracking import (
    CarriedTracker,
    FulfillmentTracker,
    aggregate_order_status,
    line_status,
)
from tests.support import (
    FULFIL_BILL,
    INIT_BILL,
    PROV_BB,
    PROV_FIXED,
    PROV_MOBILE,
    SAMPLES,
    SHIP,
    SYNC,
)

T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)

S = FulfillmentStatus
C = ComponentState

INDEPENDENT = [SYNC, PROV_BB, PROV_FIXED, PROV_MOBILE, SHIP]
HEARD = set(HeardLine.model_fields)


# --- pure status rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([S.COMPLETE], S.COMPLETE),
        ([S.COMPLETE, S.COMPLETE, S.COMPLETE], S.COMPLETE),
        ([S.COMPLETE, S.FAILED], S.FAILED),
        ([S.IN_PROGRESS, S.FAILED, S.PENDING], S.FAILED),
        ([S.CANCELLED, S.FAILED], S.FAILED),
        ([S.IN_PROGRESS, S.PENDING], S.IN_PROGRESS),
        ([S.COMPLETE, S.PENDING], S.IN_PROGRESS),
        ([S.IN_PROGRESS, S.COMPLETE], S.IN_PROGRESS),
        ([S.OPEN, S.IN_PROGRESS], S.IN_PROGRESS),
        ([S.CANCELLED, S.CANCELLED], S.CANCELLED),
        ([S.PENDING, S.PENDING], S.OPEN),
        ([S.OPEN, S.PENDING], S.OPEN),
        ([S.OPEN], S.OPEN),
        ([S.COMPLETE, S.ABORTED], S.ABORTED),
        ([S.CANCELLED, S.ABORTED], S.ABORTED),
        ([S.FAILED, S.ABORTED], S.FAILED),
    ],
)
def test_aggregate_order_status(
    statuses: list[FulfillmentStatus], expected: FulfillmentStatus
) -> None:
    assert aggregate_order_status(statuses) is expected


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], S.COMPLETE),
        ([C.COMPLETED], S.COMPLETE),
        ([C.COMPLETED, C.COMPLETED], S.COMPLETE),
        ([C.COMPLETED, C.FAILED], S.FAILED),
        ([C.PENDING, C.FAILED], S.FAILED),
        ([C.IN_PROGRESS, C.FAILED], S.FAILED),
        ([C.IN_PROGRESS], S.IN_PROGRESS),
        ([C.COMPLETED, C.PENDING], S.IN_PROGRESS),
        ([C.PENDING, C.IN_PROGRESS], S.IN_PROGRESS),
        ([C.PENDING], S.PENDING),
        ([C.PENDING, C.PENDING], S.PENDING),
    ],
)
def test_line_status(states: list[ComponentState], expected: FulfillmentStatus) -> None:
    assert line_status(states) is expected


# --- the tracker ----------------------------------------------------------------------------


@pytest.fixture
def order() -> CustomerOrder:
    return read_order_file(SAMPLES / "triple_play.xml")


@pytest.fixture
def tracker(order: CustomerOrder) -> FulfillmentTracker:
    return FulfillmentTracker(order, decompose(order, load_catalog()))


def update(
    component: str, state: ComponentState, milestone: str | None = None, **kwargs: object
) -> ComponentUpdate:
    return ComponentUpdate.model_validate(
        {"component_id": component, "state": state, "milestone": milestone, **kwargs}
    )


def run(tracker: FulfillmentTracker, component: str, at: datetime = T0) -> None:
    """One component from start to finish, with the catalog's milestones."""
    plan = tracker.plan.component(component)
    tracker.apply(update(component, C.IN_PROGRESS, plan.start_milestone), at)
    tracker.apply(
        update(component, C.COMPLETED, plan.complete_milestone), at + timedelta(minutes=5)
    )


def statuses(tracker: FulfillmentTracker) -> dict[str, FulfillmentStatus]:
    return {line_id: line.status for line_id, line in tracker.lines.items()}


def test_initial_state(tracker: FulfillmentTracker) -> None:
    assert set(statuses(tracker).values()) == {S.PENDING}
    assert tracker.order_status() is S.OPEN
    assert tracker.ready_components() == INDEPENDENT
    assert not tracker.is_finished()
    assert not tracker.has_failed()
    assert tracker.lines["1.3.1"].pattern == "Service.Broadband"
    assert tracker.lines["1.3.1"].name == "Fibre 500"


def test_ready_components_respect_dependencies(tracker: FulfillmentTracker) -> None:
    tracker.apply(update(SYNC, C.IN_PROGRESS), T0)
    assert SYNC not in tracker.ready_components()
    assert INIT_BILL not in tracker.ready_components()
    tracker.apply(update(SYNC, C.COMPLETED), T0)
    assert tracker.ready_components() == [PROV_BB, PROV_FIXED, PROV_MOBILE, SHIP, INIT_BILL]
    run(tracker, INIT_BILL)
    for component in (PROV_BB, PROV_FIXED, PROV_MOBILE):
        run(tracker, component)
        assert FULFIL_BILL not in tracker.ready_components()
    assert tracker.ready_components() == [SHIP]
    tracker.apply(update(SHIP, C.IN_PROGRESS, "SHIP_START"), T0)
    assert tracker.ready_components() == []
    tracker.apply(update(SHIP, C.COMPLETED, "SHIPPED"), T0)
    assert tracker.ready_components() == [FULFIL_BILL]
    run(tracker, FULFIL_BILL)
    assert tracker.ready_components() == []
    assert tracker.is_finished()


def test_whole_triple_play(tracker: FulfillmentTracker) -> None:
    run(tracker, SYNC)
    assert tracker.order_status() is S.IN_PROGRESS  # every line has a completed component
    assert tracker.lines["1"].milestone == "CUSTOMER_SYNCED"

    tracker.apply(update(PROV_BB, C.IN_PROGRESS, "PROVISION_START", step="design"), T0)
    assert tracker.components[PROV_BB].started_at == T0
    assert tracker.lines["1.3.1"].status is S.IN_PROGRESS
    assert tracker.lines["1.3.1"].milestone == "PROVISION_START"
    assert tracker.lines["1.3.3"].milestone == "CUSTOMER_SYNCED"  # CPE: not provisioned
    tracker.apply(update(PROV_BB, C.IN_PROGRESS, step="activate"), T0 + timedelta(minutes=1))
    assert tracker.components[PROV_BB].started_at == T0  # first start kept
    assert tracker.lines["1.3.1"].milestone == "PROVISION_START"  # no milestone: unchanged

    for component in (INIT_BILL, PROV_BB, PROV_FIXED, PROV_MOBILE, SHIP):
        run(tracker, component)
    assert tracker.components[PROV_BB].completed_at == T0 + timedelta(minutes=5)
    assert tracker.lines["1.3.3"].milestone == "SHIPPED"
    assert tracker.lines["1.3.1"].milestones == [
        "CUSTOMER_SYNCED",
        "PROVISION_START",
        "BILLING_START",
        "PROVISION_COMPLETE",
    ]  # in the order they arrived, each once
    assert tracker.order_status() is S.IN_PROGRESS
    assert not tracker.is_finished()

    run(tracker, FULFIL_BILL)
    assert tracker.is_finished()
    assert set(statuses(tracker).values()) == {S.COMPLETE}
    assert tracker.order_status() is S.COMPLETE
    assert {line.milestone for line in tracker.lines.values()} == {"BILLING_COMPLETE"}

    status = tracker.snapshot(OrderState.COMPLETED, crm_updates_sent=4)
    assert status.order_number == "TP-1001"
    assert status.state is OrderState.COMPLETED
    assert status.status is S.COMPLETE
    assert status.customer_account == "CA-100245"
    assert status.crm_updates_sent == 4
    assert len(status.lines) == 12
    assert [c.id for c in status.components] == [
        SYNC,
        PROV_BB,
        PROV_FIXED,
        PROV_MOBILE,
        SHIP,
        INIT_BILL,
        FULFIL_BILL,
    ]
    assert all(c.state is C.COMPLETED for c in status.components)


def test_data_updates_merge(tracker: FulfillmentTracker) -> None:
    tracker.apply(
        update(
            PROV_MOBILE,
            C.IN_PROGRESS,
            line_updates=[
                LineUpdate(line_id="1.2.1", data={"MSISDN": "+31611111111", "ICCID": "8931000"}),
            ],
        ),
        T0,
    )
    tracker.apply(
        update(
            PROV_MOBILE,
            C.COMPLETED,
            line_updates=[
                LineUpdate(line_id="1.2.1", data={"ICCID": "8931999", "IMSI": "204040000000001"}),
                LineUpdate(line_id="1.2.2", data={"ServiceInstanceId": "SI-2"}),
            ],
        ),
        T0,
    )
    assert tracker.lines["1.2.1"].data == {
        "MSISDN": "+31611111111",
        "ICCID": "8931999",
        "IMSI": "204040000000001",
    }
    assert tracker.lines["1.2.2"].data == {"ServiceInstanceId": "SI-2"}
    assert tracker.lines["1.1.1"].data == {}


def test_take_changes(tracker: FulfillmentTracker) -> None:
    first = tracker.take_changes()
    assert first is not None and len(first) == 12  # CRM has heard nothing yet
    assert tracker.take_changes() is None

    tracker.apply(update(SYNC, C.IN_PROGRESS), T0)  # every line goes IN PROGRESS
    changed = tracker.take_changes()
    assert changed is not None and len(changed) == 12
    assert {line.status for line in changed} == {S.IN_PROGRESS}
    assert tracker.take_changes() is None

    tracker.apply(update(PROV_FIXED, C.IN_PROGRESS, "PROVISION_START"), T0)
    changed = tracker.take_changes()
    assert changed is not None
    assert [line.id for line in changed] == ["1.1.1", "1.1.2"]
    assert changed[0].milestone == "PROVISION_START"

    tracker.apply(update(PROV_FIXED, C.IN_PROGRESS, step="design"), T0)  # nothing visible
    assert tracker.take_changes() is None

    # Activation is the point of no return: CRM is told, once, for the component's lines.
    tracker.apply(update(PROV_FIXED, C.IN_PROGRESS, step="activate"), T0)
    changed = tracker.take_changes()
    assert changed is not None
    assert [(line.id, line.point_of_no_return) for line in changed] == [
        ("1.1.1", True),
        ("1.1.2", True),
    ]
    assert PROV_FIXED in tracker.ponr_passed
    tracker.apply(update(PROV_FIXED, C.IN_PROGRESS, step="verify"), T0)
    assert tracker.take_changes() is None

    tracker.apply(
        update(
            PROV_FIXED,
            C.IN_PROGRESS,
            line_updates=[LineUpdate(line_id="1.1.1", data={"AssignedNumber": "+31201234567"})],
        ),
        T0,
    )
    changed = tracker.take_changes()
    assert changed is not None
    assert [(line.id, line.data) for line in changed] == [
        ("1.1.1", {"AssignedNumber": "+31201234567"})
    ]
    # the same data again is no change
    tracker.apply(
        update(
            PROV_FIXED,
            C.IN_PROGRESS,
            line_updates=[LineUpdate(line_id="1.1.1", data={"AssignedNumber": "+31201234567"})],
        ),
        T0,
    )
    assert tracker.take_changes() is None


def test_taken_changes_are_copies(tracker: FulfillmentTracker) -> None:
    changed = tracker.take_changes()
    assert changed is not None
    changed[0].data["x"] = "y"
    assert tracker.lines[changed[0].id].data == {}


def test_failure_raises_fallout_and_reset_reopens(tracker: FulfillmentTracker) -> None:
    run(tracker, SYNC)
    tracker.take_changes()
    tracker.apply(update(PROV_FIXED, C.IN_PROGRESS, "PROVISION_START"), T0)
    tracker.apply(
        update(
            PROV_FIXED,
            C.FAILED,
            step="activate",
            fault_code="PORT_UNAVAILABLE",
            fault_message="number port rejected by donor",
        ),
        T0 + timedelta(hours=1),
    )
    assert tracker.has_failed()
    assert tracker.lines["1.1.1"].status is S.FAILED
    assert tracker.lines["1.1.2"].status is S.FAILED
    assert tracker.lines["1.2.1"].status is S.IN_PROGRESS
    assert tracker.order_status() is S.FAILED
    assert PROV_FIXED not in tracker.ready_components()
    assert [(f.component, f.code, f.step, f.state) for f in tracker.fallouts] == [
        (PROV_FIXED, "PORT_UNAVAILABLE", "activate", "open")
    ]
    fallout = tracker.fallouts[0]
    assert fallout.id == "TP-1001-F1"
    assert fallout.lines == ["1.1.1", "1.1.2"]
    assert fallout.message == "number port rejected by donor"
    assert fallout.raised_at == T0 + timedelta(hours=1)
    changed = tracker.take_changes()
    assert changed is not None
    assert {line.id: line.status for line in changed} == {"1.1.1": S.FAILED, "1.1.2": S.FAILED}

    assert tracker.reset_failed() == [PROV_FIXED]
    assert not tracker.has_failed()
    assert tracker.components[PROV_FIXED].state is C.PENDING
    assert tracker.fallouts[0].state == "resolved"
    assert statuses(tracker)["1.1.1"] is S.IN_PROGRESS
    assert tracker.order_status() is S.IN_PROGRESS
    assert PROV_FIXED in tracker.ready_components()
    assert tracker.reset_failed() == []

    tracker.apply(update(PROV_FIXED, C.FAILED), T0)
    assert [f.id for f in tracker.fallouts] == ["TP-1001-F1", "TP-1001-F2"]
    assert tracker.fallouts[1].code == "FULFILLMENT_FAILED"
    assert tracker.fallouts[1].state == "open"


def test_a_carried_tracker_is_the_same_tracker_in_the_next_run(
    tracker: FulfillmentTracker,
) -> None:
    """Through continue-as-new's payload and back: the same status, the same fallout, and
    CRM hears only what it had not heard before, once."""
    run(tracker, SYNC)
    tracker.take_changes()
    tracker.apply(update(PROV_FIXED, C.IN_PROGRESS, "PROVISION_START"), T0)
    tracker.apply(update(PROV_FIXED, C.FAILED, step="activate", fault_code="PORT"), T0)
    tracker.ponr_passed.add(SYNC)
    tracker.take_changes()
    tracker.apply(update(PROV_MOBILE, C.IN_PROGRESS, "PROVISION_START"), T0)
    payload = tracker.carried().model_dump_json()
    again = FulfillmentTracker.restored(CarriedTracker.model_validate_json(payload))
    assert again.snapshot(OrderState.FAILED, 3) == tracker.snapshot(OrderState.FAILED, 3)
    assert again.ready_components() == tracker.ready_components()
    assert again.ponr_passed == tracker.ponr_passed and SYNC in again.ponr_passed
    changed = again.take_changes()
    assert changed is not None and [line.id for line in changed] == ["1.2.1", "1.2.2"]
    assert again.take_changes() is None
    assert again.reset_failed() == [PROV_FIXED]
    assert PROV_FIXED in again.ready_components()


def test_details_markdown(tracker: FulfillmentTracker) -> None:
    run(tracker, SYNC)
    tracker.apply(update(PROV_MOBILE, C.FAILED, fault_code="HLR_DOWN"), T0)
    text = tracker.details_markdown(OrderState.FAILED)
    assert "| component | target system | state | lines | milestone |" in text
    assert "**failed**" in text
    assert "order status **FAILED**" in text
    assert f"| {SYNC} | BillingSystem | completed | 12 | CUSTOMER_SYNCED |" in text
    assert f"| {PROV_MOBILE} | MobileProvisioningSystem | failed | 2 |" in text
    assert "fallout: 1 open" in text
    assert "2 FAILED" in text
    assert len(text.splitlines()) < 20


def test_unchanged_lines_are_complete_and_uncounted(order: CustomerOrder) -> None:
    for line in order.lines:
        if line.id.startswith("1.2"):
            line.action = ServiceActionCode.NO_CHANGE
    tracker = FulfillmentTracker(order, decompose(order, load_catalog()))
    assert tracker.lines["1.2.1"].status is S.COMPLETE
    for component in [c.id for c in tracker.plan.components]:
        run(tracker, component)
    assert tracker.is_finished()
    assert tracker.order_status() is S.COMPLETE


def test_order_with_context_lines_is_open_before_work_starts(order: CustomerOrder) -> None:
    order.lines[-1].action = ServiceActionCode.NO_CHANGE  # the discount is context only
    tracker = FulfillmentTracker(order, decompose(order, load_catalog()))
    assert tracker.order_status() is S.OPEN


def test_abort_ends_unfinished_work_aborted(tracker: FulfillmentTracker) -> None:
    """Aborted orders end with a final status: what finished stays, the rest is ABORTED."""
    run(tracker, SYNC)
    run(tracker, PROV_MOBILE)
    tracker.apply(update(PROV_FIXED, C.IN_PROGRESS, "PROVISION_START"), T0)
    tracker.apply(update(PROV_BB, C.FAILED, fault_code="NO_STATIC_IP"), T0)
    tracker.abort()
    states = {c.id: c.state for c in tracker.components.values()}
    assert states[SYNC] is C.COMPLETED
    assert states[PROV_MOBILE] is C.COMPLETED
    for cid in (PROV_FIXED, PROV_BB, SHIP, INIT_BILL, FULFIL_BILL):
        assert states[cid] is C.ABORTED, cid
    assert set(statuses(tracker).values()) == {S.ABORTED}  # every line waits on billing
    assert tracker.order_status() is S.ABORTED
    assert [f.state for f in tracker.fallouts] == ["closed"]
    status = tracker.snapshot(OrderState.ABORTED, crm_updates_sent=0)
    assert status.state is OrderState.ABORTED
    assert status.status is S.ABORTED


def test_suspended_order_shows_running_components_suspended(
    tracker: FulfillmentTracker,
) -> None:
    """Shown, not stored: the snapshot of a suspended order says so for started work."""
    run(tracker, SYNC)
    tracker.apply(update(PROV_FIXED, C.IN_PROGRESS, "PROVISION_START"), T0)
    tracker.wait(SHIP, T0)
    shown = {c.id: c.state for c in tracker.snapshot(OrderState.SUSPENDED, 0).components}
    assert shown[PROV_FIXED] is C.SUSPENDED
    assert shown[SHIP] is C.SUSPENDED
    assert shown[SYNC] is C.COMPLETED
    assert shown[PROV_MOBILE] is C.PENDING
    assert tracker.components[PROV_FIXED].state is C.IN_PROGRESS
    resumed = {c.id: c.state for c in tracker.snapshot(OrderState.IN_PROGRESS, 0).components}
    assert resumed[PROV_FIXED] is C.IN_PROGRESS


def test_reopen_after_a_failed_undo(tracker: FulfillmentTracker) -> None:
    """A failed undo is fallout; resolving it puts the component back as it was before."""
    run(tracker, SYNC)
    tracker.apply(update(SYNC, C.FAILED, step="undo-sync", fault_code="LOCKED"), T0)
    assert [(f.step, f.state) for f in tracker.fallouts] == [("undo-sync", "open")]
    tracker.reopen(SYNC, C.COMPLETED)
    assert tracker.components[SYNC].state is C.COMPLETED
    assert [f.state for f in tracker.fallouts] == ["resolved"]
    assert not tracker.has_failed()


def test_runs_record_waits_retries_and_undo(tracker: FulfillmentTracker) -> None:
    """Each start, wait, retry and undo is a run of its own, numbered as message IDs number
    them (a wait and the run it ends in share one), timed by the workflow clock."""
    minute = timedelta(minutes=1)
    tracker.wait(SHIP, T0)
    tracker.apply(update(SHIP, C.IN_PROGRESS), T0 + minute)
    tracker.apply(update(SHIP, C.FAILED, fault_code="NO_STOCK"), T0 + 2 * minute)
    tracker.reset_failed(SHIP)
    tracker.apply(update(SHIP, C.IN_PROGRESS), T0 + 3 * minute)
    tracker.apply(update(SHIP, C.IN_PROGRESS, "SHIPPED"), T0 + 4 * minute)  # a milestone
    tracker.apply(update(SHIP, C.COMPLETED), T0 + 5 * minute)
    tracker.undoing(SHIP, T0 + 6 * minute)
    assert tracker.components[SHIP].state is C.COMPLETED  # until the undo is done
    tracker.undone(SHIP, T0 + 7 * minute)
    shown = {c.id: c for c in tracker.snapshot(OrderState.IN_PROGRESS, 0).components}
    runs = [
        (r.kind.value, r.run, r.outcome, r.started_at - T0, r.ended_at and r.ended_at - T0)
        for r in shown[SHIP].runs
    ]
    assert runs == [
        ("wait", 1, C.IN_PROGRESS, 0 * minute, minute),
        ("do", 1, C.FAILED, minute, 2 * minute),
        ("do", 2, C.COMPLETED, 3 * minute, 5 * minute),
        ("undo", 3, C.CANCELLED, 6 * minute, 7 * minute),
    ]
    assert {r.revision for r in tracker.components[SHIP].runs} == {1}


def test_runs_end_with_abort_and_recall(tracker: FulfillmentTracker) -> None:
    tracker.apply(update(PROV_FIXED, C.IN_PROGRESS), T0)
    tracker.wait(SHIP, T0)
    tracker.recall([SHIP], T0 + timedelta(seconds=1))
    tracker.abort(T0 + timedelta(seconds=2))
    assert [(r.kind.value, r.outcome) for r in tracker.components[SHIP].runs] == [
        ("wait", C.PENDING)
    ]
    assert [(r.kind.value, r.outcome) for r in tracker.components[PROV_FIXED].runs] == [
        ("do", C.ABORTED)
    ]


def test_an_update_an_earlier_try_sent_is_taken_as_told(tracker: FulfillmentTracker) -> None:
    """A worker killed mid-task: its try told CRM billing had started on every line. The
    retried task took in broadband's design first, and finds that update under the ID
    it meant for design. CRM's copy is taken as told: design goes on for the broadband
    lines only, and billing, reached next, is told again only where design overtook it."""
    run(tracker, SYNC)
    assert tracker.take_changes()
    billing = [
        HeardLine(id=line_id, status=S.IN_PROGRESS, milestone="BILLING_START")
        for line_id in tracker.lines
    ]
    tracker.apply(update(PROV_BB, C.IN_PROGRESS, "PROVISION_START", step="design"), T0)
    design = tracker.take_changes()
    assert design is not None
    assert [line.id for line in design] == ["1.3.1", "1.3.2"]

    heard = HeardUpdate(order_status=S.IN_PROGRESS, lines=billing)
    rest = tracker.heard_elsewhere(heard, design, tracker.order_status())
    assert rest is not None
    assert [(line.id, line.milestone) for line in rest] == [
        ("1.3.1", "PROVISION_START"),
        ("1.3.2", "PROVISION_START"),
    ]
    tracker.apply(update(INIT_BILL, C.IN_PROGRESS, "BILLING_START"), T0)
    again = tracker.take_changes()
    assert again is not None
    assert {line.id for line in again} <= {"1.3.1", "1.3.2"}

    # The same update found again under an ID: nothing left to send.
    same = HeardUpdate(
        order_status=tracker.order_status(),
        lines=[HeardLine.model_validate(line.model_dump(include=HEARD)) for line in again],
    )
    assert tracker.heard_elsewhere(same, again, tracker.order_status()) is None
