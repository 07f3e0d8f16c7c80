"""The console's pure parts, without a server: session cookies and CSRF tokens, the search
form, the line tree, the messages an order sent, and the SVG drawings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lxml import etree

from o2a import ids
from o2a.api.auth import Role
from o2a.catalog import load_catalog
from o2a.console.order_view import first_lines, line_tree, sent_messages
from o2a.console.orders import Search
from o2a.console.plan_graph import MAX_NODES, plan_graph
from o2a.console.session import LIFETIME_SECONDS, SessionSigner
from o2a.console.timeline import timeline
from o2a.decomposition import decompose
from o2a.models import (
    ComponentKind,
    ComponentRun,
    ComponentState,
    ComponentUpdate,
    ComponentView,
    CustomerOrder,
    FulfillmentStatus,
    JeopardyView,
    OrderComponent,
    OrderPlan,
    OrderState,
    RunKind,
)
from o2a.tracking import FulfillmentTracker
from tests.support import PROV_FIXED, SHIP, quick_triple_play

T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def test_session_cookies_are_signed_expire_and_bind_csrf_tokens() -> None:
    signer = SessionSigner(b"secret")
    session = signer.new(Role.OPERATOR, now=1000)
    cookie = signer.dump(session)
    assert signer.load(cookie, now=1001) == session
    assert signer.load(cookie, now=1000 + LIFETIME_SECONDS) is None  # expired
    assert SessionSigner(b"other").load(cookie, now=1001) is None  # another process's
    body, _, signature = cookie.partition(".")
    forged = body.replace(body[:4], "eyJz") if not body.startswith("eyJz") else "x" + body
    assert signer.load(f"{forged}.{signature}", now=1001) is None
    for junk in ("", ".", "a.b", "!!!.???", "é.é"):
        assert signer.load(junk, now=1001) is None
    token = signer.csrf_token(session)
    assert signer.csrf_valid(session, token)
    assert not signer.csrf_valid(signer.new(Role.OPERATOR), token)  # another session's
    assert not signer.csrf_valid(session, signature)  # a cookie signature is no token
    assert "operator" not in token and signer.new(None).role is None


def test_search_reads_what_it_can_and_names_the_rest() -> None:
    search, problems = Search.read(
        {
            "number": " T-1 ",
            "state": "failed",
            "status": "IN PROGRESS",
            "since": "2026-01-02",
            "until": "nope",
            "page": "3",
        }
    )
    assert (search.number, search.state, search.status, search.page) == (
        "T-1",
        OrderState.FAILED,
        FulfillmentStatus.IN_PROGRESS,
        3,
    )
    assert problems == ["until: not a date (YYYY-MM-DD)"]
    filters = search.filters()
    assert filters["started_after"] == datetime(2026, 1, 2, tzinfo=UTC)
    assert filters["started_before"] is None and filters["number_prefix"] == "T-1"
    chip, _ = Search.read({"state": "failed", "chip": "all", "page": "3"})
    assert (chip.state, chip.page) == (None, 1)
    chip, _ = Search.read({"chip": "suspended"})
    assert chip.state is OrderState.SUSPENDED
    day, _ = Search.read({"until": "2026-01-02"})
    assert day.filters()["started_before"] == datetime(2026, 1, 3, tzinfo=UTC)  # inclusive
    _, problems = Search.read({"state": "lost", "customer": "x" * 81, "page": "-1"})
    assert problems == ["customer: at most 80 printable characters", "state: unknown value 'lost'"]


def _triple_play() -> tuple[CustomerOrder, OrderPlan, FulfillmentTracker]:
    order = quick_triple_play("TP-1")
    plan = decompose(order, load_catalog())
    return order, plan, FulfillmentTracker(order, plan)


def test_lines_are_a_tree_of_offer_bundle_and_products() -> None:
    order, _, tracker = _triple_play()
    status = tracker.snapshot(OrderState.IN_PROGRESS, 0)
    roots = line_tree(status, order)
    assert [r.line.id for r in roots] == ["1"]
    bundles = roots[0].children
    assert [b.line.id for b in bundles] == ["1.1", "1.2", "1.3", "1.4"]
    assert [c.line.id for c in bundles[0].children] == ["1.1.1", "1.1.2"]
    flat = [r.line.id for r in line_tree(status, None)]  # no order: every line at the top
    assert flat == [line.id for line in status.lines]
    cut = first_lines(roots, 4)  # a big order's page shows its first lines, as a tree
    assert [(n.line.id, [c.line.id for c in n.children]) for n in cut[0].children] == [
        ("1.1", ["1.1.1", "1.1.2"])
    ]


def test_sent_messages_are_named_by_their_ids() -> None:
    _, plan, tracker = _triple_play()
    tracker.apply(_update(PROV_FIXED, ComponentState.IN_PROGRESS), T0)
    tracker.apply(_update(PROV_FIXED, ComponentState.FAILED), T0 + timedelta(seconds=5))
    tracker.reset_failed(PROV_FIXED)
    tracker.apply(_update(PROV_FIXED, ComponentState.IN_PROGRESS), T0 + timedelta(seconds=9))
    tracker.record_jeopardy(
        JeopardyView(
            component=PROV_FIXED,
            severity="Low",
            raised_at=T0 + timedelta(seconds=10),
            expected_by=T0,
        )
    )
    status = tracker.snapshot(OrderState.IN_PROGRESS, 2)
    sent = [(m.ebm, m.message_id) for m in sent_messages(status, plan)]
    fallout = status.fallouts[0].id
    assert sent == [
        ("ProcessProvisioningOrderEBM", ids.provisioning_order_message_id("TP-1", 1, PROV_FIXED)),
        ("Fault", ids.fault_message_id(fallout)),
        ("CreateTroubleTicketEBM", ids.trouble_ticket_message_id(fallout)),
        (
            "ProcessProvisioningOrderEBM",
            ids.provisioning_order_message_id("TP-1", 1, PROV_FIXED, 2),
        ),
        (
            "UpdateSalesOrderEBM (jeopardy)",
            ids.jeopardy_message_id("TP-1", 1, PROV_FIXED, "Low", 2),
        ),
        ("UpdateSalesOrderEBM", ids.sales_order_update_message_id("TP-1", 1, 1)),
        ("UpdateSalesOrderEBM", ids.sales_order_update_message_id("TP-1", 1, 2)),
    ]


def _update(component: str, state: ComponentState) -> ComponentUpdate:
    return ComponentUpdate(component_id=component, state=state)


def _svg(markup: str) -> etree._Element:
    return etree.fromstring(markup.encode())


def test_the_plan_graph_colours_components_and_draws_each_dependency() -> None:
    _, plan, _ = _triple_play()
    states = {c.id: ComponentState.COMPLETED for c in plan.components}
    states[PROV_FIXED] = ComponentState.FAILED
    svg = _svg(plan_graph(plan, states, {PROV_FIXED: "component-3"}))
    nodes = svg.findall(f".//{SVG}g")
    assert len(nodes) == len(plan.components)
    classes = {n.get("data-component"): n.get("class") for n in nodes}
    assert classes[PROV_FIXED] == "node state-failed"
    assert classes[SHIP] == "node state-completed"
    edges = svg.findall(f".//{SVG}path[@class='edge']")
    assert len(edges) == sum(len(c.depends_on) for c in plan.components)
    link = svg.find(f".//{SVG}a")
    assert link is not None and link.get("href") == "#component-3"
    # Columns by depth: a component is right of everything it depends on.
    x = {n.get("data-component"): float(n.find(f"{SVG}rect").get("x")) for n in nodes}
    assert all(x[c.id] > x[d] for c in plan.components for d in c.depends_on)


def test_a_big_plan_is_drawn_by_function_and_system() -> None:
    components = [
        OrderComponent(
            id=f"Provision.P.line-{i}",
            function="Provision",
            target_system="P",
            granularity="Line",
            kind=ComponentKind.PROVISION,
            lines=[str(i)],
        )
        for i in range(MAX_NODES + 5)
    ]
    components.append(
        OrderComponent(
            id="FulfillBilling.B.order",
            function="FulfillBilling",
            target_system="B",
            granularity="WholeOrder",
            kind=ComponentKind.BILLING,
            lines=["0"],
            depends_on=[c.id for c in components],
        )
    )
    plan = OrderPlan(order_number="BIG", revision=1, components=components, line_patterns={})
    states = {c.id: ComponentState.COMPLETED for c in components}
    states["Provision.P.line-7"] = ComponentState.IN_PROGRESS
    svg = _svg(plan_graph(plan, states, {}))
    groups = svg.findall(f".//{SVG}g")
    # One node per function and system, showing the state that most needs attention.
    assert [g.get("class") for g in groups] == ["node state-in-progress", "node state-completed"]
    assert len(svg.findall(f".//{SVG}path[@class='edge']")) == 1


def test_the_timeline_draws_runs_undo_waits_and_fallout_waits() -> None:
    second = timedelta(seconds=1)
    runs = [
        ComponentRun(
            kind=RunKind.WAIT,
            run=1,
            revision=1,
            started_at=T0,
            ended_at=T0 + second,
            outcome=ComponentState.IN_PROGRESS,
        ),
        ComponentRun(
            kind=RunKind.DO,
            run=1,
            revision=1,
            started_at=T0 + second,
            ended_at=T0 + 2 * second,
            outcome=ComponentState.FAILED,
        ),
        ComponentRun(
            kind=RunKind.DO,
            run=2,
            revision=1,
            started_at=T0 + 5 * second,
            ended_at=T0 + 6 * second,
            outcome=ComponentState.COMPLETED,
        ),
        ComponentRun(kind=RunKind.UNDO, run=3, revision=1, started_at=T0 + 7 * second),
    ]
    component = ComponentView(
        id=SHIP,
        function="Ship",
        target_system="ShippingSystem",
        state=ComponentState.COMPLETED,
        lines=["1"],
        runs=runs,
    )
    jeopardy = JeopardyView(
        component=SHIP, severity="High", raised_at=T0 + 2 * second, expected_by=T0
    )
    svg = _svg(timeline([component], [jeopardy], T0, T0 + 10 * second, {SHIP: "c-1"}))
    bars = [
        r.get("class")
        for r in svg.findall(f".//{SVG}rect")
        if r.get("class", "")[:3] in ("run", "fal")
    ]
    assert bars == [
        "fallout-wait",
        "run run-wait outcome-in-progress",
        "run run-do outcome-failed",
        "run run-do outcome-completed",
        "run run-undo outcome-open",
    ]
    undo = svg.findall(f".//{SVG}rect")[-1]
    assert float(undo.get("x")) + float(undo.get("width")) <= 1000 - 10 + 0.1  # open: until now
    assert svg.find(f".//{SVG}path[@class='jeopardy jeopardy-high']") is not None
