"""The port adapters (simulated fulfillment, fan-out), their selection from settings, and the
activities that wrap the ports, run in the SDK's own activity test harness."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.testing import ActivityEnvironment

from activities.fulfillment import (
    FULFILLMENT_UNAVAILABLE_TYPE,
    REPORT_UNSENT_TYPE,
    FulfillmentActivities,
)
from activities.messaging import (
    CHILD_FLAGS,
    MESSAGE_BUS_UNAVAILABLE_TYPE,
    OUTBOUND_MESSAGE_REJECTED_TYPE,
    FalloutMessage,
    FulfillmentUpdateMessage,
    JeopardyMessage,
    MessagingActivities,
    ProvisioningOrderMessage,
    SalesOrderUpdateMessage,
    UpdateDelivery,
)
from o2a.adapters import FanOutBus, Wiring, fulfillment_system, message_bus
from o2a.adapters.bus_fulfillment import BusFulfillment
from o2a.adapters.outbox import OutboxBus
from o2a.adapters.simulator import SimulatedFulfillment
from o2a.client import data_converter
from o2a.config import Settings
from o2a.errors import InputError
from o2a.faults import FULFILLMENT_FAULT_TYPE, fault_error
from o2a.models import (
    ComponentState,
    ComponentUpdate,
    FalloutView,
    FaultDetail,
    FulfillmentStatus,
    HeardLine,
    HeardUpdate,
    ItemReference,
    JeopardyView,
    LineUpdate,
    LineView,
    ProvisioningOrder,
    SalesOrderLine,
    ServiceActionCode,
    Specification,
    Step,
)
from o2a.ports import (
    Destination,
    FulfillmentFault,
    FulfillmentRequest,
    FulfillmentUnavailable,
)
from o2a.simulator import activation_data
from workflows.order_work import fault_of

ORDER = "TP-2001"
MOBILE = "MobileProvisioningSystem"


def line(
    line_id: str, product_class: str = "Mobile Service Plan Class", **specs: str
) -> SalesOrderLine:
    return SalesOrderLine(
        id=line_id,
        item=ItemReference(
            name=line_id,
            type_code="PRODUCT",
            product_class=product_class,
            specifications=[Specification(name=k, value=v) for k, v in specs.items()],
        ),
    )


def provisioning_order(**flags: bool) -> ProvisioningOrder:
    return ProvisioningOrder(
        order_number=ORDER,
        revision=1,
        component_id="c",
        target_system=MOBILE,
        parent_workflow_id="order-x",
        lines=[line("1")],
        **flags,
    )


def request(
    step: Step,
    lines: list[SalesOrderLine],
    *,
    function: str = "Provision",
    target_system: str = MOBILE,
    run: int = 1,
    attempt: int = 1,
) -> FulfillmentRequest:
    return FulfillmentRequest(
        request_id=f"{ORDER}.r1.c.{run}.{step}",
        order_number=ORDER,
        revision=1,
        component_id="c",
        function=function,
        target_system=target_system,
        step=step,
        lines=lines,
        run=run,
        attempt=attempt,
    )


simulator = SimulatedFulfillment()


# --- the simulated fulfillment systems ----------------------------------------------------------


async def test_fault_names_the_first_faulty_line_its_step_and_code() -> None:
    lines = [
        line("1"),
        line("2", SimulatedFault="activate:HLR_DOWN:2"),
        line("3", SimulatedFault="activate"),
    ]
    with pytest.raises(FulfillmentFault) as info:
        await simulator.execute(request(Step.ACTIVATE, lines))
    fault = info.value
    assert (fault.code, fault.line_id, fault.step) == ("HLR_DOWN", "2", Step.ACTIVATE)
    assert MOBILE in fault.message and "activate" in fault.message and "line 2" in fault.message


async def test_fault_counts_runs_then_the_next_faulty_line_shows() -> None:
    lines = [line("1", SimulatedFault="activate:HLR_DOWN:2"), line("2", SimulatedFault="verify")]
    for run in (1, 2):
        with pytest.raises(FulfillmentFault, match="line 1"):
            await simulator.execute(request(Step.ACTIVATE, lines, run=run))
    assert len(await simulator.execute(request(Step.ACTIVATE, lines, run=3))) == 2
    assert await simulator.execute(request(Step.DESIGN, lines)) == []
    with pytest.raises(FulfillmentFault) as info:
        await simulator.execute(request(Step.VERIFY, lines, run=7))
    assert (info.value.line_id, info.value.code) == ("2", "SIMULATED_FAULT")


async def test_outage_refuses_by_attempt_not_run() -> None:
    lines = [line("1"), line("2", SimulatedOutage="billing:2")]

    def billing(step: Step, attempt: int) -> FulfillmentRequest:
        return request(
            step,
            lines,
            function="InitiateBilling",
            target_system="BillingSystem",
            run=5,
            attempt=attempt,
        )

    for attempt in (1, 2):
        with pytest.raises(FulfillmentUnavailable, match="BillingSystem refused"):
            await simulator.execute(billing(Step.BILLING, attempt))
    assert len(await simulator.execute(billing(Step.BILLING, 3))) == 2
    assert await simulator.execute(billing(Step.UNDO_BILLING, 1)) == []


async def test_outage_comes_before_any_fault() -> None:
    lines = [line("1", SimulatedFault="ship:OUT_OF_STOCK"), line("2", SimulatedOutage="ship:1")]
    with pytest.raises(FulfillmentUnavailable):
        await simulator.execute(request(Step.SHIP, lines, function="Ship"))
    with pytest.raises(FulfillmentFault, match="OUT_OF_STOCK"):
        await simulator.execute(request(Step.SHIP, lines, function="Ship", attempt=2))


async def test_activation_data() -> None:
    lines = [line("1.1"), line("1.2", "Mobile Service Feature Class")]
    updates = await simulator.execute(request(Step.ACTIVATE, lines))
    assert updates == [
        LineUpdate(line_id=ln.id, data=activation_data(ORDER, ln, MOBILE)) for ln in lines
    ]
    assert "MSISDN" in updates[0].data and updates[1].data == {
        "ServiceInstanceId": f"SI-{ORDER}-1.2"
    }
    for step in (Step.DESIGN, Step.VERIFY, Step.UNDO_ACTIVATE):
        assert await simulator.execute(request(step, lines)) == []


async def test_shipment_and_billing_ids_on_the_do_and_amend_steps() -> None:
    lines = [line("1.3"), line("1.4")]
    shipped = await simulator.execute(request(Step.SHIP, lines, function="Ship"))
    assert shipped == [
        LineUpdate(line_id="1.3", data={"ShipmentId": f"SHP-{ORDER}-1.3"}),
        LineUpdate(line_id="1.4", data={"ShipmentId": f"SHP-{ORDER}-1.4"}),
    ]
    billed = await simulator.execute(request(Step.BILLING, lines, function="InitiateBilling"))
    assert billed == [
        LineUpdate(line_id="1.3", data={"BillingItemId": f"BI-{ORDER}-1.3"}),
        LineUpdate(line_id="1.4", data={"BillingItemId": f"BI-{ORDER}-1.4"}),
    ]
    amended = await simulator.execute(
        request(Step.AMEND_BILLING, lines[1:], function="InitiateBilling")
    )
    assert amended == billed[1:]
    for step, function in (
        (Step.UNDO_SHIP, "Ship"),
        (Step.UNDO_BILLING, "InitiateBilling"),
        (Step.SYNC, "SyncCustomer"),
        (Step.AMEND_SYNC, "SyncCustomer"),
        (Step.UNDO_SYNC, "SyncCustomer"),
    ):
        assert await simulator.execute(request(step, lines, function=function)) == []


@pytest.mark.parametrize("step", [s for s in Step if s.is_undo or s.value.startswith("amend-")])
async def test_undo_and_amend_steps_run_and_fail_on_their_own_name(step: Step) -> None:
    lines = [line("1", SimulatedFault=f"{step.value}:STUCK:1")]
    with pytest.raises(FulfillmentFault) as info:
        await simulator.execute(request(step, lines))
    assert (info.value.step, info.value.code) == (step, "STUCK")
    await simulator.execute(request(step, lines, run=2))
    do_step = Step(step.value.split("-", 1)[1])
    await simulator.execute(request(do_step, lines))


async def test_one_call_covers_all_lines_waiting_for_the_slowest() -> None:
    lines = [line(str(n), SimulatedDelay="0.3") for n in range(4)]
    started = time.monotonic()
    updates = await simulator.execute(request(Step.ACTIVATE, lines))
    elapsed = time.monotonic() - started
    assert [u.line_id for u in updates] == ["0", "1", "2", "3"]
    assert 0.3 <= elapsed < 1.0  # the lines wait together, not 0.3 s per line one after another


# --- the fulfillment activity -------------------------------------------------------------------


async def test_activity_turns_a_fault_into_a_non_retryable_error_with_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    activities = FulfillmentActivities(SimulatedFulfillment())
    lines = [line("1"), line("2", SimulatedFault="activate:HLR_DOWN")]
    with caplog.at_level(logging.DEBUG), pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(activities.fulfill, request(Step.ACTIVATE, lines))
    err = info.value
    assert err.type == FULFILLMENT_FAULT_TYPE
    assert err.non_retryable
    assert err.category == ApplicationErrorCategory.BENIGN
    assert "line 2" in err.message
    assert FaultDetail.model_validate(err.details[0]) == FaultDetail(
        code="HLR_DOWN", line_id="2", step=Step.ACTIVATE
    )
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert all(part in text for part in (ORDER, "component c", "activate", "HLR_DOWN"))
    assert warnings[0].exc_info is None


async def test_fault_details_survive_the_data_converter() -> None:
    """What the COM workflow reads back: ``FaultDetail.model_validate(err.details[0])``."""
    activities = FulfillmentActivities(SimulatedFulfillment())
    lines = [line("1", SimulatedFault="amend-billing:BRM_DOWN")]
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(
            activities.fulfill, request(Step.AMEND_BILLING, lines, function="InitiateBilling")
        )
    failure = Failure()
    await data_converter().encode_failure(info.value, failure)
    decoded = await data_converter().decode_failure(failure)
    assert isinstance(decoded, ApplicationError)
    assert decoded.type == FULFILLMENT_FAULT_TYPE and decoded.non_retryable
    assert FaultDetail.model_validate(decoded.details[0]) == FaultDetail(
        code="BRM_DOWN", line_id="1", step=Step.AMEND_BILLING
    )


async def test_activity_turns_an_outage_into_a_retryable_error_and_passes_the_attempt() -> None:
    activities = FulfillmentActivities(SimulatedFulfillment())
    call = request(Step.DESIGN, [line("1", SimulatedOutage="design:2")])
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as info:
        await env.run(activities.fulfill, call)
    assert info.value.type == FULFILLMENT_UNAVAILABLE_TYPE
    assert not info.value.non_retryable
    assert info.value.category == ApplicationErrorCategory.BENIGN
    assert not info.value.details
    env.info = dataclasses.replace(env.info, attempt=3)
    assert await env.run(activities.fulfill, call) == []


async def test_activity_heartbeats_while_the_system_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("activities.fulfillment.HEARTBEAT_EVERY", 0.05)
    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    activities = FulfillmentActivities(SimulatedFulfillment())
    updates = await env.run(
        activities.fulfill, request(Step.ACTIVATE, [line("1", SimulatedDelay="0.4")])
    )
    assert [u.line_id for u in updates] == ["1"]
    assert len(beats) >= 4


async def test_a_call_that_answers_at_once_sends_no_heartbeat() -> None:
    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    activities = FulfillmentActivities(SimulatedFulfillment())
    assert await env.run(activities.fulfill, request(Step.ACTIVATE, [line("1")]))
    assert beats == []


class Hanging:
    """A system that never answers, and says whether the call was taken back."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False

    async def execute(self, request: FulfillmentRequest) -> list[LineUpdate]:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return []


async def test_cancelling_the_activity_cancels_the_call() -> None:
    system = Hanging()
    env = ActivityEnvironment()
    task = asyncio.ensure_future(
        env.run(FulfillmentActivities(system).fulfill, request(Step.DESIGN, [line("1")]))
    )
    await system.started.wait()
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert system.cancelled


# --- the messaging activities -------------------------------------------------------------------


class Recording:
    """A bus that keeps what it is given, to see where each message went."""

    def __init__(self) -> None:
        self.published: list[tuple[Destination, str, bytes]] = []

    async def publish(self, destination: Destination, message_id: str, document: bytes) -> bytes:
        self.published.append((destination, message_id, document))
        return document


async def test_each_message_goes_to_its_destination_under_its_id() -> None:
    bus = Recording()
    messaging = MessagingActivities(bus)
    env = ActivityEnvironment()
    created = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    fallout = FalloutView(
        id="FO-1",
        component="c",
        lines=["1"],
        step="activate",
        code="X",
        message="m",
        severity="High",
        state="open",
    )
    order = provisioning_order()
    await env.run(
        messaging.send_provisioning_order,
        ProvisioningOrderMessage(message_id="PPO.1", created=created, order=order),
    )
    await env.run(
        messaging.send_fulfillment_update,
        FulfillmentUpdateMessage(
            message_id="PFOU.1",
            created=created,
            order_number=ORDER,
            revision=1,
            update=ComponentUpdate(component_id="c", state=ComponentState.IN_PROGRESS),
        ),
    )
    await env.run(
        messaging.send_sales_order_update,
        SalesOrderUpdateMessage(
            message_id="USO.1",
            created=created,
            order_number=ORDER,
            revision=1,
            order_status=FulfillmentStatus.OPEN,
            lines=[],
        ),
    )
    await env.run(
        messaging.send_fallout,
        FalloutMessage(
            order_number=ORDER, created=created, fallout=fallout, failed_message_id="PPO.1"
        ),
    )
    await env.run(
        messaging.send_jeopardy,
        JeopardyMessage(
            message_id="JEO.1",
            created=created,
            order_number=ORDER,
            revision=1,
            lines=["1"],
            jeopardy=JeopardyView(
                component="c", severity="Low", raised_at=created, expected_by=created
            ),
        ),
    )
    destinations = [(d, i) for d, i, _ in bus.published]
    assert [d for d, _ in destinations] == [
        Destination.SOM_PROVISIONING_ORDER,
        Destination.COM_FULFILLMENT_UPDATE,
        Destination.CRM_ORDER_UPDATE,
        Destination.ERROR_HANDLING,
        Destination.CRM_TROUBLE_TICKET,
        Destination.CRM_ORDER_UPDATE,
    ]
    for _, message_id, document in bus.published:
        assert f"<corecom:EBMID>{message_id}</corecom:EBMID>".encode() in document


# --- the messaging activities on a real outbox folder ---------------------------------------


async def send_to_outbox(
    outbox: Path,
    message_id: str,
    attempt: int = 1,
    created: datetime = datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
    status: FulfillmentStatus = FulfillmentStatus.OPEN,
    lines: list[LineView] | None = None,
) -> UpdateDelivery:
    """One sales order update through the activity and the outbox adapter, as a worker
    runs it on ``attempt``; what became of it."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    return await env.run(
        MessagingActivities(OutboxBus(outbox)).deliver_sales_order_update,
        SalesOrderUpdateMessage(
            message_id=message_id,
            created=created,
            order_number=ORDER,
            revision=1,
            order_status=status,
            lines=lines or [],
        ),
    )


def told_line(line_id: str, milestone: str, data: dict[str, str] | None = None) -> LineView:
    return LineView(
        id=line_id,
        name="Broadband",
        action=ServiceActionCode.ADD,
        product_class=None,
        status=FulfillmentStatus.IN_PROGRESS,
        milestone=milestone,
        point_of_no_return=True,
        data=data or {},
    )


async def test_an_update_decided_again_is_sent_unless_its_id_holds_another(
    tmp_path: Path,
) -> None:
    """A retried workflow task decides its update again at a later time: the same update
    (only the header's creation time differs) counts as sent; one saying something else
    is not sent, the outbox keeps the first, and the answer is what CRM was told."""
    lines = [told_line("1.1", "PROVISION_DESIGNED", {"MSISDN": "31600000001"})]
    in_progress = FulfillmentStatus.IN_PROGRESS
    first = await send_to_outbox(tmp_path, "USO.1", status=in_progress, lines=lines)
    kept = (tmp_path / "USO.1.xml").read_bytes()
    later = datetime(2026, 1, 15, 9, 31, tzinfo=UTC)
    again = await send_to_outbox(tmp_path, "USO.1", created=later, status=in_progress, lines=lines)
    other = await send_to_outbox(tmp_path, "USO.1", created=later)
    assert (first, again) == (UpdateDelivery(sent=True), UpdateDelivery(sent=True))
    assert other == UpdateDelivery(
        sent=False,
        heard=HeardUpdate(
            order_status=FulfillmentStatus.IN_PROGRESS,
            lines=[
                HeardLine(
                    id="1.1",
                    status=FulfillmentStatus.IN_PROGRESS,
                    milestone="PROVISION_DESIGNED",
                    point_of_no_return=True,
                    data={"MSISDN": "31600000001"},
                )
            ],
        ),
    )
    assert (tmp_path / "USO.1.xml").read_bytes() == kept


async def test_the_longest_file_name_the_outbox_allows_is_written(tmp_path: Path) -> None:
    """The temporary file must not need a longer name than ``{message_id}.xml`` does."""
    longest = os.pathconf(tmp_path, "PC_NAME_MAX") - len(".xml")
    message_id = "USO." + "X" * (longest - len("USO."))
    await send_to_outbox(tmp_path, message_id)
    assert [p.name for p in tmp_path.iterdir()] == [f"{message_id}.xml"]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("file name too long", "File name too long (ENAMETOOLONG)"),
        ("outbox is a file", "is not a folder: File exists (EEXIST)"),
        ("outbox under a file", "is not a folder: Not a directory (ENOTDIR)"),
    ],
)
async def test_a_message_the_outbox_can_never_hold_fails_for_good(
    tmp_path: Path, case: str, reason: str
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_bytes(b"")
    outbox, message_id = {
        "file name too long": (tmp_path / "outbox", "USO." + "X" * 300),
        "outbox is a file": (a_file, "USO.1"),
        "outbox under a file": (a_file / "outbox", "USO.1"),
    }[case]
    with pytest.raises(ApplicationError) as info:
        await send_to_outbox(outbox, message_id)
    err = info.value
    assert (err.type, err.non_retryable) == (OUTBOUND_MESSAGE_REJECTED_TYPE, True)
    assert err.message.startswith(f"outbound message {message_id} rejected: the outbox {outbox}")
    assert reason in err.message


def can_create_a_file_in(folder: Path) -> bool:
    try:
        (folder / "probe").touch()
    except PermissionError:
        return False
    (folder / "probe").unlink()
    return True


@pytest.mark.parametrize("case", ["read-only folder", "sysfs folder"])
async def test_an_unwritable_outbox_is_retried_with_one_warning_line_per_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    if case == "read-only folder":
        outbox = tmp_path / "outbox"
        outbox.mkdir(mode=0o555)
        if can_create_a_file_in(outbox):
            pytest.skip("root writes into a read-only folder; the sysfs case covers root")
    else:
        outbox = Path("/sys/kernel")  # no one, root included, may create a file in sysfs
        if not outbox.is_dir():
            pytest.skip("no sysfs on this system")
    with caplog.at_level(logging.DEBUG), pytest.raises(ApplicationError) as info:
        await send_to_outbox(outbox, "USO.1", attempt=3)
    err = info.value
    assert (err.type, err.non_retryable) == (MESSAGE_BUS_UNAVAILABLE_TYPE, False)
    assert err.category == ApplicationErrorCategory.BENIGN  # so the SDK logs no traceback
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is None, warnings
    text = warnings[0].getMessage()
    assert text.startswith(f"message USO.1 not sent on attempt 3, will retry: outbox {outbox} ")
    assert "is unwritable" in text
    if case == "read-only folder":
        assert "Permission denied (EACCES); give the worker's user write permission" in text


# --- settings and adapter selection -------------------------------------------------------------


def settings(tmp_path: Path, **changes: object) -> Settings:
    base = Settings(task_queue="q", outbox_dir=tmp_path, catalog_path=None, ui_url="http://ui")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def wired(settings: Settings) -> Wiring:
    return Wiring(settings, "test")


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for variable in ("O2A_SINKS", "O2A_FULFILLMENT", "O2A_NATS_URL", "O2A_SUBJECT_PREFIX"):
        monkeypatch.delenv(variable, raising=False)
    from_env = Settings.from_env()
    assert (from_env.sinks, from_env.fulfillment) == (("outbox",), "simulator")
    assert (from_env.nats_url, from_env.subject_prefix) == (None, "o2a")
    constructed = settings(tmp_path)
    assert (constructed.sinks, constructed.fulfillment) == (("outbox",), "simulator")


def test_a_bus_makes_it_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """DESIGN.md: the default sink is ``nats`` and fulfillment systems are reached over the
    bus where a bus is configured; explicit settings still win."""
    monkeypatch.delenv("O2A_SINKS", raising=False)
    monkeypatch.delenv("O2A_FULFILLMENT", raising=False)
    monkeypatch.setenv("O2A_NATS_URL", " nats://bus:4222 ")
    from_env = Settings.from_env()
    assert (from_env.nats_url, from_env.sinks) == ("nats://bus:4222", ("nats",))
    assert from_env.fulfillment == "bus"
    monkeypatch.setenv("O2A_SINKS", "outbox")
    monkeypatch.setenv("O2A_FULFILLMENT", "simulator")
    assert (Settings.from_env().sinks, Settings.from_env().fulfillment) == (
        ("outbox",),
        "simulator",
    )


def test_fulfillment_deadline_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("O2A_FULFILLMENT_DEADLINE", raising=False)
    assert Settings.from_env().fulfillment_deadline == 86_400
    monkeypatch.setenv("O2A_FULFILLMENT_DEADLINE", " 2.5 ")
    assert Settings.from_env().fulfillment_deadline == 2.5
    for bad in ("0", "-1", "soon", "nan", "inf"):
        monkeypatch.setenv("O2A_FULFILLMENT_DEADLINE", bad)
        with pytest.raises(InputError, match="O2A_FULFILLMENT_DEADLINE must be a number"):
            Settings.from_env()


def test_the_bus_fulfillment_needs_a_bus(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="O2A_NATS_URL is not set"):
        fulfillment_system(wired(settings(tmp_path, fulfillment="bus")))
    adapter = fulfillment_system(wired(settings(tmp_path, fulfillment="bus", nats_url="nats://x")))
    assert isinstance(adapter, BusFulfillment)


def test_the_nats_sink_needs_a_bus(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="O2A_NATS_URL is not set"):
        message_bus(wired(settings(tmp_path, sinks=("nats",))))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("outbox", ("outbox",)),
        (" Outbox , ", ("outbox",)),
        ("outbox,outbox", ("outbox",)),
        ("nats, outbox", ("nats", "outbox")),
        ("", ("outbox",)),
    ],
)
def test_sinks_from_env(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("O2A_SINKS", raw)
    assert Settings.from_env().sinks == expected


def test_fulfillment_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("O2A_FULFILLMENT", " Simulator ")
    assert Settings.from_env().fulfillment == "simulator"


def test_adapters_the_settings_name(tmp_path: Path) -> None:
    bus = message_bus(wired(settings(tmp_path)))
    assert isinstance(bus, OutboxBus) and bus.directory == tmp_path
    assert isinstance(fulfillment_system(wired(settings(tmp_path))), SimulatedFulfillment)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        (
            {"sinks": ("outbox", "kafka")},
            "O2A_SINKS: unknown adapter 'kafka'; known: outbox, nats",
        ),
        ({"sinks": ()}, "O2A_SINKS names no sink"),
    ],
)
def test_unknown_sink_is_input_error(
    tmp_path: Path, changes: dict[str, object], fragment: str
) -> None:
    with pytest.raises(InputError) as info:
        message_bus(wired(settings(tmp_path, **changes)))
    assert str(info.value).startswith(fragment)
    assert "\n" not in str(info.value)


def test_unknown_fulfillment_is_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("O2A_FULFILLMENT", "asap")
    with pytest.raises(
        InputError, match=r"O2A_FULFILLMENT: unknown adapter 'asap'; known: simulator, bus$"
    ):
        fulfillment_system(wired(Settings.from_env()))


async def test_fan_out_publishes_to_every_bus(tmp_path: Path) -> None:
    bus = FanOutBus([OutboxBus(tmp_path / "a"), OutboxBus(tmp_path / "b")])
    assert await bus.publish(Destination.CRM_ORDER_UPDATE, "USO.1", b"<m/>") == b"<m/>"
    assert (
        (tmp_path / "a" / "USO.1.xml").read_bytes()
        == (tmp_path / "b" / "USO.1.xml").read_bytes()
        == b"<m/>"
    )


async def test_fan_out_stops_at_the_first_bus_holding_another_message(tmp_path: Path) -> None:
    """Its body is the answer, and the buses after it never take a second message under
    the ID; one holding this message with another header goes on to the next."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "USO.1.xml").write_bytes(b"<other/>")
    bus = FanOutBus([OutboxBus(tmp_path / "a"), OutboxBus(tmp_path / "b")])
    assert await bus.publish(Destination.CRM_ORDER_UPDATE, "USO.1", b"<m/>") == b"<other/>"
    assert not (tmp_path / "b" / "USO.1.xml").exists()
    assert await bus.publish(Destination.CRM_ORDER_UPDATE, "USO.1", b"<other/>") == b"<other/>"
    assert (tmp_path / "b" / "USO.1.xml").read_bytes() == b"<other/>"


async def test_a_provisioning_order_message_leaves_out_the_flags_that_steer_the_child() -> None:
    """A worker of an earlier build, whose ProvisioningOrder lacks them (``extra="forbid"``),
    reads the message; this build reads it back with the flags at their defaults."""
    order = provisioning_order(som_announces=True, som_patched=True)
    message = ProvisioningOrderMessage.of(order, datetime(2026, 1, 15, 9, 30, tzinfo=UTC))
    converter = data_converter()
    [payload] = await converter.encode([message])
    [sent] = await converter.decode([payload])
    assert set(sent["order"]) == set(ProvisioningOrder.model_fields) - CHILD_FLAGS
    [read] = await converter.decode([payload], [ProvisioningOrderMessage])
    assert read.order == order.model_copy(update=dict.fromkeys(CHILD_FLAGS, False))


def test_only_a_fulfillment_faults_details_name_the_fault() -> None:
    """Another error's details (a step result left to the workflow) do not make a fault
    that cannot be read: its type names it."""
    left = ApplicationError(
        "its report not sent: the bus is down",
        [{"line_id": "1", "data": {}}],
        type=REPORT_UNSENT_TYPE,
        non_retryable=True,
    )
    assert fault_of(left) == FaultDetail(
        code=REPORT_UNSENT_TYPE, message="its report not sent: the bus is down"
    )
    refused = FaultDetail(code="NO_CAPACITY", message="no port free", line_id="1", step=Step.DESIGN)
    assert fault_of(fault_error(refused)) == refused
