"""The simulator contract (DESIGN.md §3), the outbound EBMs and the outbox adapter."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from o2a import ids
from o2a.adapters.outbox import OutboxBus
from o2a.errors import InputError
from o2a.inbound import CC_NS, SO_NS, read_order_file
from o2a.models import (
    ComponentState,
    ComponentUpdate,
    FalloutView,
    FulfillmentStatus,
    ItemReference,
    LineUpdate,
    LineView,
    ProvisioningOrder,
    SalesOrderLine,
    ServiceActionCode,
    Specification,
    Step,
)
from o2a.outbound import (
    FO_NS,
    PO_NS,
    render_fault,
    render_fulfillment_update,
    render_provisioning_order,
    render_sales_order_update,
)
from o2a.ports import Destination
from o2a.simulator import (
    DEFAULT_FAULT_CODE,
    SimulatedFault,
    SimulatedOutage,
    activation_data,
    line_delay,
    line_fault,
    line_outage,
    validate_simulation,
)

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CREATED = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
NS = {"cc": CC_NS}


def spec_line(
    line_id: str = "1.1", product_class: str | None = "Fixed Service Plan Class", **specs: str
) -> SalesOrderLine:
    return SalesOrderLine(
        id=line_id,
        item=ItemReference(
            name="Plan",
            type_code="PRODUCT",
            product_class=product_class,
            specifications=[Specification(name=k, value=v) for k, v in specs.items()],
        ),
    )


# --- SimulatedDelay ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"), [("0.2", 0.2), ("0", 0.0), ("3", 3.0), (" 1.5 ", 1.5), ("86400", 86400.0)]
)
def test_delay(raw: str, expected: float) -> None:
    assert line_delay(spec_line(SimulatedDelay=raw)) == expected


def test_no_delay() -> None:
    assert line_delay(spec_line()) == 0.0


@pytest.mark.parametrize("raw", ["soon", "", "-1", "86401", "nan", "inf", "1e9"])
def test_bad_delay(raw: str) -> None:
    with pytest.raises(InputError) as info:
        line_delay(spec_line("7", SimulatedDelay=raw))
    assert "line 7" in str(info.value)
    assert "SimulatedDelay" in str(info.value)


def test_sample_delays() -> None:
    order = read_order_file(SAMPLES / "triple_play.xml")
    delays = {line.id: line_delay(line) for line in order.lines}
    assert delays["1.1.1"] == delays["1.3.1"] == 0.2
    assert sum(1 for d in delays.values() if d) == 2
    validate_simulation(order.lines)


# --- SimulatedFault ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("activate", SimulatedFault(Step.ACTIVATE, DEFAULT_FAULT_CODE, None)),
        ("design:DSLAM_DOWN", SimulatedFault(Step.DESIGN, "DSLAM_DOWN", None)),
        ("verify:NO_SYNC:2", SimulatedFault(Step.VERIFY, "NO_SYNC", 2)),
        ("activate::3", SimulatedFault(Step.ACTIVATE, DEFAULT_FAULT_CODE, 3)),
        ("undo-activate:STUCK", SimulatedFault(Step.UNDO_ACTIVATE, "STUCK", None)),
        ("billing:BRM_TIMEOUT:1", SimulatedFault(Step.BILLING, "BRM_TIMEOUT", 1)),
        ("ship:OUT_OF_STOCK", SimulatedFault(Step.SHIP, "OUT_OF_STOCK", None)),
        ("amend-billing:BRM_DOWN", SimulatedFault(Step.AMEND_BILLING, "BRM_DOWN", None)),
        ("amend-sync::1", SimulatedFault(Step.AMEND_SYNC, DEFAULT_FAULT_CODE, 1)),
        ("undo-sync", SimulatedFault(Step.UNDO_SYNC, DEFAULT_FAULT_CODE, None)),
    ],
)
def test_fault_spec(raw: str, expected: SimulatedFault) -> None:
    fault = line_fault(spec_line(SimulatedFault=raw))
    assert fault == expected
    assert fault is not None and type(fault.step) is Step


def test_every_step_may_be_named() -> None:
    for step in Step:
        assert line_fault(spec_line(SimulatedFault=step.value)) == SimulatedFault(
            step, DEFAULT_FAULT_CODE, None
        )
        assert line_outage(spec_line(SimulatedOutage=f"{step.value}:2")) == SimulatedOutage(step, 2)


@pytest.mark.parametrize("raw", ["activate", "activate:0", "activate:x", "amend-ship:1", ":1"])
def test_bad_outage_spec(raw: str) -> None:
    with pytest.raises(InputError, match=r"line 4: SimulatedOutage must be STEP:COUNT"):
        line_outage(spec_line("4", SimulatedOutage=raw))


def test_no_fault() -> None:
    assert line_fault(spec_line()) is None


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("explode", "STEP[:CODE[:COUNT]]"),
        ("", "STEP[:CODE[:COUNT]]"),
        ("ACTIVATE", "STEP[:CODE[:COUNT]]"),
        ("activate:X:1:extra", "STEP[:CODE[:COUNT]]"),
        ("activate:X:twice", "COUNT must be a whole number"),
        ("activate:X:", "COUNT must be a whole number"),
    ],
)
def test_bad_fault_spec(raw: str, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        line_fault(spec_line("9", SimulatedFault=raw))
    assert fragment in str(info.value)
    assert "line 9" in str(info.value)


def test_validate_simulation_refuses_a_bad_line() -> None:
    good = spec_line("1", SimulatedDelay="0.1", SimulatedFault="design:X:1")
    with pytest.raises(InputError, match="line 2"):
        validate_simulation([good, spec_line("2", SimulatedFault="teleport")])
    with pytest.raises(InputError, match="line 3"):
        validate_simulation([good, spec_line("3", SimulatedDelay="later")])


def test_fault_fails_every_time_without_count() -> None:
    fault = SimulatedFault(Step.ACTIVATE, "X", None)
    assert all(fault.fails(Step.ACTIVATE, run) for run in range(1, 20))
    assert not fault.fails(Step.DESIGN, 1)
    assert not fault.fails(Step.UNDO_ACTIVATE, 1)


def test_fault_fails_count_times() -> None:
    fault = SimulatedFault(Step.ACTIVATE, "X", 2)
    assert [fault.fails(Step.ACTIVATE, run) for run in (1, 2, 3, 4)] == [True, True, False, False]
    assert not fault.fails(Step.VERIFY, 1)
    assert not SimulatedFault(Step.ACTIVATE, "X", 0).fails(Step.ACTIVATE, 1)


def test_outage_refuses_count_attempts() -> None:
    outage = SimulatedOutage(Step.BILLING, 2)
    assert [outage.refuses(Step.BILLING, n) for n in (1, 2, 3)] == [True, True, False]
    assert not outage.refuses(Step.AMEND_BILLING, 1)


# --- activation data --------------------------------------------------------------------------


def test_activation_data_is_deterministic() -> None:
    plan = spec_line("1.2.1", "Mobile Service Plan Class")
    first = activation_data("TP-1001", plan, "MobileProvisioningSystem")
    assert first == activation_data(
        "TP-1001", plan.model_copy(deep=True), "MobileProvisioningSystem"
    )
    assert first != activation_data("TP-1002", plan, "MobileProvisioningSystem")
    assert first["ServiceInstanceId"] == "SI-TP-1001-1.2.1"


def test_activation_data_by_system() -> None:
    fixed = activation_data(
        "O", spec_line("a", "Fixed Service Plan Class"), "FixedProvisioningSystem"
    )
    assert set(fixed) == {"ServiceInstanceId", "AssignedNumber"}
    assert fixed["AssignedNumber"].startswith("+3120") and len(fixed["AssignedNumber"]) == 12
    assert fixed["AssignedNumber"][1:].isdigit()

    mobile = activation_data(
        "O", spec_line("b", "Mobile Service Plan Class"), "MobileProvisioningSystem"
    )
    assert set(mobile) == {"ServiceInstanceId", "MSISDN", "ICCID"}
    assert mobile["MSISDN"].startswith("+316") and len(mobile["MSISDN"]) == 12
    assert mobile["ICCID"].startswith("8931") and len(mobile["ICCID"]) == 19
    assert mobile["ICCID"].isdigit()

    broadband = activation_data(
        "O", spec_line("c", "Broadband Service Plan Class"), "BroadbandProvisioningSystem"
    )
    assert set(broadband) == {"ServiceInstanceId", "IPAddress"}
    assert ipaddress.ip_address(broadband["IPAddress"]) in ipaddress.ip_network("100.64.0.0/10")

    feature = activation_data(
        "O", spec_line("d", "Broadband Service Feature Class"), "BroadbandProvisioningSystem"
    )
    assert feature == {"ServiceInstanceId": "SI-O-d"}


def test_activation_addresses_are_valid_for_many_lines() -> None:
    net = ipaddress.ip_network("100.64.0.0/10")
    seen = set()
    for n in range(200):
        data = activation_data(
            "BUS-3001",
            spec_line(f"{n}.1", "Broadband Service Plan Class"),
            "BroadbandProvisioningSystem",
        )
        assert ipaddress.ip_address(data["IPAddress"]) in net
        seen.add(data["IPAddress"])
    assert len(seen) > 190


# --- outbound messages ------------------------------------------------------------------------


def header_id(document: bytes) -> tuple[etree._Element, str]:
    root = etree.fromstring(document)
    assert root.findtext("cc:EBMHeader/cc:EBMName", namespaces=NS) == etree.QName(root).localname
    ebm_id = root.findtext("cc:EBMHeader/cc:EBMID", namespaces=NS)
    assert ebm_id is not None
    return root, ebm_id


def test_provisioning_order_ebm() -> None:
    order = read_order_file(SAMPLES / "triple_play.xml")
    lines = [line for line in order.lines if line.id in ("1.3.1", "1.3.2")]
    component = "Provision.BroadbandProvisioningSystem.bundle-1.3"
    message_id = ids.provisioning_order_message_id("TP-1001", 1, component)
    po = ProvisioningOrder(
        order_number="TP-1001",
        revision=1,
        component_id=component,
        target_system="BroadbandProvisioningSystem",
        parent_workflow_id=ids.order_workflow_id("TP-1001"),
        customer_account="CA-100245",
        lines=lines,
    )
    document = render_provisioning_order(message_id, po, CREATED)
    assert document.startswith(b"<?xml")
    root, ebm_id = header_id(document)
    assert etree.QName(root).localname == "ProcessProvisioningOrderEBM"
    assert etree.QName(root).namespace == PO_NS
    assert ebm_id == message_id
    assert message_id.startswith("PPO.TP-1001.r1.")
    created = root.findtext("cc:EBMHeader/cc:CreationDateTime", namespaces=NS)
    assert created == CREATED.isoformat()
    body = root.find(f"{{{PO_NS}}}DataArea/{{{PO_NS}}}ProcessProvisioningOrder")
    assert body is not None
    assert body.findtext(f"{{{PO_NS}}}TargetSystem") == "BroadbandProvisioningSystem"
    assert body.findtext("cc:Identification/cc:Revision/cc:Number", namespaces=NS) == "1"
    po_lines = body.findall(f"{{{PO_NS}}}ProvisioningOrderLine")
    assert [el.findtext("cc:Identification/cc:ID", namespaces=NS) for el in po_lines] == [
        "1.3.1",
        "1.3.2",
    ]
    specs = {
        s.findtext("cc:Name", namespaces=NS): s.findtext("cc:Value", namespaces=NS)
        for s in po_lines[0].iterfind(".//cc:Specification", NS)
    }
    assert specs["Speed"] == "500 Mbps"


def test_fulfillment_update_ebm() -> None:
    message_id = ids.fulfillment_update_message_id("TP-1001", 1, "Ship.ShippingSystem.order", 3)
    update = ComponentUpdate(
        component_id="Ship.ShippingSystem.order",
        state=ComponentState.COMPLETED,
        milestone="SHIPPED",
        line_updates=[LineUpdate(line_id="1.3.3", data={"TrackingNumber": "3SABC1234567"})],
    )
    document = render_fulfillment_update(message_id, "TP-1001", 1, update, CREATED)
    root, ebm_id = header_id(document)
    assert etree.QName(root).localname == "ProcessFulfillmentOrderUpdateEBM"
    assert etree.QName(root).namespace == FO_NS
    assert ebm_id == message_id
    body = root.find(f"{{{FO_NS}}}DataArea/{{{FO_NS}}}ProcessFulfillmentOrderUpdate")
    assert body is not None
    assert body.findtext("cc:Status/cc:Code", namespaces=NS) == "COMPLETED"
    assert body.findtext(f"{{{FO_NS}}}MilestoneCode") == "SHIPPED"
    assert "3SABC1234567" in document.decode()


def test_sales_order_update_ebm() -> None:
    message_id = ids.sales_order_update_message_id("TP-1001", 2, 7)
    lines = [
        LineView(
            id="1.2.1",
            name="Mobile",
            action=ServiceActionCode.ADD,
            product_class="Mobile Service Plan Class",
            status=FulfillmentStatus.COMPLETE,
            milestone="PROVISION_COMPLETE",
            data={"MSISDN": "+31612345678"},
        ),
        LineView(
            id="1.3.1",
            name="Fibre",
            action=ServiceActionCode.ADD,
            product_class=None,
            status=FulfillmentStatus.IN_PROGRESS,
        ),
    ]
    document = render_sales_order_update(
        message_id, "TP-1001", 2, FulfillmentStatus.IN_PROGRESS, lines, CREATED
    )
    root, ebm_id = header_id(document)
    assert etree.QName(root).localname == "UpdateSalesOrderEBM"
    assert etree.QName(root).namespace == SO_NS
    assert ebm_id == message_id
    assert message_id.startswith("USO.TP-1001.r2.")
    body = root.find(f"{{{SO_NS}}}DataArea/{{{SO_NS}}}UpdateSalesOrder")
    assert body is not None
    assert body.findtext("cc:Identification/cc:ID", namespaces=NS) == "TP-1001"
    assert body.findtext("cc:Status/cc:Code", namespaces=NS) == "IN PROGRESS"
    out_lines = body.findall(f"{{{SO_NS}}}SalesOrderLine")
    assert [el.findtext("cc:Status/cc:Code", namespaces=NS) for el in out_lines] == [
        "COMPLETE",
        "IN PROGRESS",
    ]
    assert out_lines[0].findtext(f"{{{SO_NS}}}MilestoneCode") == "PROVISION_COMPLETE"
    assert out_lines[1].find(f"{{{SO_NS}}}MilestoneCode") is None


def test_rendering_is_deterministic() -> None:
    update = ComponentUpdate(component_id="c", state=ComponentState.IN_PROGRESS)
    first = render_fulfillment_update("PFOU.X.r1.c.1", "X", 1, update, CREATED)
    assert first == render_fulfillment_update("PFOU.X.r1.c.1", "X", 1, update, CREATED)


def test_message_ids_are_file_safe() -> None:
    message_id = ids.provisioning_order_message_id("A/B 1", 3, "Provision.X.bundle-1")
    assert "/" not in message_id and " " not in message_id
    assert re.fullmatch(r"[A-Za-z0-9_.~-]+", message_id)
    assert message_id.startswith("PPO.A~2FB~201.r3.")


def test_fault_corrective_action_names_no_command() -> None:
    """Operators read the Fault in the error-handling console, not at a shell prompt."""
    fallout = FalloutView(
        id="FO-TP-1001-1",
        component="Provision.MobileProvisioningSystem.bundle-1.2",
        lines=["1.2.1"],
        step="activate",
        code="HLR_DOWN",
        message="MobileProvisioningSystem rejected activate of line 1.2.1: HLR_DOWN",
        severity="High",
        state="open",
    )
    document = render_fault("FLT.FO-TP-1001-1", "TP-1001", fallout, "PPO.TP-1001.r1.x", CREATED)
    root = etree.fromstring(document)
    assert etree.QName(root).localname == "Fault"
    action = root.findtext("cc:FaultNotification/cc:CorrectiveAction", namespaces=NS)
    assert action is not None
    assert "o2a " not in action and "`" not in action and "--" not in action
    assert "resolve the fallout" in action
    assert fallout.component in action
    assert "revision without the faulty line" in action
    assert "cancel the order" in action


# --- the outbox adapter -----------------------------------------------------------------------


async def test_outbox_writes_one_file_per_message(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox" / "nested"
    await OutboxBus(outbox).publish(Destination.CRM_ORDER_UPDATE, "USO.TP-1001.r1.1", b"<first/>")
    assert [p.name for p in outbox.iterdir()] == ["USO.TP-1001.r1.1.xml"]
    assert (outbox / "USO.TP-1001.r1.1.xml").read_bytes() == b"<first/>"


async def test_outbox_is_flat_whatever_the_destination(tmp_path: Path) -> None:
    bus = OutboxBus(tmp_path)
    for n, destination in enumerate(Destination):
        await bus.publish(destination, f"M.{n}", b"<m/>")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"M.{n}.xml" for n in range(len(Destination))
    ]


async def test_outbox_keeps_the_first_body_an_id_is_given(tmp_path: Path) -> None:
    """A republish under a stored ID answers with the body kept and changes nothing: a
    reader never sees one ID with two bodies, nor a half-written file, nor a temporary one."""
    bus = OutboxBus(tmp_path)
    first = await bus.publish(Destination.CRM_ORDER_UPDATE, "USO.TP-1001.r1.1", b"<first/>")
    written = tmp_path / "USO.TP-1001.r1.1.xml"
    first_inode = written.stat().st_ino
    again = await bus.publish(Destination.CRM_ORDER_UPDATE, "USO.TP-1001.r1.1", b"<first/>")
    other = await bus.publish(Destination.CRM_ORDER_UPDATE, "USO.TP-1001.r1.1", b"<second/>")
    assert first == again == other == b"<first/>"
    assert [p.name for p in tmp_path.iterdir()] == ["USO.TP-1001.r1.1.xml"]
    assert written.read_bytes() == b"<first/>"
    assert written.stat().st_ino == first_inode
    await bus.publish(Destination.CRM_ORDER_UPDATE, "USO.TP-1001.r1.2", b"<third/>")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "USO.TP-1001.r1.1.xml",
        "USO.TP-1001.r1.2.xml",
    ]


async def test_outbox_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    bus = OutboxBus(tmp_path)
    await bus.publish(Destination.ERROR_HANDLING, "M.1", b"<old/>")
    with pytest.raises(TypeError):
        await bus.publish(Destination.ERROR_HANDLING, "M.1", "not bytes")  # type: ignore[arg-type]
    assert [p.name for p in tmp_path.iterdir()] == ["M.1.xml"]
    assert (tmp_path / "M.1.xml").read_bytes() == b"<old/>"


async def test_outbox_delivers_a_rendered_message(tmp_path: Path) -> None:
    message_id = ids.sales_order_update_message_id("TP-1001", 1, 1)
    document = render_sales_order_update(
        message_id, "TP-1001", 1, FulfillmentStatus.OPEN, [], CREATED
    )
    await OutboxBus(tmp_path).publish(Destination.CRM_ORDER_UPDATE, message_id, document)
    written = tmp_path / f"{message_id}.xml"
    _, ebm_id = header_id(written.read_bytes())
    assert ebm_id == written.stem == message_id
