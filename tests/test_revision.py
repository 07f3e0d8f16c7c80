"""Revision planning: line delta, compensation per component, hard point of no return.

The unit tests work on ``samples/triple_play.xml``; the property tests model the fulfillment
systems as an inventory of (component, line, content) and check that running the planned
compensation over whatever work was done under revision N leaves exactly what a fresh
fulfillment of revision N+1 would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from o2a.catalog import load_catalog
from o2a.decomposition import decompose
from o2a.models import (
    Address,
    ComponentKind,
    ComponentState,
    CustomerOrder,
    ItemReference,
    OrderPlan,
    SalesOrderLine,
    ServiceActionCode,
    Specification,
)
from o2a.revision import (
    AMENDABLE,
    Compensation,
    LineChange,
    RevisionPlan,
    _line_key,
    cancellation_plan,
    hard_ponr_violations,
    line_delta,
    plan_revision,
)
from tests.support import (
    FULFIL_BILL,
    INIT_BILL,
    PROV_BB,
    PROV_FIXED,
    PROV_MOBILE,
    SHIP,
    SYNC,
)

CATALOG = load_catalog()

BILLING = (SYNC, INIT_BILL, FULFIL_BILL)
BROADBAND_BUNDLE = ["1.3", "1.3.1", "1.3.2", "1.3.3"]


# --- helpers ----------------------------------------------------------------------------------


def revise(
    order: CustomerOrder, change: Callable[[CustomerOrder], None] | None = None
) -> CustomerOrder:
    """A deep copy with the next revision number, changed in place by ``change``."""
    new = order.model_copy(deep=True)
    new.revision = order.revision + 1
    if change is not None:
        change(new)
    return new


def find(order: CustomerOrder, line_id: str) -> SalesOrderLine:
    for ln in order.lines:
        if ln.id == line_id:
            return ln
    raise KeyError(line_id)


def drop(order: CustomerOrder, line_ids: Iterable[str]) -> None:
    gone = set(line_ids)
    order.lines = [ln for ln in order.lines if ln.id not in gone]


def set_spec(order: CustomerOrder, line_id: str, name: str, value: str) -> None:
    item = find(order, line_id).item
    for s in item.specifications:
        if s.name == name:
            s.value = value
            return
    item.specifications.append(Specification(name=name, value=value))


def add_mobile_feature(order: CustomerOrder) -> None:
    order.lines.append(
        SalesOrderLine(
            id="1.2.3",
            parent_id="1.2",
            root_id="1",
            item=ItemReference(
                name="Voicemail",
                type_code="PRODUCT",
                product_class="Mobile Service Feature Class",
                specifications=[Specification(name="Greeting", value="standard")],
            ),
        )
    )


def all_in(plan: OrderPlan, state: ComponentState) -> dict[str, ComponentState]:
    return {c.id: state for c in plan.components}


def plan(
    old: CustomerOrder,
    old_plan: OrderPlan,
    new: CustomerOrder,
    progress: dict[str, ComponentState],
) -> RevisionPlan:
    return plan_revision(old, old_plan, new, decompose(new, CATALOG), progress)


def hard_provisioning(p: OrderPlan) -> OrderPlan:
    hard = p.model_copy(deep=True)
    for c in hard.components:
        if c.kind is ComponentKind.PROVISION:
            c.point_of_no_return_kind = "hard"
    return hard


# --- line_delta -------------------------------------------------------------------------------


def test_unchanged_revision_is_all_unchanged(triple_play: CustomerOrder) -> None:
    delta = line_delta(triple_play, revise(triple_play))
    assert list(delta) == [ln.id for ln in triple_play.lines]
    assert set(delta.values()) == {LineChange.UNCHANGED}


def test_removed_line(triple_play: CustomerOrder) -> None:
    delta = line_delta(triple_play, revise(triple_play, lambda o: drop(o, ["1.4"])))
    assert delta["1.4"] is LineChange.REMOVED
    assert {k for k, v in delta.items() if v is not LineChange.UNCHANGED} == {"1.4"}


def test_added_line(triple_play: CustomerOrder) -> None:
    delta = line_delta(triple_play, revise(triple_play, add_mobile_feature))
    assert delta["1.2.3"] is LineChange.ADDED
    assert {k for k, v in delta.items() if v is not LineChange.UNCHANGED} == {"1.2.3"}


def _spec_value(o: CustomerOrder) -> None:
    set_spec(o, "1.1.1", find(o, "1.1.1").item.specifications[0].name, "something else")


def _new_spec(o: CustomerOrder) -> None:
    set_spec(o, "1.1.1", "CallerId", "withheld")


def _no_specs(o: CustomerOrder) -> None:
    find(o, "1.1.1").item.specifications = []


def _address(o: CustomerOrder) -> None:
    address = find(o, "1.1.1").service_address
    assert address is not None
    address.line_one = "Herengracht 1"


def _address_gone(o: CustomerOrder) -> None:
    find(o, "1.1.1").service_address = None


def _action(o: CustomerOrder) -> None:
    find(o, "1.1.1").action = ServiceActionCode.UPDATE


def _no_change(o: CustomerOrder) -> None:
    find(o, "1.1.1").action = ServiceActionCode.NO_CHANGE


def _parent(o: CustomerOrder) -> None:
    find(o, "1.1.1").parent_id = "1.2"


def _product_class(o: CustomerOrder) -> None:
    find(o, "1.1.1").item.product_class = "Fixed Service Feature Class"


def _name(o: CustomerOrder) -> None:
    find(o, "1.1.1").item.name = "Home Phone Basic"


@pytest.mark.parametrize(
    "change",
    [
        _spec_value,
        _new_spec,
        _no_specs,
        _address,
        _address_gone,
        _action,
        _no_change,
        _parent,
        _product_class,
        _name,
    ],
)
def test_changed_line(triple_play: CustomerOrder, change: Callable[[CustomerOrder], None]) -> None:
    delta = line_delta(triple_play, revise(triple_play, change))
    assert delta["1.1.1"] is LineChange.CHANGED
    assert {k for k, v in delta.items() if v is not LineChange.UNCHANGED} == {"1.1.1"}


def _header(o: CustomerOrder) -> None:
    o.revision = 7
    o.revision_id = "1-8F2K-REV7"
    o.priority = 9
    o.status_code = "IN PROGRESS"
    o.type_code = "SALES ORDER"
    assert o.order_date is not None
    o.order_date = o.order_date.replace(year=2027)


def _spec_order(o: CustomerOrder) -> None:
    item = find(o, "1.2.1").item
    item.specifications = list(reversed(item.specifications))
    assert len(item.specifications) > 1


@pytest.mark.parametrize("change", [_header, _spec_order])
def test_header_or_order_of_specifications_is_no_change(
    triple_play: CustomerOrder, change: Callable[[CustomerOrder], None]
) -> None:
    delta = line_delta(triple_play, revise(triple_play, change))
    assert set(delta.values()) == {LineChange.UNCHANGED}
    assert len(delta) == len(triple_play.lines)


# --- plan_revision on the triple play ---------------------------------------------------------


@pytest.mark.parametrize("state", list(ComponentState))
def test_unchanged_revision_plans_nothing(
    triple_play: CustomerOrder, tp_plan: OrderPlan, state: ComponentState
) -> None:
    rp = plan(triple_play, tp_plan, revise(triple_play, _header), all_in(tp_plan, state))
    assert rp.is_empty()
    assert [c.component_id for c in rp.compensations] == [c.id for c in tp_plan.components]
    assert rp.revision == 7


def test_unchanged_revision_with_no_progress_at_all(
    triple_play: CustomerOrder, tp_plan: OrderPlan
) -> None:
    assert plan(triple_play, tp_plan, revise(triple_play), {}).is_empty()


def test_drop_broadband_bundle_after_completion(
    triple_play: CustomerOrder, tp_plan: OrderPlan
) -> None:
    new = revise(triple_play, lambda o: drop(o, BROADBAND_BUNDLE))
    rp = plan(triple_play, tp_plan, new, all_in(tp_plan, ComponentState.COMPLETED))

    assert {k for k, v in rp.delta.items() if v is LineChange.REMOVED} == set(BROADBAND_BUNDLE)
    assert rp.revision == 2

    bb = rp.of(PROV_BB)
    assert bb.kind is Compensation.UNDO
    assert bb.undo_lines == ["1.3.1", "1.3.2"]
    assert bb.do_lines == [] and bb.keep_lines == []

    ship = rp.of(SHIP)
    assert ship.kind is Compensation.UNDO
    assert ship.undo_lines == ["1.3.3"]
    assert ship.do_lines == []

    rest = [ln.id for ln in new.lines]
    for cid in BILLING:
        billing = rp.of(cid)
        assert billing.kind is Compensation.AMEND, cid
        assert billing.undo_lines == BROADBAND_BUNDLE
        assert billing.do_lines == []
        assert billing.keep_lines == rest

    for cid in (PROV_FIXED, PROV_MOBILE):
        assert rp.of(cid).kind is Compensation.NONE
        assert rp.of(cid).undo_lines == rp.of(cid).do_lines == []
    assert not rp.is_empty()


def test_drop_broadband_bundle_while_in_progress(
    triple_play: CustomerOrder, tp_plan: OrderPlan
) -> None:
    """Work half done counts as started: it is undone, not forgotten."""
    new = revise(triple_play, lambda o: drop(o, BROADBAND_BUNDLE))
    progress = all_in(tp_plan, ComponentState.COMPLETED)
    progress[PROV_BB] = ComponentState.IN_PROGRESS
    progress[SHIP] = ComponentState.FAILED
    rp = plan(triple_play, tp_plan, new, progress)
    assert rp.of(PROV_BB).kind is Compensation.UNDO
    assert rp.of(PROV_BB).undo_lines == ["1.3.1", "1.3.2"]
    assert rp.of(SHIP).kind is Compensation.UNDO
    assert rp.of(SHIP).undo_lines == ["1.3.3"]


def test_change_fixed_voice_plan_redoes_only_that_line(
    triple_play: CustomerOrder, tp_plan: OrderPlan
) -> None:
    new = revise(triple_play, _spec_value)
    rp = plan(triple_play, tp_plan, new, all_in(tp_plan, ComponentState.COMPLETED))

    fixed = rp.of(PROV_FIXED)
    assert fixed.kind is Compensation.REDO
    assert fixed.undo_lines == fixed.do_lines == ["1.1.1"]
    assert fixed.keep_lines == ["1.1.2"]

    for cid in BILLING:
        billing = rp.of(cid)
        assert billing.kind is Compensation.AMEND
        assert billing.undo_lines == billing.do_lines == ["1.1.1"]
        assert billing.keep_lines == [ln.id for ln in new.lines if ln.id != "1.1.1"]
    for cid in (PROV_MOBILE, PROV_BB, SHIP):
        assert rp.of(cid).kind is Compensation.NONE


@pytest.mark.parametrize(
    "state", [ComponentState.IN_PROGRESS, ComponentState.FAILED, ComponentState.COMPLETED]
)
def test_billing_amends_in_place_only_once_completed(
    triple_play: CustomerOrder, tp_plan: OrderPlan, state: ComponentState
) -> None:
    """AMEND sends only what changed, so it needs the component's work to stand complete:
    a billing or sync component that failed or still runs is redone for all its lines."""

    def change(o: CustomerOrder) -> None:
        drop(o, BROADBAND_BUNDLE)
        _spec_value(o)
        add_mobile_feature(o)

    new = revise(triple_play, change)
    progress = all_in(tp_plan, ComponentState.COMPLETED)
    for cid in BILLING:
        progress[cid] = state
    rp = plan(triple_play, tp_plan, new, progress)
    new_lines = [ln.id for ln in new.lines]
    for cid in BILLING:
        billing = rp.of(cid)
        assert billing.undo_lines == ["1.1.1", *BROADBAND_BUNDLE], cid
        if state is ComponentState.COMPLETED:
            assert billing.kind is Compensation.AMEND, cid
            assert billing.do_lines == ["1.1.1", "1.2.3"]
            assert billing.keep_lines == [ln for ln in new_lines if ln not in ("1.1.1", "1.2.3")]
        else:
            assert billing.kind is Compensation.REDO, cid
            assert billing.do_lines == new_lines
            assert billing.keep_lines == []


def test_move_line_to_another_bundle(triple_play: CustomerOrder, tp_plan: OrderPlan) -> None:
    """A new parent moves the line's work from one component to another."""
    new = revise(triple_play, lambda o: setattr(find(o, "1.3.2"), "parent_id", "1.2"))
    new_plan = decompose(new, CATALOG)
    assert new_plan.component("Provision.BroadbandProvisioningSystem.bundle-1.2").lines == ["1.3.2"]
    rp = plan(triple_play, tp_plan, new, all_in(tp_plan, ComponentState.COMPLETED))
    assert rp.of(PROV_BB).kind is Compensation.REDO
    assert rp.of(PROV_BB).undo_lines == ["1.3.2"]
    assert rp.of(PROV_BB).do_lines == []
    assert rp.of(PROV_BB).keep_lines == ["1.3.1"]
    moved = rp.of("Provision.BroadbandProvisioningSystem.bundle-1.2")
    assert moved.kind is Compensation.DO
    assert moved.do_lines == ["1.3.2"]
    assert rp.of(PROV_MOBILE).kind is Compensation.NONE


@pytest.mark.parametrize(
    ("state", "kind", "do_lines"),
    [
        (ComponentState.COMPLETED, Compensation.REDO, ["1.2.3"]),
        # partly done: the lines' own progress knows what stands, so every line is (re)done
        (ComponentState.IN_PROGRESS, Compensation.REDO, ["1.2.1", "1.2.2", "1.2.3"]),
        (ComponentState.FAILED, Compensation.REDO, ["1.2.1", "1.2.2", "1.2.3"]),
        (ComponentState.PENDING, Compensation.DO, ["1.2.1", "1.2.2", "1.2.3"]),
    ],
)
def test_add_mobile_feature(
    triple_play: CustomerOrder,
    tp_plan: OrderPlan,
    state: ComponentState,
    kind: Compensation,
    do_lines: list[str],
) -> None:
    new = revise(triple_play, add_mobile_feature)
    progress = all_in(tp_plan, ComponentState.COMPLETED)
    progress[PROV_MOBILE] = state
    rp = plan(triple_play, tp_plan, new, progress)

    mobile = rp.of(PROV_MOBILE)
    assert mobile.kind is kind
    assert mobile.do_lines == do_lines
    assert mobile.undo_lines == []
    assert mobile.keep_lines == [ln for ln in ["1.2.1", "1.2.2"] if ln not in do_lines]
    for cid in BILLING:
        assert rp.of(cid).kind is Compensation.AMEND
        assert rp.of(cid).do_lines == ["1.2.3"]
        assert rp.of(cid).undo_lines == []
    for cid in (PROV_FIXED, PROV_BB, SHIP):
        assert rp.of(cid).kind is Compensation.NONE


def test_failed_component_keeps_no_work_it_never_did(
    triple_play: CustomerOrder, tp_plan: OrderPlan
) -> None:
    """Fixed provisioning failed at its first step (nothing done), then a revision adds a
    feature: the rerun must provision every line, not only the new one.

    Regression: keep_lines used to list 1.1.1 and 1.1.2, and the workflow hands keep_lines
    to the rerun as done_lines, so they were skipped for good."""
    progress = all_in(tp_plan, ComponentState.COMPLETED)
    progress[PROV_FIXED] = ComponentState.FAILED

    def add_fixed_feature(o: CustomerOrder) -> None:
        o.lines.append(find(o, "1.1.2").model_copy(deep=True, update={"id": "1.1.3"}))

    rp = plan(triple_play, tp_plan, revise(triple_play, add_fixed_feature), progress)
    fixed = rp.of(PROV_FIXED)
    assert fixed.kind is Compensation.REDO
    assert fixed.keep_lines == []
    assert fixed.do_lines == ["1.1.1", "1.1.2", "1.1.3"]
    assert fixed.undo_lines == []


def test_pending_components_take_the_new_plan(
    triple_play: CustomerOrder, tp_plan: OrderPlan
) -> None:
    def drop_broadband_and_change_voice(o: CustomerOrder) -> None:
        drop(o, BROADBAND_BUNDLE)
        _spec_value(o)

    new = revise(triple_play, drop_broadband_and_change_voice)
    rp = plan(triple_play, tp_plan, new, all_in(tp_plan, ComponentState.PENDING))
    new_plan = decompose(new, CATALOG)

    # removed and never started: nothing to undo
    for cid in (PROV_BB, SHIP):
        assert rp.of(cid).kind is Compensation.NONE
        assert rp.of(cid).undo_lines == rp.of(cid).do_lines == []
    # changed and never started: run with the new content, whole
    for cid in (PROV_FIXED, *BILLING):
        assert rp.of(cid).kind is Compensation.DO, cid
        assert rp.of(cid).do_lines == new_plan.component(cid).lines
        assert rp.of(cid).undo_lines == []
    assert rp.of(PROV_FIXED).do_lines == ["1.1.1", "1.1.2"]
    assert rp.of(PROV_MOBILE).kind is Compensation.NONE


def test_new_component_is_done(triple_play: CustomerOrder, tp_plan: OrderPlan) -> None:
    def add_iptv(o: CustomerOrder) -> None:
        o.lines.append(
            SalesOrderLine(
                id="1.5", parent_id="1", root_id="1", item=ItemReference(type_code="SERVICE BUNDLE")
            )
        )
        o.lines.append(
            SalesOrderLine(
                id="1.5.1",
                parent_id="1.5",
                root_id="1",
                item=ItemReference(type_code="PRODUCT", product_class="IPTV Service Plan Class"),
            )
        )

    rp = plan(
        triple_play,
        tp_plan,
        revise(triple_play, add_iptv),
        all_in(tp_plan, ComponentState.COMPLETED),
    )
    iptv = rp.of("Provision.IPTVProvisioningSystem.bundle-1.5")
    assert iptv.kind is Compensation.DO
    assert iptv.do_lines == ["1.5.1"]
    assert [c.component_id for c in rp.compensations][-1] == iptv.component_id
    with pytest.raises(KeyError):
        rp.of("Provision.Nowhere.bundle-9")


# --- hard point of no return ------------------------------------------------------------------


def test_hard_ponr_passed_component_changed_is_reported(
    triple_play: CustomerOrder, tp_plan: OrderPlan
) -> None:
    hard = hard_provisioning(tp_plan)
    rp = plan(
        triple_play, hard, revise(triple_play, _spec_value), all_in(hard, ComponentState.COMPLETED)
    )
    assert hard_ponr_violations(rp, hard, {PROV_FIXED}) == [PROV_FIXED]
    # billing passed too, but billing's point of no return is soft
    assert hard_ponr_violations(rp, hard, {PROV_FIXED, *BILLING}) == [PROV_FIXED]


def test_hard_ponr_other_component_changed_is_not_reported(
    triple_play: CustomerOrder, tp_plan: OrderPlan
) -> None:
    hard = hard_provisioning(tp_plan)
    progress = all_in(hard, ComponentState.COMPLETED)
    for change in (add_mobile_feature, lambda o: set_spec(o, "1.2.1", "SIMType", "physical")):
        rp = plan(triple_play, hard, revise(triple_play, change), progress)
        assert rp.of(PROV_MOBILE).kind is Compensation.REDO
        assert hard_ponr_violations(rp, hard, {PROV_FIXED}) == []
        # once mobile is past its point of no return too, the same revision is refused
        assert hard_ponr_violations(rp, hard, {PROV_FIXED, PROV_MOBILE}) == [PROV_MOBILE]


def test_hard_ponr_removed_component_is_reported(
    triple_play: CustomerOrder, tp_plan: OrderPlan
) -> None:
    hard = hard_provisioning(tp_plan)
    new = revise(triple_play, lambda o: drop(o, BROADBAND_BUNDLE))
    rp = plan(triple_play, hard, new, all_in(hard, ComponentState.COMPLETED))
    assert hard_ponr_violations(rp, hard, {PROV_BB, PROV_FIXED, SHIP}) == [PROV_BB]


def test_soft_ponr_is_never_a_violation(triple_play: CustomerOrder, tp_plan: OrderPlan) -> None:
    assert all(c.point_of_no_return_kind == "soft" for c in tp_plan.components)
    passed = {c.id for c in tp_plan.components}
    progress = all_in(tp_plan, ComponentState.COMPLETED)
    for change in (_spec_value, add_mobile_feature, lambda o: drop(o, BROADBAND_BUNDLE)):
        rp = plan(triple_play, tp_plan, revise(triple_play, change), progress)
        assert not rp.is_empty()
        assert hard_ponr_violations(rp, tp_plan, passed) == []


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_undoes_started_components(triple_play: CustomerOrder, tp_plan: OrderPlan) -> None:
    progress = all_in(tp_plan, ComponentState.COMPLETED)
    progress[PROV_MOBILE] = ComponentState.PENDING
    progress[PROV_BB] = ComponentState.IN_PROGRESS
    progress[SHIP] = ComponentState.FAILED
    del progress[FULFIL_BILL]  # never heard of: not started
    rp = cancellation_plan(triple_play, tp_plan, progress)
    assert set(rp.delta.values()) == {LineChange.REMOVED}
    assert [c.component_id for c in rp.compensations] == [c.id for c in tp_plan.components]
    for c in tp_plan.components:
        comp = rp.of(c.id)
        if c.id in (PROV_MOBILE, FULFIL_BILL):
            assert comp.kind is Compensation.NONE
            assert comp.undo_lines == []
        else:
            assert comp.kind is Compensation.UNDO, c.id
            assert comp.undo_lines == c.lines
        assert comp.do_lines == comp.keep_lines == []
    hard = hard_provisioning(tp_plan)
    assert hard_ponr_violations(rp, hard, {PROV_FIXED, PROV_MOBILE}) == [PROV_FIXED]


def test_cancel_before_anything_started_is_empty(
    triple_play: CustomerOrder, tp_plan: OrderPlan
) -> None:
    assert cancellation_plan(triple_play, tp_plan, {}).is_empty()


# --- property tests ---------------------------------------------------------------------------

# Classes that can sit in a service bundle; discounts also hang off the offer directly.
BUNDLE_CLASSES = sorted(CATALOG.product_classes)
SPEC_NAMES = ("Speed", "Zone", "Model")
SPEC_VALUES = ("a", "b", "c")
ADDRESSES = (
    None,
    Address(line_one="Keizersgracht 221", city="Amsterdam", postal_code="1016 DV", country="NL"),
    Address(line_one="Coolsingel 40", city="Rotterdam", postal_code="3011 AD", country="NL"),
)
# "-" (no change) lines are part of the order but of no component: going to or from it
# moves a line in or out of every component.
ACTIONS = ("ADD", "ADD", "ADD", "UPDATE", "-")
LINE_OPS = ("keep", "keep", "keep", "remove", "spec", "address", "class", "action", "move")
STATES = (
    ComponentState.PENDING,
    ComponentState.IN_PROGRESS,
    ComponentState.COMPLETED,
    ComponentState.FAILED,
)

specs_st = st.dictionaries(st.sampled_from(SPEC_NAMES), st.sampled_from(SPEC_VALUES), max_size=3)
address_st = st.sampled_from(ADDRESSES)


def make_line(
    line_id: str,
    parent: str | None,
    type_code: str,
    product_class: str | None = None,
    specs: dict[str, str] | None = None,
    address: Address | None = None,
    action: str = "ADD",
) -> SalesOrderLine:
    return SalesOrderLine(
        id=line_id,
        parent_id=parent,
        root_id="1" if parent else None,
        action=ServiceActionCode(action),
        service_address=address.model_copy() if address else None,
        item=ItemReference(
            name=product_class or type_code,
            type_code=type_code,
            product_class=product_class,
            specifications=[Specification(name=k, value=v) for k, v in (specs or {}).items()],
        ),
    )


@st.composite
def product_st(
    draw: st.DrawFn, line_id: str, parent: str, classes: list[str] = BUNDLE_CLASSES
) -> SalesOrderLine:
    return make_line(
        line_id,
        parent,
        "PRODUCT",
        draw(st.sampled_from(classes)),
        draw(specs_st),
        draw(address_st),
        draw(st.sampled_from(ACTIONS)),
    )


@st.composite
def order_st(draw: st.DrawFn) -> CustomerOrder:
    lines = [make_line("1", None, "OFFER", address=draw(address_st))]
    for b in range(1, draw(st.integers(1, 3)) + 1):
        bundle = f"1.{b}"
        lines.append(make_line(bundle, "1", "SERVICE BUNDLE", address=draw(address_st)))
        for p in range(1, draw(st.integers(1, 4)) + 1):
            lines.append(draw(product_st(f"{bundle}.{p}", bundle)))
    for d in range(1, draw(st.integers(0, 2)) + 1):
        lines.append(draw(product_st(f"1.D{d}", "1", ["Discount Class"])))
    return CustomerOrder(order_number="P-1", revision=1, lines=lines)


@st.composite
def revision_st(draw: st.DrawFn, old: CustomerOrder) -> CustomerOrder:
    new = old.model_copy(deep=True)
    new.revision = old.revision + 1
    bundles = [ln.id for ln in new.lines if ln.item.type_code == "SERVICE BUNDLE"]
    gone = draw(st.sets(st.sampled_from(bundles), max_size=len(bundles)))
    new.lines = [ln for ln in new.lines if ln.id not in gone and ln.parent_id not in gone]
    bundles = [b for b in bundles if b not in gone]

    lines: list[SalesOrderLine] = []
    for ln in new.lines:
        if ln.item.type_code != "PRODUCT":
            if draw(st.booleans()):
                ln.service_address = draw(address_st)
            lines.append(ln)
            continue
        op = draw(st.sampled_from(LINE_OPS))
        if op == "remove":
            continue
        if op == "spec":
            ln.item.specifications = [
                Specification(name=k, value=v) for k, v in draw(specs_st).items()
            ]
        elif op == "address":
            ln.service_address = draw(address_st)
        elif op == "class":
            ln.item.product_class = draw(st.sampled_from(BUNDLE_CLASSES))
        elif op == "action":
            ln.action = ServiceActionCode(draw(st.sampled_from(ACTIONS)))
        elif op == "move" and bundles:
            ln.parent_id = draw(st.sampled_from(bundles))
        lines.append(ln)

    serial = 0
    if bundles:
        for _ in range(draw(st.integers(0, 3))):
            serial += 1
            bundle = draw(st.sampled_from(bundles))
            lines.append(draw(product_st(f"{bundle}.N{serial}", bundle)))
    for b in range(draw(st.integers(0, 1))):
        bundle = f"1.B{b}"
        lines.append(make_line(bundle, "1", "SERVICE BUNDLE", address=draw(address_st)))
        for p in range(1, draw(st.integers(1, 3)) + 1):
            lines.append(draw(product_st(f"{bundle}.{p}", bundle)))
    new.lines = lines
    return new


def _describe(order: CustomerOrder) -> list[str]:
    out = []
    for ln in order.lines:
        specs = ",".join(f"{s.name}={s.value}" for s in ln.item.specifications)
        city = ln.service_address.city if ln.service_address else "-"
        what = ln.item.product_class or ln.item.type_code
        out.append(f"{ln.id}<{ln.parent_id} {ln.action.value} {what} [{specs}] @{city}")
    return out


@dataclass
class Scenario:
    old: CustomerOrder
    new: CustomerOrder
    old_plan: OrderPlan
    new_plan: OrderPlan
    progress: dict[str, ComponentState]
    done: dict[str, set[str]]
    """Lines of each component whose work was done under revision N."""

    def __repr__(self) -> str:
        progress = {cid: f"{s.value} {sorted(self.done[cid])}" for cid, s in self.progress.items()}
        return (
            f"Scenario(old={_describe(self.old)!r},\n new={_describe(self.new)!r},\n"
            f" progress={progress!r})"
        )

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        """Hypothesis prints a failing scenario this way, in a line per order line."""
        printer.text(repr(self))  # type: ignore[attr-defined]


@st.composite
def progress_st(
    draw: st.DrawFn, old_plan: OrderPlan
) -> tuple[dict[str, ComponentState], dict[str, set[str]]]:
    progress: dict[str, ComponentState] = {}
    done: dict[str, set[str]] = {}
    for c in old_plan.components:
        state = draw(st.sampled_from(STATES))
        progress[c.id] = state
        if state is ComponentState.COMPLETED:
            done[c.id] = set(c.lines)
        elif state is ComponentState.PENDING:
            done[c.id] = set()
        else:  # in progress or failed: any part of the work may have been done
            done[c.id] = draw(st.sets(st.sampled_from(c.lines)))
    return progress, done


@st.composite
def scenario_st(draw: st.DrawFn, unchanged: bool = False) -> Scenario:
    old = draw(order_st())
    new = revise(old) if unchanged else draw(revision_st(old))
    old_plan = decompose(old, CATALOG)
    progress, done = draw(progress_st(old_plan))
    return Scenario(old, new, old_plan, decompose(new, CATALOG), progress, done)


Entry = tuple[str, str, tuple[object, ...]]


def content(order: CustomerOrder) -> dict[str, tuple[object, ...]]:
    return {ln.id: _line_key(ln) for ln in order.lines}


def fresh_inventory(order: CustomerOrder, plan: OrderPlan) -> set[Entry]:
    key = content(order)
    return {(c.id, ln, key[ln]) for c in plan.components for ln in c.lines}


def run_revision(s: Scenario, rp: RevisionPlan) -> set[Entry]:
    """The fulfillment systems after the work of N, the compensation, and the rest of N+1."""
    old_key, new_key = content(s.old), content(s.new)
    inventory = {(cid, ln, old_key[ln]) for cid, lines in s.done.items() for ln in lines}
    for comp in rp.compensations:
        undo = set(comp.undo_lines)
        inventory = {e for e in inventory if not (e[0] == comp.component_id and e[1] in undo)}
        inventory |= {(comp.component_id, ln, new_key[ln]) for ln in comp.do_lines}
    # A component that completed under N and survives is finished once compensated; every
    # other component of the new plan (new, pending, in progress, failed) runs in full.
    finished = {cid for cid, state in s.progress.items() if state is ComponentState.COMPLETED}
    for c in s.new_plan.components:
        if c.id not in finished:
            inventory |= {(c.id, ln, new_key[ln]) for ln in c.lines}
    return inventory


def revision_plan(s: Scenario) -> RevisionPlan:
    return plan_revision(s.old, s.old_plan, s.new, s.new_plan, s.progress)


PROPERTY = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenario_st())
def test_property_compensation_reaches_fresh_fulfillment(s: Scenario) -> None:
    """A: whatever was done under N, compensating and finishing gives N+1 as if fresh."""
    rp = revision_plan(s)
    final = run_revision(s, rp)
    expected = fresh_inventory(s.new, s.new_plan)
    stale = sorted((cid, ln) for cid, ln, _ in final - expected)
    missing = sorted((cid, ln) for cid, ln, _ in expected - final)
    assert not stale and not missing, f"left behind {stale}, never done {missing}"


@PROPERTY
@given(scenario_st(unchanged=True))
def test_property_unchanged_revision_plans_nothing(s: Scenario) -> None:
    """B: the same order again, with any progress, is no work at all."""
    rp = revision_plan(s)
    assert rp.is_empty()
    assert all(not c.do_lines and not c.undo_lines for c in rp.compensations)
    assert set(rp.delta.values()) <= {LineChange.UNCHANGED}


@PROPERTY
@given(scenario_st())
def test_property_untouched_lines_are_not_provisioned_twice(s: Scenario) -> None:
    """C: a completed line that stays where it was, as it was, is neither undone nor redone."""
    rp = revision_plan(s)
    new_lines = {c.id: set(c.lines) for c in s.new_plan.components}
    for c in s.old_plan.components:
        if s.progress[c.id] is not ComponentState.COMPLETED:
            continue
        comp = rp.of(c.id)
        for ln in c.lines:
            if rp.delta[ln] is LineChange.UNCHANGED and ln in new_lines.get(c.id, ()):
                assert ln not in comp.undo_lines, (c.id, ln)
                assert ln not in comp.do_lines, (c.id, ln)
                assert ln in comp.keep_lines or comp.kind is Compensation.NONE, (c.id, ln)


@PROPERTY
@given(scenario_st())
def test_property_plan_is_well_formed(s: Scenario) -> None:
    """Each component of either plan gets one compensation, whose lines are its own."""
    rp = revision_plan(s)
    old = {c.id: c for c in s.old_plan.components}
    new = {c.id: c for c in s.new_plan.components}
    assert sorted(c.component_id for c in rp.compensations) == sorted(old.keys() | new.keys())
    assert set(rp.delta) == {ln.id for ln in s.old.lines} | {ln.id for ln in s.new.lines}
    for comp in rp.compensations:
        cid = comp.component_id
        assert set(comp.undo_lines) <= set(old[cid].lines if cid in old else ())
        assert set(comp.do_lines) | set(comp.keep_lines) <= set(
            new[cid].lines if cid in new else ()
        )
        assert not set(comp.do_lines) & set(comp.keep_lines)
        started = s.progress.get(cid, ComponentState.PENDING) is not ComponentState.PENDING
        if comp.kind is Compensation.NONE:
            assert not comp.do_lines and not comp.undo_lines
        elif comp.kind is Compensation.DO:
            assert not started and not comp.undo_lines
            assert comp.do_lines == new[cid].lines
        elif comp.kind is Compensation.UNDO:
            assert started and cid not in new
            assert comp.undo_lines == old[cid].lines
        else:
            assert started and cid in new
            # Only a completed billing or sync component takes the change in place; one
            # that failed or still runs has only partial work, so all its lines are redone.
            completed = s.progress[cid] is ComponentState.COMPLETED
            assert (comp.kind is Compensation.AMEND) == (completed and new[cid].kind in AMENDABLE)
            if comp.kind is Compensation.REDO and not completed:
                assert comp.do_lines == new[cid].lines
            assert set(comp.do_lines) | set(comp.keep_lines) == set(new[cid].lines)
        if not started:  # nothing done yet: nothing to undo
            assert not comp.undo_lines


@PROPERTY
@given(scenario_st(unchanged=True))
def test_property_cancel_leaves_nothing_behind(s: Scenario) -> None:
    """Cancelling undoes whatever any component did, and touches nothing never started."""
    rp = cancellation_plan(s.old, s.old_plan, s.progress)
    key = content(s.old)
    inventory = {(cid, ln, key[ln]) for cid, lines in s.done.items() for ln in lines}
    for comp in rp.compensations:
        assert not comp.do_lines
        if s.progress[comp.component_id] is ComponentState.PENDING:
            assert comp.kind is Compensation.NONE
        inventory = {
            e
            for e in inventory
            if (e[0], e[1]) not in {(comp.component_id, ln) for ln in comp.undo_lines}
        }
    assert inventory == set()


@PROPERTY
@given(scenario_st())
def test_property_kept_lines_were_really_done(s: Scenario) -> None:
    """How the workflow uses the plan: a component rerun after REDO/AMEND is told its
    keep_lines are done (``ProvisioningOrder.done_lines``), so each must be done, as it is now.

    Only a component that COMPLETED is known to have done every line; one that FAILED or is
    in progress may have done any part of its work.
    """
    rp = revision_plan(s)
    key = content(s.old)
    for comp in rp.compensations:
        not_done = [ln for ln in comp.keep_lines if ln not in s.done[comp.component_id]]
        assert not not_done, (
            f"{comp.component_id} ({s.progress[comp.component_id].value}) keeps {not_done}, "
            "never done under the old revision"
        )
        assert all(_line_key(ln) == key[ln.id] for ln in s.new.lines if ln.id in comp.keep_lines)
