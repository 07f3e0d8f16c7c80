"""Rendering the outbound EBMs (XML); the MessageBus port delivers them.

Every message carries an ``EBMHeader/EBMID`` equal to its deterministic ID, the ID it is
published under, so a retried delivery finds it there instead of adding one (the sinks keep
the first body an ID is given).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from o2a.inbound import CC_NS, SO_NS
from o2a.models import (
    ComponentUpdate,
    FalloutView,
    FulfillmentStatus,
    HeardLine,
    HeardUpdate,
    JeopardyView,
    LineView,
    ProvisioningOrder,
    RevisionView,
    SalesOrderLine,
)

PO_NS = "http://xmlns.oracle.com/EnterpriseObjects/Core/EBO/ProvisioningOrder/V1"
FAULT_NS = "http://xmlns.oracle.com/EnterpriseObjects/Core/Common/V2"
TT_NS = "http://xmlns.oracle.com/EnterpriseObjects/Core/EBO/TroubleTicket/V1"
ERROR_HANDLER = "O2A.CentralOrderManagement"
FO_NS = "http://xmlns.oracle.com/EnterpriseObjects/Core/EBO/FulfillmentOrder/V1"
SENDER = "O2A"


def _sub(parent: etree._Element, ns: str, tag: str, text: object | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        el.text = str(text)
    return el


def _ebm(
    name: str, ns: str, ebo: str, message_id: str, verb: str, created: datetime
) -> tuple[etree._Element, etree._Element]:
    nsmap = {None: ns, "corecom": CC_NS}
    root = etree.Element(f"{{{ns}}}{name}", nsmap=nsmap)  # type: ignore[arg-type]
    header = _sub(root, CC_NS, "EBMHeader")
    _sub(header, CC_NS, "EBMID", message_id)
    _sub(header, CC_NS, "EBMName", name)
    _sub(header, CC_NS, "EBOName", ebo)
    _sub(header, CC_NS, "CreationDateTime", created.isoformat())
    _sub(header, CC_NS, "VerbCode", verb)
    _sub(_sub(header, CC_NS, "Sender"), CC_NS, "ID", SENDER)
    return root, _sub(root, ns, "DataArea")


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _identification(parent: etree._Element, ident: str, revision: int | None = None) -> None:
    el = _sub(parent, CC_NS, "Identification")
    _sub(el, CC_NS, "ID", ident)
    if revision is not None:
        _sub(_sub(el, CC_NS, "Revision"), CC_NS, "Number", revision)


def _data_updates(parent: etree._Element, data: dict[str, str]) -> None:
    if not data:
        return
    group = _sub(parent, CC_NS, "SpecificationGroup")
    for name, value in sorted(data.items()):
        spec = _sub(group, CC_NS, "Specification")
        _sub(spec, CC_NS, "Name", name)
        _sub(spec, CC_NS, "Value", value)


def _order_line(parent: etree._Element, ns: str, tag: str, line: SalesOrderLine) -> None:
    el = _sub(parent, ns, tag)
    ident = _sub(el, CC_NS, "Identification")
    _sub(ident, CC_NS, "ID", line.id)
    if line.business_component_id:
        _sub(ident, CC_NS, "BusinessComponentID", line.business_component_id)
    if line.parent_id:
        _sub(_sub(el, ns, "ParentLineIdentification"), CC_NS, "ID", line.parent_id)
    _sub(el, ns, "ServiceActionCode", line.action.value)
    if line.service_address:
        address = _sub(el, CC_NS, "ServiceAddress")
        for tag_name, value in (
            ("LineOne", line.service_address.line_one),
            ("CityName", line.service_address.city),
            ("PostalCode", line.service_address.postal_code),
            ("CountryCode", line.service_address.country),
        ):
            if value:
                _sub(address, CC_NS, tag_name, value)
    item = _sub(el, CC_NS, "ItemReference")
    _sub(item, CC_NS, "Name", line.item.name)
    _sub(item, CC_NS, "TypeCode", line.item.type_code)
    if line.item.product_class:
        _sub(item, CC_NS, "PrimaryClassificationCode", line.item.product_class)
    _data_updates(item, {s.name: s.value for s in line.item.specifications})


def render_provisioning_order(
    message_id: str, order: ProvisioningOrder, created: datetime
) -> bytes:
    root, data = _ebm(
        "ProcessProvisioningOrderEBM", PO_NS, "ProvisioningOrderEBO", message_id, "Process", created
    )
    body = _sub(data, PO_NS, "ProcessProvisioningOrder")
    _identification(body, f"{order.order_number}/{order.component_id}", order.revision)
    _sub(body, PO_NS, "SalesOrderIdentification").text = order.order_number
    _sub(body, PO_NS, "FulfillmentPriorityCode", order.priority)
    _sub(body, PO_NS, "TargetSystem", order.target_system)
    if order.customer_account:
        ref = _sub(body, CC_NS, "CustomerPartyReference")
        _sub(
            _sub(ref, CC_NS, "CustomerPartyAccountIdentification"),
            CC_NS,
            "ID",
            order.customer_account,
        )
    for line in order.lines:
        _order_line(body, PO_NS, "ProvisioningOrderLine", line)
    return _serialize(root)


def render_fulfillment_update(
    message_id: str, order_number: str, revision: int, update: ComponentUpdate, created: datetime
) -> bytes:
    root, data = _ebm(
        "ProcessFulfillmentOrderUpdateEBM",
        FO_NS,
        "FulfillmentOrderEBO",
        message_id,
        "Process",
        created,
    )
    body = _sub(data, FO_NS, "ProcessFulfillmentOrderUpdate")
    _identification(body, f"{order_number}/{update.component_id}", revision)
    _sub(_sub(body, CC_NS, "Status"), CC_NS, "Code", update.state.value.upper())
    if update.milestone:
        _sub(body, FO_NS, "MilestoneCode", update.milestone)
    for line_update in update.line_updates:
        line_el = _sub(body, FO_NS, "FulfillmentOrderLine")
        _sub(_sub(line_el, CC_NS, "Identification"), CC_NS, "ID", line_update.line_id)
        _data_updates(line_el, line_update.data)
    return _serialize(root)


def render_sales_order_update(
    message_id: str,
    order_number: str,
    revision: int,
    order_status: FulfillmentStatus,
    lines: list[LineView],
    created: datetime,
    revision_outcome: RevisionView | None = None,
) -> bytes:
    root, data = _ebm("UpdateSalesOrderEBM", SO_NS, "SalesOrderEBO", message_id, "Update", created)
    body = _sub(data, SO_NS, "UpdateSalesOrder")
    _identification(body, order_number, revision)
    _sub(_sub(body, CC_NS, "Status"), CC_NS, "Code", order_status.value)
    if revision_outcome is not None:
        outcome = _sub(body, SO_NS, "RevisionOutcome")
        _sub(outcome, CC_NS, "Number", revision_outcome.number)
        _sub(outcome, SO_NS, "OutcomeCode", revision_outcome.outcome.upper())
        if revision_outcome.reason:
            _sub(outcome, SO_NS, "Reason", revision_outcome.reason)
    for line in lines:
        line_el = _sub(body, SO_NS, "SalesOrderLine")
        _sub(_sub(line_el, CC_NS, "Identification"), CC_NS, "ID", line.id)
        _sub(_sub(line_el, CC_NS, "Status"), CC_NS, "Code", line.status.value)
        if line.milestone:
            _sub(line_el, SO_NS, "MilestoneCode", line.milestone)
        if line.point_of_no_return:
            _sub(line_el, SO_NS, "PointOfNoReturnStatus", "PASSED")
        _data_updates(line_el, line.data)
    return _serialize(root)


@dataclass(frozen=True)
class Fault:
    """The content of an AIA Fault: what failed, where, and what an operator can do."""

    code: str
    text: str
    severity: str
    stack: str
    faulting_service: str
    implementation: str
    corrective_action: str
    incident_id: str


def render_aia_fault(
    message_id: str, fault: Fault, failed_message_id: str | None, created: datetime
) -> bytes:
    """The AIA common error message, for the error-handling service; it names the EBM that
    failed (``EBMReference``) when that EBM had an ID."""
    root = etree.Element(f"{{{FAULT_NS}}}Fault", nsmap={"corecom": FAULT_NS})
    header = _sub(root, CC_NS, "EBMHeader")
    _sub(header, CC_NS, "EBMID", message_id)
    _sub(header, CC_NS, "EBMName", "Fault")
    _sub(header, CC_NS, "CreationDateTime", created.isoformat())
    _sub(_sub(header, CC_NS, "Sender"), CC_NS, "ID", SENDER)
    if failed_message_id is not None:
        _sub(_sub(root, CC_NS, "EBMReference"), CC_NS, "EBMID", failed_message_id)
    notification = _sub(root, CC_NS, "FaultNotification")
    _sub(notification, CC_NS, "ReportingDateTime", created.isoformat())
    message = _sub(notification, CC_NS, "FaultMessage")
    _sub(message, CC_NS, "Code", fault.code)
    _sub(message, CC_NS, "Text", fault.text)
    _sub(message, CC_NS, "Severity", fault.severity)
    _sub(message, CC_NS, "Stack", fault.stack)
    service = _sub(notification, CC_NS, "FaultingService")
    _sub(service, CC_NS, "ID", fault.faulting_service)
    _sub(service, CC_NS, "ImplementationCode", fault.implementation)
    _sub(notification, CC_NS, "CorrectiveAction", fault.corrective_action)
    _sub(notification, CC_NS, "IncidentID", fault.incident_id)
    return _serialize(root)


def render_fault(
    message_id: str,
    order_number: str,
    fallout: FalloutView,
    failed_message_id: str,
    created: datetime,
) -> bytes:
    """An order's fallout as an AIA Fault."""
    fault = Fault(
        code=fallout.code,
        text=fallout.message,
        severity=fallout.severity,
        stack=f"order {order_number} / component {fallout.component} / step "
        f"{fallout.step or '-'} / lines {', '.join(fallout.lines)}",
        faulting_service=fallout.component,
        implementation="TemporalWorkflow",
        corrective_action="Fix the cause in the target system, then resolve the fallout "
        f"(retry component {fallout.component}); or send a revision without the faulty line; "
        "or cancel the order",
        incident_id=fallout.id,
    )
    return render_aia_fault(message_id, fault, failed_message_id, created)


def render_trouble_ticket(
    message_id: str, order_number: str, fallout: FalloutView, created: datetime
) -> bytes:
    """CreateTroubleTicketEBM: the incident as CRM's service desk sees it."""
    root, data = _ebm(
        "CreateTroubleTicketEBM", TT_NS, "TroubleTicketEBO", message_id, "Create", created
    )
    body = _sub(data, TT_NS, "CreateTroubleTicket")
    _identification(body, fallout.id)
    _sub(body, TT_NS, "SalesOrderIdentification", order_number)
    _sub(body, TT_NS, "TypeCode", "ORDER FALLOUT")
    _sub(body, TT_NS, "SeverityCode", fallout.severity)
    _sub(body, TT_NS, "Summary", f"{fallout.code}: {fallout.message}")
    for line_id in fallout.lines:
        _sub(_sub(body, TT_NS, "SalesOrderLineReference"), CC_NS, "ID", line_id)
    return _serialize(root)


def render_jeopardy(
    message_id: str,
    order_number: str,
    revision: int,
    jeopardy: JeopardyView,
    lines: list[str],
    created: datetime,
) -> bytes:
    """An UpdateSalesOrderEBM that warns CRM: a component runs past its expected duration."""
    root, data = _ebm("UpdateSalesOrderEBM", SO_NS, "SalesOrderEBO", message_id, "Update", created)
    body = _sub(data, SO_NS, "UpdateSalesOrder")
    _identification(body, order_number, revision)
    notice = _sub(body, SO_NS, "JeopardyNotification")
    _sub(notice, SO_NS, "SeverityCode", jeopardy.severity)
    _sub(notice, SO_NS, "OrderComponentID", jeopardy.component)
    _sub(notice, SO_NS, "ExpectedCompletionDateTime", jeopardy.expected_by.isoformat())
    for line_id in lines:
        _sub(_sub(notice, SO_NS, "SalesOrderLine"), CC_NS, "ID", line_id)
    return _serialize(root)


def content_identity(root: etree._Element) -> bytes:
    """What a message says, without the header that carries its ID and creation time (and
    without a Fault's ReportingDateTime, its creation time again: a Fault keeps no header
    fields in its body but this one)."""
    parts = []
    for child in root:
        if etree.QName(child).localname == "EBMHeader":
            continue
        body = copy.deepcopy(child)
        for stamp in list(body.iter(f"{{{CC_NS}}}ReportingDateTime")):
            parent = stamp.getparent()
            if parent is not None:
                parent.remove(stamp)
        parts.append(etree.tostring(body, method="c14n"))
    return b"".join(parts)


def same_message(held: bytes, document: bytes) -> bool:
    """Two renderings of one message: the same body, whatever the header says (a message
    decided again by a retried workflow task carries that task's creation time)."""
    if held == document:
        return True
    first, second = _parsed(held), _parsed(document)
    if first is None or second is None:
        return False
    return first.tag == second.tag and content_identity(first) == content_identity(second)


def read_sales_order_update(document: bytes) -> HeardUpdate | None:
    """What an UpdateSalesOrderEBM of ours told CRM (``render_sales_order_update`` read
    back); None for a body that is not one."""
    root = _parsed(document)
    body = None if root is None else root.find(f".//{{{SO_NS}}}UpdateSalesOrder")
    if body is None:
        return None
    try:
        return HeardUpdate(
            order_status=FulfillmentStatus(body.findtext(f"{{{CC_NS}}}Status/{{{CC_NS}}}Code", "")),
            lines=[_heard_line(line) for line in body.iterfind(f"{{{SO_NS}}}SalesOrderLine")],
        )
    except ValueError:
        return None


def _heard_line(line: etree._Element) -> HeardLine:
    specs = line.iterfind(f"{{{CC_NS}}}SpecificationGroup/{{{CC_NS}}}Specification")
    return HeardLine(
        id=line.findtext(f"{{{CC_NS}}}Identification/{{{CC_NS}}}ID") or "",
        status=FulfillmentStatus(line.findtext(f"{{{CC_NS}}}Status/{{{CC_NS}}}Code", "")),
        milestone=line.findtext(f"{{{SO_NS}}}MilestoneCode"),
        point_of_no_return=line.findtext(f"{{{SO_NS}}}PointOfNoReturnStatus") == "PASSED",
        data={
            spec.findtext(f"{{{CC_NS}}}Name") or "": spec.findtext(f"{{{CC_NS}}}Value") or ""
            for spec in specs
        },
    )


def _parsed(document: bytes) -> etree._Element | None:
    try:
        return etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return None
