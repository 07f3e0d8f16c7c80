"""Reading a ProcessSalesOrderFulfillmentEBM (or the same order as JSON) into a CustomerOrder.

The parser is hardened because the document comes from outside: no DTD, no entities, no
network, bounded size and depth. Every error is an ``InputError`` naming the element or
field, so the command line can print one line and exit 2.
"""

from __future__ import annotations

import codecs
import json
import re
from datetime import datetime
from pathlib import Path

from lxml import etree
from pydantic import ValidationError

from o2a.errors import InputError
from o2a.models import CustomerOrder

SO_NS = "http://xmlns.oracle.com/EnterpriseObjects/Core/EBO/SalesOrder/V2"
CC_NS = "http://xmlns.oracle.com/EnterpriseObjects/Core/Common/V2"
ROOT = "ProcessSalesOrderFulfillmentEBM"
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64
NS = {"so": SO_NS, "cc": CC_NS}


def read_order_file(path: str | Path) -> CustomerOrder:
    """Read an order from a file: XML EBM, or JSON when it starts with ``{``."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise InputError(
                f"{p}: document is {size / 1_048_576:.1f} MiB, over the "
                f"{MAX_DOCUMENT_BYTES // 1_048_576} MiB limit"
            )
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: {exc.strerror or exc}") from exc
    try:
        return parse_order(data)
    except InputError as exc:
        raise InputError(f"{p}: {exc}") from exc


def parse_order(data: bytes) -> CustomerOrder:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InputError(f"document is over the {MAX_DOCUMENT_BYTES // 1_048_576} MiB limit")
    head = data.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if not head:
        raise InputError("document is empty")
    if head == b"{":
        return _parse_json(data.removeprefix(codecs.BOM_UTF8))
    return _parse_xml(data)


def _parse_json(data: bytes) -> CustomerOrder:
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply") from None
    except ValueError as exc:  # undecodable bytes, integers past Python's digit limit
        raise InputError(f"malformed JSON: {exc}") from None
    return _validate(raw)


def _validate(raw: object) -> CustomerOrder:
    try:
        return CustomerOrder.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "order"
        raise InputError(f"invalid order: {where}: {err['msg']}") from exc


class _RefuseExternal(etree.Resolver):
    """Defence in depth: even if libxml2 asks for an external resource, nothing is read."""

    def resolve(  # type: ignore[override]  # lxml-stubs omit the context argument
        self, system_url: str | None, public_id: str | None, context: object
    ) -> None:
        raise InputError(f"external resource {system_url or public_id!r} is not allowed")


def _hardened_parser() -> etree.XMLParser:
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )
    parser.resolvers.add(_RefuseExternal())
    return parser


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _decoded(data: bytes) -> str:
    """The document as text, in whatever encoding libxml2 would read it, to look for a DTD."""
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
    if encoding is None:
        declared = _DECLARED.match(data)
        encoding = declared.group(1).decode() if declared else "utf-8"
    try:
        return data.decode(encoding)
    except (LookupError, UnicodeDecodeError) as exc:
        raise InputError(f"document is not readable as {encoding}: {exc}") from None


def _parse_xml(data: bytes) -> CustomerOrder:
    # A DOCTYPE is the door to XXE and entity expansion; an order never needs one. Look for it
    # anywhere in the decoded text before libxml2 sees the document.
    if _DTD.search(_decoded(data)):
        raise InputError("DTDs and entity declarations are not allowed in an order")
    try:
        root = etree.fromstring(data, _hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise InputError(f"not well-formed XML: {exc.msg}") from exc
    _check_depth(root)
    if etree.QName(root).localname != ROOT:
        raise InputError(f"root element is {etree.QName(root).localname}, expected {ROOT}")
    if etree.QName(root).namespace != SO_NS:
        raise InputError(
            f"{ROOT} is in namespace {etree.QName(root).namespace!r}, expected {SO_NS}"
        )
    body = root.find("so:DataArea/so:ProcessSalesOrderFulfillment", NS)
    if body is None:
        raise InputError("missing element DataArea/ProcessSalesOrderFulfillment")
    return _validate(_order_fields(body))


def _check_depth(root: etree._Element) -> None:
    for el in root.iter():
        depth = 0
        parent = el.getparent()
        while parent is not None:
            depth += 1
            parent = parent.getparent()
            if depth > MAX_DEPTH:
                raise InputError(f"document nests deeper than {MAX_DEPTH} elements")


def _text(el: etree._Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(path, NS)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def _required(el: etree._Element, path: str, what: str) -> str:
    value = _text(el, path)
    if value is None:
        raise InputError(f"missing {what} ({path.replace('cc:', '').replace('so:', '')})")
    return value


def _integer(value: str | None, what: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{what} must be a whole number, got {value!r}") from None


def _datetime(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{what} is not an ISO date-time: {value!r}") from None


def _order_fields(body: etree._Element) -> dict[str, object]:
    ident = body.find("cc:Identification", NS)
    if ident is None:
        raise InputError("missing element Identification")
    lines = body.findall("so:SalesOrderLine", NS)
    if not lines:
        raise InputError("order has no SalesOrderLine")
    line_fields = [_line_fields(line, n) for n, line in enumerate(lines, start=1)]
    _resolve_parents(line_fields)
    return {
        "order_number": _required(ident, "cc:ID", "order number"),
        "revision_id": _text(ident, "cc:BusinessComponentID"),
        "revision": _integer(_text(ident, "cc:Revision/cc:Number"), "Revision/Number", 1),
        "order_date": _datetime(_text(body, "so:OrderDateTime"), "OrderDateTime"),
        "requested_delivery_date": _datetime(
            _text(body, "so:RequestedDeliveryDateTime"), "RequestedDeliveryDateTime"
        ),
        "type_code": _text(body, "so:TypeCode"),
        "priority": _integer(
            _text(body, "so:FulfillmentPriorityCode"), "FulfillmentPriorityCode", 5
        ),
        "fulfillment_mode": _text(body, "so:FulfillmentModeCode") or "DELIVER",
        "status_code": _text(body, "cc:Status/cc:Code"),
        "customer_account": _text(
            body, "cc:CustomerPartyReference/cc:CustomerPartyAccountIdentification/cc:ID"
        ),
        "lines": line_fields,
    }


def _line_fields(line: etree._Element, position: int) -> dict[str, object]:
    where = f"SalesOrderLine[{position}]"
    ident = line.find("cc:Identification", NS)
    line_id = _text(ident, "cc:ID") or _text(ident, "cc:BusinessComponentID")
    if line_id is None:
        raise InputError(f"{where}: missing line ID (Identification/ID)")
    item = line.find("cc:ItemReference", NS)
    address = line.find("cc:ServiceAddress", NS)
    return {
        "id": line_id,
        "business_component_id": _text(ident, "cc:BusinessComponentID"),
        "parent_id": _text(line, "so:ParentSalesOrderLineIdentification/cc:BusinessComponentID"),
        "root_id": _text(line, "so:RootParentSalesOrderLineIdentification/cc:BusinessComponentID"),
        "action": _text(line, "so:ServiceActionCode") or "ADD",
        "fulfillment_mode": _text(line, "so:FulfillmentModeCode"),
        "requested_delivery_date": _datetime(
            _text(line, "so:SalesOrderSchedule/so:RequestedDeliveryDateTime"),
            f"{where}/RequestedDeliveryDateTime",
        ),
        "service_address": None
        if address is None
        else {
            "line_one": _text(address, "cc:LineOne"),
            "city": _text(address, "cc:CityName"),
            "postal_code": _text(address, "cc:PostalCode"),
            "country": _text(address, "cc:CountryCode"),
        },
        "item": _item_fields(item),
    }


def _item_fields(item: etree._Element | None) -> dict[str, object]:
    if item is None:
        return {}
    product_class = _text(item, "cc:PrimaryClassificationCode")
    if product_class is None:
        for code in item.findall("cc:ClassificationCode", NS):
            if code.get("listID") == "FulfillmentItemCode" and code.text and code.text.strip():
                product_class = code.text.strip()
                break
    specs = []
    for spec in item.findall("cc:SpecificationGroup/cc:Specification", NS):
        name = _text(spec, "cc:Name")
        if name is not None:
            specs.append({"name": name, "value": _text(spec, "cc:Value") or ""})
    return {
        "name": _text(item, "cc:Name") or "",
        "type_code": (_text(item, "cc:TypeCode") or "").upper(),
        "product_class": product_class,
        "specifications": specs,
    }


def _resolve_parents(lines: list[dict[str, object]]) -> None:
    """Parent references name a BusinessComponentID; the model keys lines by line ID."""
    by_component = {
        str(f["business_component_id"]): str(f["id"])
        for f in lines
        if f["business_component_id"] is not None
    }
    for f in lines:
        for key in ("parent_id", "root_id"):
            ref = f[key]
            if ref is not None:
                f[key] = by_component.get(str(ref), str(ref))
