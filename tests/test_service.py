"""The application service and the CLI's wording: the pure parts (validation, plans, revision
previews, tables) without a server, then the use cases against a real Temporal dev server
with an in-process worker whose fulfillment steps the test gates (no sleeps)."""

from __future__ import annotations

import json
import random
import string
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from temporalio.client import Client

from o2a import ids
from o2a.catalog import Catalog
from o2a.cli_format import (
    duration,
    format_action,
    format_orders,
    format_outcome,
    format_plan,
    format_preview,
    format_request,
    format_status,
    line_list,
    number_ranges,
)
from o2a.config import Settings
from o2a.decomposition import decompose, natural_key
from o2a.errors import (
    InputError,
    MessageBusUnavailable,
    NoWorkerError,
    OrderConflictError,
    UnknownOrderError,
)
from o2a.models import (
    ComponentState,
    ComponentView,
    CustomerOrder,
    FalloutView,
    FulfillmentStatus,
    LineView,
    OperatorActionView,
    OrderPlan,
    OrderState,
    OrderStatus,
    RevisionView,
    ServiceActionCode,
    Specification,
)
from o2a.ports import Destination
from o2a.revision import Compensation
from o2a.service import OrderIntake, OrderService, OrderSummary, RequestReceipt
from tests.support import (
    FULFIL_BILL,
    PROV_BB,
    PROV_FIXED,
    SAMPLES,
    SHIP,
    SYNC,
    Background,
    StartWorker,
    cli_env,
    closed,
    held_mid_flight,
    quick_triple_play,
    sample,
    set_spec,
    until,
)
from workflows.contracts.customer_order import OperatorRequest, RevisionBasis

AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture
def intake(settings: Settings) -> OrderIntake:
    return OrderIntake(settings)


# --- validation and plans: no server ------------------------------------------------------------


def test_load_and_parse_give_the_same_valid_order(intake: OrderIntake):
    path = SAMPLES / "triple_play.xml"
    loaded = intake.load_order(path)
    assert intake.parse_order(path.read_bytes()) == loaded
    assert intake.parse_order(path.read_text()) == loaded
    json_order = intake.load_order(SAMPLES / "triple_play.json")
    assert [line.id for line in json_order.lines] == [line.id for line in loaded.lines]


def _json_with(change: Callable[[dict[str, object]], None]) -> str:
    raw = json.loads((SAMPLES / "triple_play.json").read_text())
    change(raw)
    return json.dumps(raw)


def _first_product(raw: dict[str, object]) -> dict[str, object]:
    lines = cast(list[dict[str, dict[str, object]]], raw["lines"])
    return next(line["item"] for line in lines if line["item"].get("product_class"))


def _unknown_class(raw: dict[str, object]) -> None:
    _first_product(raw)["product_class"] = "Teleportation Class"


def _bad_fault(raw: dict[str, object]) -> None:
    _first_product(raw)["specifications"] = [{"name": "SimulatedFault", "value": "explode"}]


def _duplicate_line(raw: dict[str, object]) -> None:
    lines = cast(list[object], raw["lines"])
    lines.append(lines[-1])


def _no_lines(raw: dict[str, object]) -> None:
    raw["lines"] = []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_unknown_class, "Teleportation Class"),
        (_bad_fault, "SimulatedFault"),
        (_duplicate_line, "duplicate line"),
        (_no_lines, "lines"),
    ],
)
def test_everything_submit_checks_is_an_input_error(
    intake: OrderIntake, change: Callable[[dict[str, object]], None], named: str
):
    with pytest.raises(InputError, match=named):
        intake.parse_order(_json_with(change))


def test_a_missing_file_or_a_bad_catalog_is_an_input_error(tmp_path: Path, settings: Settings):
    with pytest.raises(InputError, match="does-not-exist"):
        OrderIntake(settings).load_order(tmp_path / "does-not-exist.xml")
    (tmp_path / "catalog.json").write_text("{")
    broken = Settings(
        task_queue="q", outbox_dir=tmp_path, catalog_path=tmp_path / "catalog.json", ui_url=""
    )
    with pytest.raises(InputError, match="catalog"):
        OrderIntake(broken).load_order(SAMPLES / "triple_play.xml")


async def test_a_cancel_mode_order_is_not_submitted(settings: Settings):
    """Refused before Temporal is asked anything: the client is never touched."""
    service = OrderService(cast(Client, None), settings)
    order = service.load_order(SAMPLES / "revisions" / "triple_play_cancel.xml")
    with pytest.raises(InputError, match="FulfillmentModeCode CANCEL"):
        await service.submit(order)


def test_plan_is_the_catalog_decomposition(
    intake: OrderIntake, triple_play: CustomerOrder, catalog: Catalog
):
    assert intake.plan(triple_play) == decompose(triple_play, catalog)


def test_plan_table(intake: OrderIntake, triple_play: CustomerOrder):
    text = format_plan(intake.plan(triple_play))
    rows = text.splitlines()
    assert rows[0] == "Order TP-1001 revision 1: 12 lines, 7 components"
    header = rows[2].split()
    assert header[:4] == ["#", "COMPONENT", "FUNCTION", "TARGET"]
    assert {"DEPENDS", "EXPECTED", "PONR", "LINES"} <= set(header)
    by_component = {row.split()[1]: row for row in rows[3:]}
    assert set(by_component) == {c.id for c in intake.plan(triple_play).components}
    assert "activate (soft)" in by_component[PROV_FIXED]
    assert "1.1.1,1.1.2" in by_component[PROV_FIXED]
    assert "4h" in by_component[PROV_FIXED]
    assert by_component[SYNC].split()[0] == "1"  # runs first: the others depend on it
    assert " 2-6 " in by_component[FULFIL_BILL]  # waits for components 2 to 6


def test_plan_lists_bundles_of_a_function_in_natural_order(intake: OrderIntake):
    plan = intake.plan(intake.load_order(SAMPLES / "business_200.xml"))
    text = format_plan(plan)
    provisioning = [
        row.split()[1]
        for row in text.splitlines()[3:]
        if row.split()[1].startswith("Provision.Broadband")
    ]
    assert provisioning == sorted(provisioning, key=natural_key)
    assert len(provisioning) > 10


# --- revision previews: the planning of `o2a revise --dry-run` -----------------------------------


def _basis(
    order: CustomerOrder,
    plan: OrderPlan,
    progress: dict[str, ComponentState],
    ponr_passed: list[str] | None = None,
) -> RevisionBasis:
    return RevisionBasis(
        order=order,
        plan=plan,
        progress=progress,
        ponr_passed=ponr_passed or [],
        state=OrderState.IN_PROGRESS,
    )


def _mid_flight(plan: OrderPlan) -> dict[str, ComponentState]:
    """Everything done but the fixed-line bundle (mid-activate) and the final billing."""
    progress = {c.id: ComponentState.COMPLETED for c in plan.components}
    progress[PROV_FIXED] = ComponentState.IN_PROGRESS
    progress[FULFIL_BILL] = ComponentState.PENDING
    return progress


def _revision_sample(intake: OrderIntake, name: str) -> CustomerOrder:
    return intake.load_order(SAMPLES / "revisions" / name)


def test_preview_plans_the_revision_as_the_workflow_would(
    intake: OrderIntake, triple_play: CustomerOrder, tp_plan: OrderPlan
):
    revised = _revision_sample(intake, "triple_play_r2_remove_bundle.xml")
    preview = intake.preview_revision(_basis(triple_play, tp_plan, _mid_flight(tp_plan)), revised)
    assert (preview.current_revision, preview.revision, preview.cancel) == (1, 2, False)
    kinds = {c.component_id: c.kind for c in preview.plan.compensations}
    assert kinds[PROV_BB] is Compensation.UNDO
    assert kinds[SHIP] is Compensation.UNDO
    assert kinds[PROV_FIXED] is Compensation.NONE
    assert kinds[SYNC] is Compensation.AMEND
    assert kinds[FULFIL_BILL] is Compensation.DO  # never started: simply runs the new content
    assert preview.plan.of(PROV_BB).undo_lines == ["1.3.1", "1.3.2"]
    assert preview.hard_ponr_violations == []

    text = format_preview(preview)
    assert text.startswith("Revision 2 of order TP-1001 against revision 1")
    assert "lines: removed 1.3,1.3.1,1.3.2,1.3.3" in text
    row = next(r for r in text.splitlines() if r.startswith(PROV_BB))
    assert row.split()[1:] == ["UNDO", "-", "1.3.1,1.3.2", "-"]
    assert "no hard point of no return in the way" in text


def test_preview_of_a_stale_revision_is_a_conflict(
    intake: OrderIntake, triple_play: CustomerOrder, tp_plan: OrderPlan
):
    with pytest.raises(OrderConflictError, match="revision 1 is not higher than the current 1"):
        intake.preview_revision(_basis(triple_play, tp_plan, _mid_flight(tp_plan)), triple_play)


def test_preview_of_a_cancel_mode_revision_undoes_what_started(
    intake: OrderIntake, triple_play: CustomerOrder, tp_plan: OrderPlan
):
    cancel = _revision_sample(intake, "triple_play_cancel.xml")
    preview = intake.preview_revision(_basis(triple_play, tp_plan, _mid_flight(tp_plan)), cancel)
    assert preview.cancel
    kinds = {c.component_id: c.kind for c in preview.plan.compensations}
    assert kinds[FULFIL_BILL] is Compensation.NONE
    assert {kinds[c.id] for c in tp_plan.components if c.id != FULFIL_BILL} == {Compensation.UNDO}
    assert format_preview(preview).startswith("Cancel (revision 2, FulfillmentModeCode CANCEL)")


def test_preview_names_components_past_a_hard_point_of_no_return(
    intake: OrderIntake, triple_play: CustomerOrder, tp_plan: OrderPlan
):
    hard = tp_plan.model_copy(deep=True)
    hard.component(PROV_BB).point_of_no_return_kind = "hard"
    revised = _revision_sample(intake, "triple_play_r2_upgrade.xml")  # changes broadband
    basis = _basis(triple_play, hard, _mid_flight(hard), ponr_passed=[PROV_BB])
    preview = intake.preview_revision(basis, revised)
    assert preview.hard_ponr_violations == [PROV_BB]
    assert f"past the hard point of no return: {PROV_BB}" in format_preview(preview)


# --- tables ------------------------------------------------------------------------------------


def test_small_formats():
    assert sorted(["bundle-10", "bundle-3", "bundle-1.10", "bundle-1.2"], key=natural_key) == [
        "bundle-1.2",
        "bundle-1.10",
        "bundle-3",
        "bundle-10",
    ]
    assert number_ranges([1, 2, 3, 5, 7, 8]) == "1-3,5,7,8"
    assert number_ranges([]) == "-"
    assert [duration(s) for s in (5, 60, 90, 3600, 5400)] == ["5s", "1m", "1m30s", "1h", "1h30m"]
    assert line_list([]) == "-"
    assert line_list([str(i) for i in range(8)]) == "0,1,2,3,4,5 +2 more"


def _component(cid: str, state: ComponentState = ComponentState.COMPLETED) -> ComponentView:
    return ComponentView(
        id=cid, function="Provision", target_system="X", state=state, lines=["1", "2"]
    )


def _status(**extra: object) -> OrderStatus:
    return OrderStatus.model_validate(
        {
            "order_number": "N-1",
            "revision": 2,
            "state": OrderState.FAILED,
            "status": FulfillmentStatus.FAILED,
            "lines": [
                LineView(
                    id="1",
                    name="Broadband",
                    action=ServiceActionCode.ADD,
                    product_class=None,
                    status=FulfillmentStatus.FAILED,
                )
            ],
            "components": [
                _component("Provision.X.bundle-10"),
                _component("Provision.X.bundle-3", ComponentState.FAILED),
                _component("Provision.X.bundle-1"),
            ],
            **extra,
        }
    )


def _section(text: str, title: str) -> list[str]:
    rows = text.splitlines()
    start = rows.index(title) + 1
    end = rows.index("", start) if "" in rows[start:] else len(rows)
    return rows[start:end]


def test_status_keeps_the_plan_order_and_heads_every_section():
    status = _status(
        fallouts=[
            FalloutView(
                id="FO-1",
                component="Provision.X.bundle-3",
                lines=["3.1", "3.2"],
                step="activate",
                code="E42",
                message="port busy",
                severity="Major",
                state="open",
                raised_at=AT,
            )
        ],
        revisions=[
            RevisionView(number=2, outcome="accepted", request_id="a"),
            RevisionView(number=3, outcome="rejected", reason="too late", kind="cancel"),
        ],
        operator_actions=[
            OperatorActionView(action="suspend", operator="alice", reason="check", at=AT),
            OperatorActionView(action="resolve", component="Provision.X.bundle-3", at=AT),
        ],
    )
    text = format_status(status)
    assert text.splitlines()[0] == "Order N-1  revision 2  state failed  status FAILED"
    order = [row.split()[0] for row in text.splitlines() if row.startswith("Provision.X.bundle")]
    assert order == [c.id for c in status.components]  # the plan's order, natural by bundle

    header, row = _section(text, "FALLOUT")
    assert header.split() == [
        *("ID", "COMPONENT", "STEP", "LINES", "CODE", "STATE", "RAISED", "MESSAGE")
    ]
    assert row.split()[:6] == ["FO-1", "Provision.X.bundle-3", "activate", "3.1,3.2", "E42", "open"]
    assert "2026-03-04 05:06:07Z" in row and row.endswith("port busy")

    header, accepted, rejected = _section(text, "REVISIONS")
    assert header.split() == ["NUMBER", "KIND", "OUTCOME", "REASON"]
    assert accepted.split() == ["2", "revision", "accepted", "-"]
    assert rejected.split() == ["3", "cancel", "rejected", "too", "late"]

    header, suspend, resolve = _section(text, "OPERATOR ACTIONS")
    assert header.split() == ["ACTION", "OPERATOR", "WHEN", "REASON"]
    assert suspend.split()[:2] == ["suspend", "alice"] and suspend.endswith("check")
    assert resolve.split()[:3] == ["resolve", "Provision.X.bundle-3", "-"]


def test_status_leaves_out_empty_sections():
    text = format_status(_status())
    for title in ("FALLOUT", "REVISIONS", "OPERATOR ACTIONS"):
        assert title not in text.splitlines()


def test_order_list_has_a_revision_column():
    orders = [
        OrderSummary(
            order_number="N-2",
            revision=3,
            state="in_progress",
            status="IN PROGRESS",
            customer="",
            workflow_id="order-N-2",
            started=AT,
        )
    ]
    header, row = format_orders(orders).splitlines()
    assert header.split() == ["ORDER", "REVISION", "STATE", "STATUS", "CUSTOMER", "STARTED"]
    assert row.split() == [
        "N-2",
        "3",
        "in_progress",
        "IN",
        "PROGRESS",
        "-",
        "2026-03-04",
        "05:06:07Z",
    ]


def test_answers_to_requests_read_as_one_line():
    assert format_outcome(RevisionView(number=2, outcome="accepted")) == "accepted"
    cancelled = RevisionView(number=2, outcome="cancelled", reason="customer moved")
    assert format_outcome(cancelled) == "cancelled"
    rejected = RevisionView(number=2, outcome="rejected", reason="revision 2 is not higher")
    assert format_outcome(rejected) == "rejected: revision 2 is not higher"
    revision = RequestReceipt(order_number="N", request_id="r", kind="revision", revision=2)
    assert format_request(revision) == "revision 2 of order N sent"
    cancel = RequestReceipt(order_number="N", request_id="r", kind="cancel")
    assert format_request(cancel, "moved") == "cancel of order N sent: moved"
    action = OperatorActionView(action="abort", operator="bob", reason="duplicate", at=AT)
    assert format_action("N", action) == (
        "abort of order N accepted by bob at 2026-03-04 05:06:07Z: duplicate"
    )


# --- the use cases against a real server ---------------------------------------------------------


@pytest.fixture
def service(client: Client, settings: Settings) -> OrderService:
    return OrderService(client, settings)


async def test_unknown_orders_are_unknown_everywhere(service: OrderService, order_number: str):
    for call in every_command(service, order_number):
        with pytest.raises(UnknownOrderError, match=f"no order {order_number}"):
            await call()


async def test_submit_once_and_list_newest_first(service: OrderService, order_number: str):
    """No worker needed: submitting records the order, visibility lists it."""
    first, second = f"{order_number}-A", f"{order_number}-B"
    submitted = await service.submit(sample("triple_play.xml", first))
    assert submitted.workflow_id == f"order-{first}" and submitted.lines == 12
    assert submitted.web_ui.endswith(f"/workflows/order-{first}")
    await service.submit(sample("triple_play.xml", second))
    with pytest.raises(OrderConflictError, match=f"order {first} was already submitted"):
        await service.submit(sample("triple_play.xml", first))

    async def both_listed() -> bool:
        numbers = [o.order_number for o in await service.list_orders(limit=500)]
        return first in numbers and second in numbers

    await until(both_listed)
    orders = await service.list_orders(limit=500)
    numbers = [o.order_number for o in orders]
    assert numbers.index(second) < numbers.index(first)
    assert [o.started for o in orders] == sorted((o.started for o in orders), reverse=True)
    mine = next(o for o in orders if o.order_number == first)
    assert (mine.revision, mine.state) == (1, "not_started")
    assert len(await service.list_orders(limit=1)) == 1
    assert first not in [o.order_number for o in await service.list_orders(OrderState.COMPLETED)]


async def test_an_operator_action_no_worker_answers(
    service: OrderService, order_number: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("o2a.service.ANSWER_TIMEOUT", timedelta(seconds=1))
    await service.submit(sample("triple_play.xml", order_number))
    with pytest.raises(NoWorkerError, match="no worker answered"):
        await service.suspend(order_number, OperatorRequest())


async def test_operator_actions_are_answered_by_the_workflow(
    client: Client, service: OrderService, worker: StartWorker, order_number: str
):
    alice = OperatorRequest(operator="alice", reason="checking the line")
    async with held_mid_flight(worker) as gate:
        await service.submit(sample("triple_play.xml", order_number))
        await gate.wait_reached()
        with pytest.raises(OrderConflictError, match="nothing has failed"):
            await service.resolve(order_number, OperatorRequest())
        with pytest.raises(OrderConflictError, match="only a suspended order can be resumed"):
            await service.resume(order_number, OperatorRequest())
        suspended = await service.suspend(order_number, alice)
        assert (suspended.action, suspended.operator, suspended.reason) == (
            "suspend",
            "alice",
            "checking the line",
        )
        with pytest.raises(OrderConflictError, match="already suspended"):
            await service.suspend(order_number, alice)
        assert (await service.wait_for_attention(order_number)).state is OrderState.SUSPENDED
        await service.resume(order_number, OperatorRequest(operator="bob"))
        gate.release()
        final = await closed(client, order_number)
    assert final.state is OrderState.COMPLETED
    assert [(a.action, a.operator) for a in final.operator_actions] == [
        ("suspend", "alice"),
        ("resume", "bob"),
    ]
    assert (await service.wait_for_attention(order_number)) == final
    with pytest.raises(
        OrderConflictError,
        match=f"order {order_number} is completed: only a running order can be suspended",
    ):
        await service.suspend(order_number, alice)


async def test_fallout_gets_attention_and_abort_ends_it(
    client: Client, service: OrderService, worker: StartWorker, order_number: str
):
    order = set_spec(sample("triple_play.xml", order_number), "1.1.1", "SimulatedFault", "activate")
    async with worker():
        await service.submit(order)
        failed = await service.wait_for_attention(order_number)
        assert failed.state is OrderState.FAILED
        assert [(f.component, f.step) for f in failed.fallouts] == [(PROV_FIXED, "activate")]
        with pytest.raises(OrderConflictError, match=f"component {SHIP} .* has not failed"):
            await service.resolve(order_number, OperatorRequest(component=SHIP))
        aborted = await service.abort(order_number, OperatorRequest(reason="gave up"))
        assert aborted.reason == "gave up"
        final = await closed(client, order_number)
    assert final.state is OrderState.ABORTED
    assert final.operator_actions[-1].reason == "gave up"
    with pytest.raises(OrderConflictError, match="is aborted: only a running order can be"):
        await service.abort(order_number, OperatorRequest())


async def test_revise_and_its_outcome(
    client: Client, service: OrderService, worker: StartWorker, order_number: str
):
    order = sample("triple_play.xml", order_number)
    removal = sample("revisions/triple_play_r2_remove_bundle.xml", order_number)
    async with held_mid_flight(worker) as gate:
        await service.submit(order)
        await gate.wait_reached()

        stale = await service.revise(order, request_id="stale-1")
        assert (stale.request_id, stale.kind, stale.revision) == ("stale-1", "revision", 1)
        outcome = await service.request_outcome(order_number, "stale-1")
        assert (outcome.outcome, outcome.reason) == (
            "rejected",
            "revision 1 is not higher than the current 1",
        )
        with pytest.raises(OrderConflictError, match="not higher than the current 1"):
            await service.dry_run_revision(order)
        with pytest.raises(OrderConflictError, match="no revise or cancel never-sent"):
            await service.request_outcome(order_number, "never-sent")

        preview = await service.dry_run_revision(removal)
        assert preview.plan.of(PROV_BB).kind is Compensation.UNDO
        assert preview.plan.of(PROV_FIXED).kind is Compensation.NONE
        status = await service.status(order_number)  # the dry run sent nothing
        assert status.revision == 1 and [r.request_id for r in status.revisions] == ["stale-1"]

        receipt = await service.revise(removal)
        assert receipt.kind == "revision" and len(receipt.request_id) == 32
        gate.release()
        accepted = await service.request_outcome(order_number, receipt.request_id)
        assert (accepted.outcome, accepted.number) == ("accepted", 2)
        final = await closed(client, order_number)
    assert final.state is OrderState.COMPLETED and final.revision == 2
    # Closed: outcomes come from the result, changes are refused naming the state.
    assert (await service.request_outcome(order_number, receipt.request_id)) == accepted
    refused = "is completed: only a running order can be"
    with pytest.raises(OrderConflictError, match=f"{refused} revised"):
        await service.revise(sample("revisions/triple_play_r2_upgrade.xml", order_number))
    with pytest.raises(OrderConflictError, match=f"{refused} revised"):
        await service.dry_run_revision(removal)
    with pytest.raises(OrderConflictError, match=f"{refused} cancelled"):
        await service.cancel(order_number)


async def test_cancel_and_its_outcome(
    client: Client, service: OrderService, worker: StartWorker, order_number: str
):
    async with held_mid_flight(worker) as gate:
        await service.submit(sample("triple_play.xml", order_number))
        await gate.wait_reached()
        receipt = await service.cancel(order_number, reason="customer moved", operator="carol")
        assert receipt.kind == "cancel" and receipt.revision is None
        gate.release()
        outcome = await service.request_outcome(order_number, receipt.request_id)
        final = await closed(client, order_number)
    assert (outcome.outcome, outcome.kind) == ("cancelled", "cancel")
    assert final.state is OrderState.CANCELLED
    assert final.status is FulfillmentStatus.CANCELLED


Call = Callable[[], Awaitable[object]]


def every_command(service: OrderService, order_number: str) -> list[Call]:
    """Each use case that names an order, called with that order number."""
    revised = sample("triple_play.xml", order_number)
    request = OperatorRequest()
    return [
        lambda: service.status(order_number),
        lambda: service.revise(revised),
        lambda: service.dry_run_revision(revised),
        lambda: service.cancel(order_number),
        lambda: service.request_outcome(order_number, "r"),
        lambda: service.wait_for_attention(order_number),
        lambda: service.resolve(order_number, request),
        lambda: service.suspend(order_number, request),
        lambda: service.resume(order_number, request),
        lambda: service.abort(order_number, request),
    ]


async def test_a_workflow_of_another_type_is_no_order(
    client: Client, service: OrderService, settings: Settings, order_number: str
):
    stranger = await client.start_workflow(
        "NotAnOrder", id=ids.order_workflow_id(order_number), task_queue=settings.task_queue
    )
    try:
        for call in every_command(service, order_number):
            with pytest.raises(UnknownOrderError, match=f"no order {order_number}"):
                await call()
    finally:
        await stranger.terminate()


async def test_with_no_worker_at_all_commands_fail_at_once(
    service: OrderService, order_number: str
):
    """No poller on the order's task queue: no command waits for an answer none can give."""
    await service.submit(sample("triple_play.xml", order_number))
    revised = sample("revisions/triple_play_r2_upgrade.xml", order_number)
    request = OperatorRequest()
    calls: list[Call] = [
        lambda: service.status(order_number),
        lambda: service.dry_run_revision(revised),
        lambda: service.resolve(order_number, request),
        lambda: service.suspend(order_number, request),
        lambda: service.resume(order_number, request),
        lambda: service.abort(order_number, request),
    ]
    for call in calls:
        asked = time.monotonic()
        with pytest.raises(NoWorkerError, match="no worker answered"):
            await call()
        assert time.monotonic() - asked < 3


async def test_a_worker_that_has_just_stopped_answers_no_query(
    service: OrderService,
    worker: StartWorker,
    order_number: str,
    monkeypatch: pytest.MonkeyPatch,
):
    """The server still lists a stopped worker's poller for minutes: the query times out."""
    monkeypatch.setattr("o2a.service.ANSWER_TIMEOUT", timedelta(seconds=1))
    async with held_mid_flight(worker) as gate:
        await service.submit(sample("triple_play.xml", order_number))
        await gate.wait_reached()
    with pytest.raises(NoWorkerError, match=f"order {order_number} is running but no worker"):
        await service.status(order_number)


async def test_submit_wait_says_no_worker_polls_and_waits_for_one(
    temporal_address: str,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
    tmp_path: Path,
):
    order = tmp_path / "order.json"
    order.write_text(quick_triple_play(order_number).model_dump_json())
    env = cli_env(temporal_address, settings)
    submit = await Background.start(
        "submit", str(order), "--wait", env=env, log=tmp_path / "submit.log"
    )
    try:
        await submit.wait_for_output(
            f"o2a: no worker is polling task queue {settings.task_queue!r}"
        )
        async with worker():
            assert await submit.wait(60) == 0, submit.output()
        assert f"Order {order_number}" in submit.output() and "completed" in submit.output()
    finally:
        await submit.stop()


class UnavailableCrmBus:
    """CRM's queue cannot take messages now, for a cause an operator must fix."""

    async def publish(self, destination: Destination, message_id: str, document: bytes) -> bytes:
        if destination is Destination.CRM_ORDER_UPDATE:
            raise MessageBusUnavailable(f"outbox for {message_id} is unwritable (test)")
        return document


async def test_status_shows_an_effect_being_retried_before_it_becomes_fallout(
    service: OrderService, worker: StartWorker, order_number: str
) -> None:
    """An unwritable outbox does not stall an order in silence: status says what is failing,
    how often, and why, while Temporal retries it."""
    async with worker(bus=UnavailableCrmBus()):
        await service.submit(quick_triple_play(order_number))

        async def retried() -> bool:
            try:
                status = await service.status(order_number)
            except NoWorkerError:  # the worker has just started: not yet listed as a poller
                return False
            return any(r.attempt >= 2 for r in status.retrying)

        await until(retried)
        status = await service.status(order_number)
    [effect] = status.retrying
    assert effect.activity == "send_sales_order_update"
    first_update = ids.sales_order_update_message_id(order_number, 1, 1)
    assert effect.last_failure == f"outbox for {first_update} is unwritable (test)"
    shown = format_status(status)
    assert "RETRYING" in shown and "send_sales_order_update" in shown


async def test_an_order_too_big_for_history_once_encoded_is_refused_at_the_door(
    service: OrderService, client: Client, order_number: str
) -> None:
    """Within the line and size limits, but specifications of random text do not compress:
    bad input before anything starts, not a refusal by Temporal."""
    order = quick_triple_play(order_number)
    noise = random.Random(9)
    for line in order.lines:
        line.item.specifications.append(
            Specification(
                name="Note",
                value="".join(noise.choices(string.ascii_letters + string.digits, k=60_000)),
            )
        )
    with pytest.raises(InputError, match=r"KiB once encoded for Temporal, over the 512 KiB"):
        await service.submit(order)
    with pytest.raises(UnknownOrderError):
        await service.status(order_number)
