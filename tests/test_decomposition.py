"""Decomposition: order lines → components (function, target system, granularity) + deps."""

from __future__ import annotations

import re

import pytest

from o2a.catalog import Catalog
from o2a.decomposition import component_id, decompose, line_pattern, natural_key, validate_order
from o2a.errors import InputError
from o2a.inbound import parse_order, read_order_file
from o2a.models import (
    ComponentKind,
    CustomerOrder,
    ItemReference,
    OrderPlan,
    SalesOrderLine,
    ServiceActionCode,
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

SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def line(
    line_id: str,
    type_code: str = "PRODUCT",
    product_class: str | None = None,
    *,
    parent: str | None = None,
    root: str | None = None,
    action: str = "ADD",
) -> SalesOrderLine:
    return SalesOrderLine(
        id=line_id,
        parent_id=parent,
        root_id=root,
        action=ServiceActionCode(action),
        item=ItemReference(
            name=f"item {line_id}", type_code=type_code, product_class=product_class
        ),
    )


def order(*lines: SalesOrderLine, number: str = "D-1") -> CustomerOrder:
    return CustomerOrder(order_number=number, lines=list(lines))


def by_id(plan: OrderPlan) -> dict[str, list[str]]:
    return {c.id: c.lines for c in plan.components}


# --- the triple play ------------------------------------------------------------------------


def test_triple_play_components(tp_plan: OrderPlan) -> None:
    assert [c.id for c in tp_plan.components] == [
        SYNC,
        PROV_BB,
        PROV_FIXED,
        PROV_MOBILE,
        SHIP,
        INIT_BILL,
        FULFIL_BILL,
    ]
    assert tp_plan.order_number == "TP-1001"
    assert tp_plan.revision == 1


def test_triple_play_targets_and_granularity(tp_plan: OrderPlan) -> None:
    provision = [c for c in tp_plan.components if c.function == "Provision"]
    assert sorted(c.target_system for c in provision) == [
        "BroadbandProvisioningSystem",
        "FixedProvisioningSystem",
        "MobileProvisioningSystem",
    ]
    assert all(c.granularity == "Bundle" and c.kind is ComponentKind.PROVISION for c in provision)
    assert all(c.point_of_no_return == "activate" for c in provision)
    assert all(c.start_milestone == "PROVISION_START" for c in provision)
    assert all(c.complete_milestone == "PROVISION_COMPLETE" for c in provision)
    comps = {c.id: c for c in tp_plan.components}
    assert comps[SHIP].target_system == "ShippingSystem"
    assert comps[SHIP].kind is ComponentKind.SHIP
    assert comps[SHIP].granularity == "WholeOrder"
    assert comps[SYNC].kind is ComponentKind.SYNC_CUSTOMER
    for cid in (SYNC, INIT_BILL, FULFIL_BILL):
        assert comps[cid].target_system == "BillingSystem"
        assert comps[cid].granularity == "WholeOrder"
    assert comps[INIT_BILL].kind is ComponentKind.BILLING
    assert comps[FULFIL_BILL].complete_milestone == "BILLING_COMPLETE"
    assert comps[PROV_BB].expected_duration_seconds == 14400


def test_triple_play_lines_per_component(tp_plan: OrderPlan, triple_play: CustomerOrder) -> None:
    lines = by_id(tp_plan)
    assert lines[PROV_FIXED] == ["1.1.1", "1.1.2"]
    assert lines[PROV_MOBILE] == ["1.2.1", "1.2.2"]
    assert lines[PROV_BB] == ["1.3.1", "1.3.2"]
    assert lines[SHIP] == ["1.3.3"]
    every = [ln.id for ln in triple_play.lines]
    # structural lines and the discount still go to the billing system
    assert lines[SYNC] == every
    assert lines[INIT_BILL] == every
    assert lines[FULFIL_BILL] == every


def test_triple_play_patterns(tp_plan: OrderPlan) -> None:
    p = tp_plan.line_patterns
    assert p["1"] == p["1.1"] == p["1.4"] == "Non.Service.Offer"
    assert p["1.1.1"] == p["1.1.2"] == "Service.Fixed"
    assert p["1.2.1"] == p["1.2.2"] == "Service.Mobile"
    assert p["1.3.1"] == p["1.3.2"] == "Service.Broadband"
    assert p["1.3.3"] == "Device.Shippable"


def test_triple_play_dependencies(tp_plan: OrderPlan) -> None:
    deps = {c.id: c.depends_on for c in tp_plan.components}
    assert deps[SYNC] == []
    assert deps[PROV_BB] == deps[PROV_FIXED] == deps[PROV_MOBILE] == deps[SHIP] == []
    assert deps[INIT_BILL] == [SYNC]
    assert sorted(deps[FULFIL_BILL]) == sorted([INIT_BILL, PROV_BB, PROV_FIXED, PROV_MOBILE, SHIP])


def test_json_and_xml_give_the_same_component_ids(tp_plan: OrderPlan, catalog: Catalog) -> None:
    from_json = decompose(read_order_file(SAMPLES / "triple_play.json"), catalog)
    assert [c.id for c in from_json.components] == [c.id for c in tp_plan.components]
    assert [c.depends_on for c in from_json.components] == [
        c.depends_on for c in tp_plan.components
    ]


def test_component_ids_are_stable(catalog: Catalog) -> None:
    data = (SAMPLES / "triple_play.xml").read_bytes()
    first = decompose(parse_order(data), catalog)
    second = decompose(parse_order(data), catalog)
    assert first == second
    revised = parse_order(
        data.replace(b"<corecom:Number>1</corecom:Number>", b"<corecom:Number>2</corecom:Number>")
    )
    assert revised.revision == 2
    third = decompose(revised, catalog)
    assert [c.id for c in third.components] == [c.id for c in first.components]
    assert component_id("Provision", "X", "bundle-1.3") == component_id(
        "Provision", "X", "bundle-1.3"
    )


def test_component_ids_are_safe_for_workflow_ids(catalog: Catalog) -> None:
    plan = decompose(
        order(
            line("Site A/1", "SERVICE BUNDLE"),
            line("p#1 ü", product_class="Broadband Service Plan Class", parent="Site A/1"),
        ),
        catalog,
    )
    prov = [c for c in plan.components if c.function == "Provision"]
    assert [c.id for c in prov] == ["Provision.BroadbandProvisioningSystem.bundle-Site_0020A_002F1"]
    assert all(SAFE_ID.match(c.id) for c in plan.components)
    assert all(SAFE_ID.match(d) for c in plan.components for d in c.depends_on)
    assert SAFE_ID.match(component_id("Provision", "Sys tem", "bundle-a/b?c*d"))


def test_component_ids_are_unique(catalog: Catalog) -> None:
    plan = decompose(
        order(
            line("B/1", "SERVICE BUNDLE"),
            line("p1", product_class="Broadband Service Plan Class", parent="B/1"),
            line("B_1", "SERVICE BUNDLE"),
            line("p2", product_class="Broadband Service Plan Class", parent="B_1"),
        ),
        catalog,
    )
    ids = [c.id for c in plan.components]
    assert len(ids) == len(set(ids)), ids


# --- granularity ----------------------------------------------------------------------------


def test_provision_groups_by_nearest_bundle(catalog: Catalog) -> None:
    plan = decompose(
        order(
            line("1", "OFFER"),
            line("2", "BUNDLE", parent="1", root="1"),
            line("2.1", "SERVICE BUNDLE", parent="2", root="1"),
            line("2.1.1", product_class="Broadband Service Plan Class", parent="2.1", root="1"),
            line("2.2", product_class="Broadband Service Feature Class", parent="2", root="1"),
            line("3", product_class="Broadband Service Plan Class", parent="1", root="1"),
            line("4", product_class="Broadband Service Plan Class"),
        ),
        catalog,
    )
    prov = {c.id: c.lines for c in plan.components if c.function == "Provision"}
    assert prov == {
        "Provision.BroadbandProvisioningSystem.bundle-2": ["2.2"],
        "Provision.BroadbandProvisioningSystem.bundle-2.1": ["2.1.1"],
        # no bundle above: grouped by the root line, or by the line itself
        "Provision.BroadbandProvisioningSystem.bundle-1": ["3"],
        "Provision.BroadbandProvisioningSystem.bundle-4": ["4"],
    }


def test_ship_is_one_component_for_the_whole_order(catalog: Catalog) -> None:
    plan = decompose(
        order(
            line("1", "SERVICE BUNDLE"),
            line("1.1", product_class="CPE Device Class", parent="1"),
            line("2", "SERVICE BUNDLE"),
            line("2.1", product_class="Mobile Device Class", parent="2"),
        ),
        catalog,
    )
    assert by_id(plan)[SHIP] == ["1.1", "2.1"]
    assert not [c for c in plan.components if c.function == "Provision"]
    assert sorted(plan.component(FULFIL_BILL).depends_on) == [INIT_BILL, SHIP]


def test_broadband_only(catalog: Catalog) -> None:
    plan = decompose(read_order_file(SAMPLES / "broadband_only.xml"), catalog)
    assert [c.id for c in plan.components] == [
        SYNC,
        "Provision.BroadbandProvisioningSystem.bundle-1.1",
        SHIP,
        INIT_BILL,
        FULFIL_BILL,
    ]
    assert by_id(plan)[SHIP] == ["1.1.3"]


# --- no-change lines --------------------------------------------------------------------------


def test_no_change_lines_get_no_component(triple_play: CustomerOrder, catalog: Catalog) -> None:
    changed = triple_play.model_copy(deep=True)
    for ln in changed.lines:
        if ln.id.startswith("1.2"):
            ln.action = ServiceActionCode.NO_CHANGE
    plan = decompose(changed, catalog)
    ids = [c.id for c in plan.components]
    assert PROV_MOBILE not in ids
    assert PROV_FIXED in ids and PROV_BB in ids
    in_any = {ln for c in plan.components for ln in c.lines}
    assert not {"1.2", "1.2.1", "1.2.2"} & in_any
    # the lines are still validated and keep their pattern for status reporting
    assert plan.line_patterns["1.2.1"] == "Service.Mobile"


def test_all_lines_unchanged_gives_empty_plan(catalog: Catalog) -> None:
    plan = decompose(
        order(
            line("1", "OFFER", action="-"),
            line("1.1", product_class="Fixed Service Plan Class", parent="1", action="-"),
        ),
        catalog,
    )
    assert plan.components == []


# --- validation -------------------------------------------------------------------------------


def test_unknown_product_class_names_it(catalog: Catalog) -> None:
    bad = order(
        line("1", "OFFER"), line("1.1", product_class="Satellite Service Plan Class", parent="1")
    )
    with pytest.raises(InputError) as info:
        decompose(bad, catalog)
    assert "'Satellite Service Plan Class'" in str(info.value)
    assert "line 1.1" in str(info.value)


def test_unknown_class_on_unchanged_line_is_still_an_error(catalog: Catalog) -> None:
    with pytest.raises(InputError, match="Holo Class"):
        decompose(order(line("1", product_class="Holo Class", action="-")), catalog)


def test_product_line_without_class_is_an_error(catalog: Catalog) -> None:
    with pytest.raises(InputError) as info:
        decompose(order(line("1", "OFFER"), line("7", "PRODUCT", parent="1")), catalog)
    assert "line 7" in str(info.value)
    assert "no product class" in str(info.value)


def test_structural_lines_without_class_are_fine(catalog: Catalog) -> None:
    for code in ("OFFER", "BUNDLE", "SERVICE BUNDLE"):
        assert line_pattern(line("1", code), catalog) == "Non.Service.Offer"


def test_duplicate_line_ids(catalog: Catalog) -> None:
    with pytest.raises(InputError) as info:
        decompose(order(line("1", "OFFER"), line("1", "OFFER")), catalog)
    assert "line 1: duplicate line ID" in str(info.value)


def test_dangling_parent_reference(catalog: Catalog) -> None:
    with pytest.raises(InputError) as info:
        validate_order(order(line("1", "OFFER"), line("2", "BUNDLE", parent="9")), catalog)
    assert "line 2" in str(info.value)
    assert "parent line 9 is not in the order" in str(info.value)


def test_dangling_root_reference(catalog: Catalog) -> None:
    with pytest.raises(InputError, match="parent line R is not in the order"):
        decompose(order(line("1", "OFFER", root="R")), catalog)


def test_dangling_parent_from_xml(catalog: Catalog) -> None:
    data = (SAMPLES / "triple_play.xml").read_bytes()
    broken = parse_order(
        data.replace(
            b"<corecom:BusinessComponentID>1-8F2K-130</corecom:BusinessComponentID>\n"
            b"        </so:ParentSalesOrderLineIdentification>",
            b"<corecom:BusinessComponentID>1-GONE</corecom:BusinessComponentID>\n"
            b"        </so:ParentSalesOrderLineIdentification>",
            1,
        )
    )
    with pytest.raises(InputError, match="parent line 1-GONE is not in the order"):
        decompose(broken, catalog)


def test_line_naming_itself_as_its_root(catalog: Catalog) -> None:
    bad = order(line("1", "OFFER"), line("2", "BUNDLE", parent="1", root="2"))
    with pytest.raises(InputError, match=r"^line 2: names itself as its root line$"):
        validate_order(bad, catalog)


@pytest.mark.parametrize(
    ("number", "line_id"), [("D\n1", "1"), ("D-1", "1\n2"), ("D-1", "x" * 200)]
)
def test_business_keys_are_checked_first(catalog: Catalog, number: str, line_id: str) -> None:
    """Before any message can quote them: a key with a line break would split it in two."""
    bad = order(line(line_id, "OFFER", root=line_id), number=number)
    with pytest.raises(InputError) as info:
        validate_order(bad, catalog)
    assert len(str(info.value).splitlines()) == 1
    assert "names itself" not in str(info.value)


@pytest.mark.parametrize(
    "lines",
    [
        [("a", "b"), ("b", "a")],
        [("a", "a")],
        [("x", None), ("a", "c"), ("b", "a"), ("c", "b")],
    ],
)
def test_parent_cycle(catalog: Catalog, lines: list[tuple[str, str | None]]) -> None:
    bad = order(*(line(i, "BUNDLE", parent=p) for i, p in lines))
    with pytest.raises(InputError, match="parent references form a cycle"):
        decompose(bad, catalog)


# --- the 200-line order -----------------------------------------------------------------------


def test_business_200_decomposes(catalog: Catalog) -> None:
    big = read_order_file(SAMPLES / "business_200.xml")
    plan = decompose(big, catalog)
    covered = {ln for c in plan.components for ln in c.lines}
    wanted = {ln.id for ln in big.lines if ln.action is not ServiceActionCode.NO_CHANGE}
    assert len(wanted) == 200
    assert wanted <= covered
    prov = [c for c in plan.components if c.function == "Provision"]
    assert len(prov) == 36  # 18 sites x (broadband, fixed)
    assert {c.target_system for c in prov} == {
        "BroadbandProvisioningSystem",
        "FixedProvisioningSystem",
    }
    parents = {ln.id: ln.parent_id for ln in big.lines}
    for c in prov:
        assert len({parents[ln] for ln in c.lines}) == 1, c.id  # one site per component
        assert c.id == component_id("Provision", c.target_system, f"bundle-{parents[c.lines[0]]}")
    ships = [c for c in plan.components if c.function == "Ship"]
    assert len(ships) == 1 and len(ships[0].lines) == 36
    assert len(plan.components) == 1 + 36 + 1 + 2
    assert len({c.id for c in plan.components}) == len(plan.components)
    fulfil = plan.component(FULFIL_BILL)
    assert set(fulfil.depends_on) == {INIT_BILL, SHIP, *(c.id for c in prov)}


def test_components_of_a_function_run_in_natural_bundle_order(catalog: Catalog) -> None:
    """bundle-3 before bundle-10: the plan's order is the order status and plan show."""
    plan = decompose(read_order_file(SAMPLES / "business_200.xml"), catalog)
    provisioning = [c.id for c in plan.components if c.id.startswith("Provision.Broadband")]
    assert len(provisioning) > 10
    assert provisioning == sorted(provisioning, key=natural_key)
    assert provisioning != sorted(provisioning)
