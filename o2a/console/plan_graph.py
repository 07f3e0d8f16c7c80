"""The orchestration plan as a dependency graph in SVG, drawn here from the plan: components
left to right by dependency depth, each coloured by its state, an arrow from every
dependency to the component that waits for it. No JavaScript, no graph library.

Past ``MAX_NODES`` components (big orders have hundreds) components of one function and
target system are drawn as one node with their count, so the graph stays readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from o2a.console.svg import fit, svg_open
from o2a.models import ComponentState, OrderPlan

MAX_NODES = 40
NODE_W, NODE_H = 236, 56
GAP_X, GAP_Y, MARGIN = 64, 16, 12

PRECEDENCE = (
    ComponentState.FAILED,
    ComponentState.IN_PROGRESS,
    ComponentState.SUSPENDED,
    ComponentState.WAITING,
    ComponentState.PENDING,
    ComponentState.ABORTED,
    ComponentState.CANCELLED,
    ComponentState.COMPLETED,
)
"""A group of components shows the state that most needs attention."""


@dataclass
class Node:
    key: str
    title: str
    subtitle: str
    state: ComponentState
    members: list[str]
    depends_on: set[str] = field(default_factory=set)
    layer: int = 0
    x: float = 0
    y: float = 0


def plan_graph(
    plan: OrderPlan, states: Mapping[str, ComponentState], anchors: Mapping[str, str]
) -> Markup:
    """``states``: component → state now; ``anchors``: component → the id of its row on the
    page, which its node links to."""
    nodes = _nodes(plan, states)
    _layout(nodes)
    width = max((n.x for n in nodes.values()), default=0) + NODE_W + MARGIN
    height = max((n.y for n in nodes.values()), default=0) + NODE_H + MARGIN
    title = (
        f"Orchestration plan of order {plan.order_number} revision {plan.revision}: "
        f"{len(plan.components)} components"
    )
    parts = [
        svg_open("plan-graph", "plan-graph-title", title, width, height),
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" '
        'class="arrow-head"/></marker></defs>',
    ]
    for node in nodes.values():
        for dep in sorted(node.depends_on):
            parts.append(_edge(nodes[dep], node))
    for node in nodes.values():
        parts.append(_node(node, anchors))
    parts.append("</svg>")
    return Markup("".join(parts))


def _nodes(plan: OrderPlan, states: Mapping[str, ComponentState]) -> dict[str, Node]:
    grouped = len(plan.components) > MAX_NODES
    key_of = {c.id: f"{c.function}.{c.target_system}" if grouped else c.id for c in plan.components}
    nodes: dict[str, Node] = {}
    for c in plan.components:
        key = key_of[c.id]
        state = states.get(c.id, ComponentState.PENDING)
        node = nodes.get(key)
        if node is None:
            nodes[key] = node = Node(key, c.function, c.target_system, state, [])
        node.members.append(c.id)
        node.state = min(node.state, state, key=PRECEDENCE.index)
        node.depends_on |= {key_of[d] for d in c.depends_on if d in key_of} - {key}
    if not grouped:
        for c in plan.components:  # one node each: name the granularity group too
            group = c.id.removeprefix(f"{c.function}.{c.target_system}").lstrip(".")
            nodes[c.id].subtitle = f"{c.target_system} · {group}" if group else c.target_system
    return nodes


def _layout(nodes: dict[str, Node]) -> None:
    """Columns by dependency depth; within a column, each node near the mean row of what
    it depends on (fewer crossing arrows), ties kept in plan order."""
    depth: dict[str, int] = {}

    def layer(key: str, seen: frozenset[str] = frozenset()) -> int:
        if key not in depth:
            deps = [d for d in nodes[key].depends_on if d not in seen]
            depth[key] = 1 + max((layer(d, seen | {key}) for d in deps), default=-1)
        return depth[key]

    columns: dict[int, list[Node]] = {}
    for key, node in nodes.items():
        node.layer = layer(key)
        columns.setdefault(node.layer, []).append(node)
    row: dict[str, float] = {}
    for number in sorted(columns):
        column = columns[number]
        if number:
            order = {n.key: i for i, n in enumerate(column)}
            column.sort(
                key=lambda n: (
                    sum(row[d] for d in n.depends_on) / len(n.depends_on)
                    if n.depends_on
                    else order[n.key],
                    order[n.key],
                )
            )
        for i, node in enumerate(column):
            row[node.key] = i
            node.x = MARGIN + number * (NODE_W + GAP_X)
            node.y = MARGIN + i * (NODE_H + GAP_Y)


def _edge(source: Node, target: Node) -> str:
    x1, y1 = source.x + NODE_W, source.y + NODE_H / 2
    x2, y2 = target.x - 2, target.y + NODE_H / 2
    bend = max((x2 - x1) / 2, 24)
    return (
        f'<path class="edge" d="M{x1:.0f} {y1:.0f} C{x1 + bend:.0f} {y1:.0f} '
        f'{x2 - bend:.0f} {y2:.0f} {x2:.0f} {y2:.0f}" marker-end="url(#arrow)"/>'
    )


def _node(node: Node, anchors: Mapping[str, str]) -> str:
    count = len(node.members)
    title = f"{node.title} x {count}" if count > 1 else node.title
    label = f"{', '.join(node.members[:3])}{' …' if count > 3 else ''}: {node.state.value}"
    anchor = anchors.get(node.members[0])
    body = (
        f'<rect x="{node.x:.0f}" y="{node.y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
        f'<text x="{node.x + 10:.0f}" y="{node.y + 20:.0f}" class="node-title">'
        f"{escape(fit(title, 28))}</text>"
        f'<text x="{node.x + 10:.0f}" y="{node.y + 36:.0f}" class="node-sub">'
        f"{escape(fit(node.subtitle, 31))}</text>"
        f'<text x="{node.x + 10:.0f}" y="{node.y + 50:.0f}" class="node-state">'
        f"{escape(node.state.value.replace('_', ' '))}</text>"
    )
    group = (
        f'<g class="node state-{node.state.value.replace("_", "-")}" '
        f'data-component="{escape(node.members[0])}"><title>{escape(label)}</title>{body}</g>'
    )
    return f'<a href="#{escape(anchor)}">{group}</a>' if anchor else group
