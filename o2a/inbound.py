"""Reading a ProcessSalesOrderFulfillmentEBM (or the same order as JSON) into a CustomerOrder.

The parser is hardened because the document comes from outside: no DTD, no entities, no
network, bounded size, depth and line count. Every error is an ``InputError`` of one line
naming the element or field (user text in it is escaped), so the command line can print it
and exit 2.
"""

from __future__ import annotations

import codecs
import json
import re
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from lxml import etree
from pydantic import ValidationError

from o2a.errors import InputError, MalformedDocument
from o2a.models import MAX_ORDER_LINES, MAX_REVISION, CustomerOrder

SO_NS = "http://xmlns.oracle.com/EnterpriseObjects/Core/EBO/SalesOrder/V2"
CC_NS = "http://xmlns.oracle.com/EnterpriseObjects/Core/Common/V2"
ROOT = "ProcessSalesOrderFulfillmentEBM"
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64
NS = {"so": SO_NS, "cc": CC_NS}


def read_order_file(path: str | Path) -> CustomerOrder:
    """Read an order from a file: XML EBM, or JSON when it starts with ``{`` or ``[``."""
    p = Path(path)
    shown = _shown(str(p))
    try:
        size = p.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise MalformedDocument(
                f"{shown}: document is {size / 1_048_576:.1f} MiB, over the "
                f"{MAX_DOCUMENT_BYTES // 1_048_576} MiB limit"
            )
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{shown}: {_shown(str(exc.strerror or exc))}") from exc
    try:
        return parse_order(data)
    except InputError as exc:
        raise type(exc)(f"{shown}: {exc}") from exc


def parse_order(data: bytes) -> CustomerOrder:
    """An order from bytes: JSON when its first non-space character is ``{`` or ``[``."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise MalformedDocument(f"document is over the {MAX_DOCUMENT_BYTES // 1_048_576} MiB limit")
    head = data.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if not head:
        raise MalformedDocument("document is empty")
    if head in (b"{", b"["):
        return _parse_json(data.removeprefix(codecs.BOM_UTF8))
    return _parse_xml(data)


def _shown(text: str) -> str:
    """User text inside a message, escaped when it would break the one-line contract."""
    return text if text.isprintable() else repr(text)[1:-1]


def _parse_json(data: bytes) -> CustomerOrder:
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        raise MalformedDocument(
            f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise MalformedDocument("malformed JSON: nested too deeply") from None
    except ValueError as exc:  # undecodable bytes, integers past Python's digit limit
        raise MalformedDocument(f"malformed JSON: {_shown(str(exc))}") from None
    if not isinstance(raw, dict):
        raise MalformedDocument(f"a JSON order must be an object, not {type(raw).__name__}")
    return _validate(raw)


def _validate(raw: dict[str, object]) -> CustomerOrder:
    try:
        return CustomerOrder.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "order"
        raise InputError(_shown(f"invalid order: {where}: {err['msg']}")) from exc


class _RefuseExternal(etree.Resolver):
    """Defence in depth: even if libxml2 asks for an external resource, nothing is read."""

    def resolve(  # type: ignore[override]  # lxml-stubs omit the context argument
        self, system_url: str | None, public_id: str | None, context: object
    ) -> None:
        raise MalformedDocument(f"external resource {system_url or public_id!r} is not allowed")


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
_SNIFFED = (  # no BOM: the first characters ``<?`` say the encoding (XML 1.0, appendix F)
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DTD_REFUSED = "DTDs and entity declarations are not allowed in an order"


def _decoded(data: bytes) -> str:
    """The document as text, in whatever encoding libxml2 would read it, to look for a DTD."""
    encoding = next((enc for bom, enc in _BOMS + _SNIFFED if data.startswith(bom)), None)
    if encoding is None:
        declared = _DECLARED.match(data)
        encoding = declared.group(1).decode() if declared else "utf-8"
    try:
        return data.decode(encoding)
    except (LookupError, UnicodeDecodeError) as exc:
        raise MalformedDocument(
            f"document is not readable as {encoding}: {_shown(str(exc))}"
        ) from None


class Envelope(NamedTuple):
    """What names any EBM, whatever its body: its root element and ``EBMHeader/EBMID``."""

    root: str
    ebm_id: str | None
    """None when absent, or unfit for a message header (not printable, over 255 bytes)."""


def envelope(data: bytes) -> Envelope | None:
    """The envelope of a document read as warily as an order; None if it cannot be read
    (not XML, a DTD, too big or deep). For naming a message on the bus, not for trusting it."""
    if len(data) > MAX_DOCUMENT_BYTES:
        return None
    try:
        root = _read_xml(data)
    except MalformedDocument:
        return None
    ebm_id = (root.findtext(f"{{{CC_NS}}}EBMHeader/{{{CC_NS}}}EBMID") or "").strip()
    fit = ebm_id.isprintable() and 0 < len(ebm_id.encode()) <= 255
    return Envelope(etree.QName(root).localname, ebm_id if fit else None)


def _read_xml(data: bytes) -> etree._Element:
    # A DOCTYPE is the door to XXE and entity expansion; an order never needs one. Look for it
    # anywhere in the decoded text before libxml2 sees the document, and ask libxml2 after
    # parsing too, whatever encoding it read: an unexpanded entity reference would silently
    # cut the text around it.
    if _DTD.search(_decoded(data)):
        raise MalformedDocument(_DTD_REFUSED)
    try:
        root = etree.fromstring(data, _hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedDocument(f"not well-formed XML: {_one_line(exc.msg)}") from exc
    dtd = root.getroottree().docinfo.internalDTD  # libxml2 makes one for every DOCTYPE
    if dtd is not None or next(root.iter(etree.Entity), None) is not None:
        raise MalformedDocument(_DTD_REFUSED)
    _check_depth(root)
    return root


def _parse_xml(data: bytes) -> CustomerOrder:
    root = _read_xml(data)
    if etree.QName(root).localname != ROOT:
        raise MalformedDocument(f"root element is {etree.QName(root).localname}, expected {ROOT}")
    if etree.QName(root).namespace != SO_NS:
        raise MalformedDocument(
            f"{ROOT} is in namespace {etree.QName(root).namespace!r}, expected {SO_NS}"
        )
    body = root.find("so:DataArea/so:ProcessSalesOrderFulfillment", NS)
    if body is None:
        raise InputError("missing element DataArea/ProcessSalesOrderFulfillment")
    return _validate(_order_fields(body))


def _one_line(message: str) -> str:
    """libxml2 ends some messages with a line break, and lxml appends the position after it."""
    return _shown(" ".join(message.split()).replace(" ,", ","))


def _check_depth(root: etree._Element) -> None:
    for el in root.iter():
        depth = 0
        parent = el.getparent()
        while parent is not None:
            depth += 1
            parent = parent.getparent()
            if depth > MAX_DEPTH:
                raise MalformedDocument(f"document nests deeper than {MAX_DEPTH} elements")


def _text(el: etree._Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(path, NS)
    return None if found is None else _value(found)


def _value(el: etree._Element) -> str | None:
    """An element's text; an element inside it would cut the text, so it is refused."""
    if len(el):
        raise InputError(f"{etree.QName(el).localname} must hold text only, not elements")
    return (el.text or "").strip() or None


def _required(el: etree._Element, path: str, what: str) -> str:
    value = _text(el, path)
    if value is None:
        raise InputError(f"missing {what} ({path.replace('cc:', '').replace('so:', '')})")
    return value


_DIGITS = re.compile(r"[0-9]+")
"""ASCII digits only: int() would also read ``1_0`` as 10 and full-width digits as numbers."""


def _integer(value: str | None, what: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not _DIGITS.fullmatch(value):
        raise InputError(f"{what} must be a whole number, got {value!r}")
    digits = value.lstrip("0") or "0"  # compared by length first: int() caps its digits
    if len(digits) > len(str(high)) or not low <= int(digits) <= high:
        raise InputError(f"{what} must be {low}..{high}, got {value!r}")
    return int(digits)


def _datetime(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{what} is not an ISO date-time: {value!r}") from None
    if parsed.utcoffset() is None:
        raise InputError(f"{what} has no time zone (add Z or an offset such as +01:00): {value!r}")
    return parsed


def _order_fields(body: etree._Element) -> dict[str, object]:
    ident = body.find("cc:Identification", NS)
    if ident is None:
        raise InputError("missing element Identification")
    lines = body.findall("so:SalesOrderLine", NS)
    if not lines:
        raise InputError("order has no SalesOrderLine")
    if len(lines) > MAX_ORDER_LINES:
        raise InputError(
            f"order has {len(lines)} SalesOrderLine elements, over the limit of {MAX_ORDER_LINES}"
        )
    line_fields = [_line_fields(line, n) for n, line in enumerate(lines, start=1)]
    _resolve_parents(line_fields)
    return {
        "order_number": _required(ident, "cc:ID", "order number"),
        "revision_id": _text(ident, "cc:BusinessComponentID"),
        "revision": _integer(
            _text(ident, "cc:Revision/cc:Number"), "Revision/Number", 1, 1, MAX_REVISION
        ),
        "order_date": _datetime(_text(body, "so:OrderDateTime"), "OrderDateTime"),
        "requested_delivery_date": _datetime(
            _text(body, "so:RequestedDeliveryDateTime"), "RequestedDeliveryDateTime"
        ),
        "type_code": _text(body, "so:TypeCode"),
        "priority": _integer(
            _text(body, "so:FulfillmentPriorityCode"), "FulfillmentPriorityCode", 5, 0, 9
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
            if code.get("listID") == "FulfillmentItemCode" and (value := _value(code)):
                product_class = value
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
