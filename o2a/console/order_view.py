"""One order as the console shows it, from its status and the revision in force: the lines
as the offer → bundle → product tree CRM sent, and the messages the order has sent, named by
the same deterministic IDs the workflow gave them (``o2a.ids``). Pure: no Temporal here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from o2a import ids
from o2a.models import (
    ComponentKind,
    ComponentView,
    CustomerOrder,
    JeopardyView,
    LineView,
    OrderPlan,
    OrderStatus,
    RunKind,
)


@dataclass
class LineNode:
    line: LineView
    children: list[LineNode] = field(default_factory=list)


def line_tree(status: OrderStatus, order: CustomerOrder | None) -> list[LineNode]:
    """A parent is named by its line ID (as the parser resolves it) or its
    ``BusinessComponentID``; a line whose parent is not in the revision in force (removed
    by a revision) stands at the top."""
    nodes = {line.id: LineNode(line) for line in status.lines}
    parent_of: dict[str, str] = {}
    if order is not None:
        by_key = {line.business_component_id: line.id for line in order.lines}
        by_key.update({line.id: line.id for line in order.lines})
        for line in order.lines:
            parent = by_key.get(line.parent_id or "")
            if parent is not None and parent != line.id and line.id in nodes:
                parent_of[line.id] = parent
    roots = []
    for line_id, node in nodes.items():
        parent = parent_of.get(line_id)
        if parent in nodes and not _is_ancestor(line_id, parent, parent_of):
            nodes[parent].children.append(node)
        else:
            roots.append(node)
    return roots


def first_lines(roots: list[LineNode], limit: int) -> list[LineNode]:
    """The tree cut after ``limit`` lines in reading order: a page of a 5,000-line order
    stays a page."""
    left = limit

    def cut(nodes: list[LineNode]) -> list[LineNode]:
        nonlocal left
        kept = []
        for node in nodes:
            if left <= 0:
                break
            left -= 1
            kept.append(LineNode(node.line, cut(node.children)))
        return kept

    return cut(roots)


def _is_ancestor(line_id: str, of: str | None, parent_of: dict[str, str]) -> bool:
    """A cycle of parent references (malformed input) must not hide lines."""
    seen = set()
    while of is not None and of not in seen:
        if of == line_id:
            return True
        seen.add(of)
        of = parent_of.get(of)
    return False


@dataclass(frozen=True)
class SentMessage:
    ebm: str
    message_id: str
    about: str
    at: datetime | None


def sent_messages(status: OrderStatus, plan: OrderPlan | None) -> list[SentMessage]:
    """The provisioning orders of every SOM run, each fault with its trouble ticket, each
    jeopardy notification and the CRM updates, oldest first. A CRM update's ID carries the
    revision in force when it went out, which the status does not keep once a revision was
    accepted: those are counted, not named."""
    number = status.order_number
    provisioning = {
        c.id for c in (plan.components if plan else []) if c.kind is ComponentKind.PROVISION
    }
    found: list[SentMessage] = []
    for component in status.components:
        if component.id not in provisioning:
            continue
        for run in component.runs:
            if run.kind is not RunKind.WAIT:
                found.append(
                    SentMessage(
                        "ProcessProvisioningOrderEBM",
                        ids.provisioning_order_message_id(
                            number, run.revision, component.id, run.run
                        ),
                        f"{run.kind.value} run {run.run} of {component.function}",
                        run.started_at,
                    )
                )
    for fallout in status.fallouts:
        if fallout.message_id is None:
            about = f"incident {fallout.id}: {fallout.code}"
            found.append(
                SentMessage("Fault", ids.fault_message_id(fallout.id), about, fallout.raised_at)
            )
            found.append(
                SentMessage(
                    "CreateTroubleTicketEBM",
                    ids.trouble_ticket_message_id(fallout.id),
                    about,
                    fallout.raised_at,
                )
            )
    components = {c.id: c for c in status.components}
    for jeopardy in status.jeopardies:
        found.append(_jeopardy_message(number, jeopardy, components.get(jeopardy.component)))
    found.sort(key=lambda m: (m.at is None, m.at or datetime.max))
    found += _crm_updates(status)
    return found


def _jeopardy_message(
    number: str, jeopardy: JeopardyView, component: ComponentView | None
) -> SentMessage:
    runs = [
        r
        for r in (component.runs if component else [])
        if r.kind is RunKind.DO and r.started_at <= jeopardy.raised_at
    ]
    revision, run = (runs[-1].revision, runs[-1].run) if runs else (1, 1)
    return SentMessage(
        "UpdateSalesOrderEBM (jeopardy)",
        ids.jeopardy_message_id(number, revision, jeopardy.component, jeopardy.severity, run),
        f"{jeopardy.component}: {jeopardy.severity}",
        jeopardy.raised_at,
    )


def _crm_updates(status: OrderStatus) -> list[SentMessage]:
    sent = status.crm_updates_sent
    if any(r.outcome == "accepted" for r in status.revisions):
        if not sent:
            return []
        return [SentMessage("UpdateSalesOrderEBM", "", f"{sent} updates to CRM", None)]
    return [
        SentMessage(
            "UpdateSalesOrderEBM",
            ids.sales_order_update_message_id(status.order_number, status.revision, n),
            f"update {n} to CRM",
            None,
        )
        for n in range(1, sent + 1)
    ]
