"""Decomposition: (customer order, catalog) → order components with their dependencies.

OSM decomposes in three stages per line: fulfillment function, target system, granularity.
Lines with the same (function, target, granularity group) form one component. This module
is pure, so the submit command can validate with it and the decomposition activity can
record its result in history.
"""

from __future__ import annotations

import re

from o2a import ids
from o2a.catalog import Catalog, DependencyScope, Granularity
from o2a.errors import InputError
from o2a.models import CustomerOrder, OrderComponent, OrderPlan, SalesOrderLine, ServiceActionCode

BUNDLE_TYPE_CODES = frozenset({"BUNDLE", "SERVICE BUNDLE"})


def validate_order(order: CustomerOrder, catalog: Catalog) -> None:
    """Refuse what cannot be fulfilled, naming the line and the culprit."""
    ids.check_business_keys(order.order_number, [line.id for line in order.lines])
    seen: set[str] = set()
    for line in order.lines:
        if line.id in seen:
            raise InputError(f"line {line.id}: duplicate line ID")
        seen.add(line.id)
    for line in order.lines:
        if line.root_id == line.id:  # its own parent is refused below, as a cycle
            raise InputError(f"line {line.id}: names itself as its root line")
        for ref in (line.parent_id, line.root_id):
            if ref is not None and ref not in seen:
                raise InputError(f"line {line.id}: parent line {ref} is not in the order")
        line_pattern(line, catalog)
    parents = {line.id: line.parent_id for line in order.lines}
    for line in order.lines:
        hops, current = 0, line.parent_id
        while current is not None:
            hops += 1
            if hops > len(parents):
                raise InputError(f"line {line.id}: parent references form a cycle")
            current = parents.get(current)


def line_pattern(line: SalesOrderLine, catalog: Catalog) -> str:
    product_class = line.item.product_class
    if product_class is None:
        if line.item.type_code in catalog.structural_type_codes:
            return catalog.structural_pattern
        raise InputError(
            f"line {line.id}: no product class (ItemReference/PrimaryClassificationCode "
            "or ClassificationCode[@listID='FulfillmentItemCode'])"
        )
    try:
        return catalog.product_classes[product_class]
    except KeyError:
        raise InputError(f"line {line.id}: unknown product class {product_class!r}") from None


def decompose(order: CustomerOrder, catalog: Catalog) -> OrderPlan:
    validate_order(order, catalog)
    by_id = {line.id: line for line in order.lines}
    patterns = {line.id: line_pattern(line, catalog) for line in order.lines}
    groups: dict[tuple[str, str, str], list[str]] = {}
    for line in order.lines:
        if line.action == ServiceActionCode.NO_CHANGE:
            continue
        pattern = catalog.fulfillment_patterns[patterns[line.id]]
        for function, target in pattern.functions.items():
            granularity = catalog.fulfillment_functions[function].granularity
            group = _group(line, granularity, by_id)
            groups.setdefault((function, target, group), []).append(line.id)

    components: list[OrderComponent] = []
    for function in catalog.function_order():
        spec = catalog.fulfillment_functions[function]
        for (fn, target, group), lines in sorted(groups.items(), key=_natural_order):
            if fn != function:
                continue
            components.append(
                OrderComponent(
                    id=component_id(function, target, group),
                    function=function,
                    target_system=target,
                    granularity=spec.granularity.value,
                    kind=spec.kind,
                    lines=lines,
                    expected_duration_seconds=spec.expected_duration_seconds,
                    point_of_no_return=spec.point_of_no_return,
                    point_of_no_return_kind=spec.point_of_no_return_kind,
                    start_milestone=spec.start_milestone,
                    complete_milestone=spec.complete_milestone,
                )
            )
    for component in components:
        component.depends_on = _dependencies(component, components, catalog)
    return OrderPlan(
        order_number=order.order_number,
        revision=order.revision,
        components=components,
        line_patterns=patterns,
    )


def natural_key(text: str) -> tuple[str | int, ...]:
    """Runs of digits compare as numbers, so bundle-3 sorts before bundle-10."""
    return tuple(int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", text)))


def _natural_order(group: tuple[tuple[str, str, str], list[str]]) -> tuple[object, ...]:
    return tuple(natural_key(part) for part in group[0])


def _group(line: SalesOrderLine, granularity: Granularity, by_id: dict[str, SalesOrderLine]) -> str:
    if granularity is Granularity.WHOLE_ORDER:
        return "order"
    if granularity is Granularity.LINE:
        return f"line-{line.id}"
    # Bundle: the nearest enclosing bundle, else the line's root, else the line itself.
    current: SalesOrderLine | None = line
    while current is not None:
        if current.item.type_code in BUNDLE_TYPE_CODES:
            return f"bundle-{current.id}"
        current = by_id.get(current.parent_id) if current.parent_id else None
    return f"bundle-{line.root_id or line.id}"


def component_id(function: str, target: str, group: str) -> str:
    """Stable across revisions, safe inside a workflow ID, and never shared by two groups:
    unsafe characters (``_`` included) are escaped, not replaced."""
    return ids.escape_component(f"{function}.{target}.{group}")


def _dependencies(
    component: OrderComponent, components: list[OrderComponent], catalog: Catalog
) -> list[str]:
    deps: list[str] = []
    mine = set(component.lines)
    for dep in catalog.fulfillment_functions[component.function].depends_on:
        for other in components:
            if other.function != dep.function or other.id == component.id:
                continue
            if dep.scope is DependencyScope.ORDER or mine.intersection(other.lines):
                deps.append(other.id)
    return deps
