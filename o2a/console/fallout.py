"""The fallout page: open incidents across all orders, oldest first, filtered by fault code,
target system and age, with retry (resolve), cancel and abort, one incident or many at
once (after an outage of one system, operators retry dozens together).

Failed orders come from Temporal visibility (their state search attribute); only the newest
``MAX_ORDERS`` of them are asked for their status, so the page stays cheap however many
orders failed, and says when there are more."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Query, Request, Response
from temporalio.service import RPCError

from o2a import ids
from o2a.console.access import Operator, Posted, Reader, Service
from o2a.console.actions import Action, Outcome, perform
from o2a.console.web import NAV, PREFIX, ConsoleError, NavItem, is_htmx, page_router, render
from o2a.errors import NoWorkerError, UnknownOrderError
from o2a.models import FalloutView, OrderState, OrderStatus, RunKind
from o2a.service import OrderService

MAX_ORDERS = 100
ACTIONS = (Action.RESOLVE, Action.CANCEL, Action.ABORT)

router = page_router()
NAV.append(NavItem("Fallout", f"{PREFIX}/fallout"))


async def statuses(service: OrderService, numbers: Collection[str]) -> list[OrderStatus]:
    """The status of each order, asked at once; an order gone meanwhile, or one no worker
    answers for, is left out (the page says how many it read)."""

    async def one(number: str) -> OrderStatus | None:
        try:
            return await service.status(number)
        except (UnknownOrderError, NoWorkerError, RPCError):
            return None

    found = await asyncio.gather(*(one(n) for n in numbers))
    return [s for s in found if s is not None]


@dataclass(frozen=True)
class Incident:
    order_number: str
    fallout: FalloutView
    target_system: str
    failed_message: str
    """The ID of the provisioning order (EBM) whose run failed, or of the undelivered message."""

    @property
    def key(self) -> str:
        """What a checkbox posts: the order and the component to resolve."""
        return json.dumps([self.order_number, self.fallout.component])

    @property
    def fault_message(self) -> str:
        return ids.fault_message_id(self.fallout.id)


def open_incidents(status: OrderStatus) -> list[Incident]:
    components = {c.id: c for c in status.components}
    found = []
    for fallout in status.fallouts:
        if fallout.state != "open":
            continue
        component = components.get(fallout.component)
        runs = [r for r in component.runs if r.kind is not RunKind.WAIT] if component else []
        failed = (
            ids.provisioning_order_message_id(
                status.order_number, runs[-1].revision, fallout.component, runs[-1].run
            )
            if runs
            else fallout.message_id or ""
        )
        system = component.target_system if component else ""
        found.append(Incident(status.order_number, fallout, system, failed))
    return found


@dataclass(frozen=True)
class Filters:
    code: str = ""
    system: str = ""
    older_than: int = 0
    """Minutes since the incident was raised."""

    def keeps(self, incident: Incident, now: datetime) -> bool:
        raised = incident.fallout.raised_at or now
        return (
            (not self.code or incident.fallout.code == self.code)
            and (not self.system or incident.target_system == self.system)
            and now - raised >= timedelta(minutes=self.older_than)
        )


async def _view(service: OrderService, filters: Filters) -> dict[str, Any]:
    failed = await service.list_orders(OrderState.FAILED, MAX_ORDERS)
    total = await service.count_orders([OrderState.FAILED])
    found = await statuses(service, [o.order_number for o in failed])
    every = [i for s in found for i in open_incidents(s)]
    now = datetime.now(UTC)
    shown = sorted(
        (i for i in every if filters.keeps(i, now)),
        key=lambda i: i.fallout.raised_at or now,
    )
    return {
        "incidents": shown,
        "filters": filters,
        "codes": sorted({i.fallout.code for i in every}),
        "systems": sorted({i.target_system for i in every if i.target_system}),
        "failed_orders": total,
        "read_orders": len(found),
        "actions": ACTIONS,
        "now": now,
    }


@router.get("/fallout")
async def fallout_page(
    request: Request,
    service: Service,
    _: Reader,
    code: Annotated[str, Query(max_length=80)] = "",
    system: Annotated[str, Query(max_length=80)] = "",
    older_than: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    view = await _view(service, Filters(code, system, older_than))
    return render(request, "fallout.html", outcomes=[], **view)


def _selected(values: list[str]) -> list[tuple[str, str]]:
    """The (order, component) pairs the form posted; anything else is refused."""
    try:
        pairs = [json.loads(v) for v in values]
        return [(str(n), str(c)) for n, c in pairs]
    except (ValueError, TypeError):
        raise ConsoleError(400, "Bad request", "an incident was not one of the page's") from None


@router.post("/fallout/actions")
async def fallout_action(
    request: Request, service: Service, visitor: Operator, form: Posted
) -> Response:
    """One action on each selected incident; cancel and abort act once per order. Every
    answer is shown, accepted or refused."""
    try:
        action = Action(str(form.get("action") or ""))
    except ValueError:
        action = None
    if action is None or action not in ACTIONS:
        raise ConsoleError(400, "Unknown action", "choose retry, cancel or abort")
    chosen = _selected([str(v) for v in form.getlist("incident")])
    if not chosen:
        raise ConsoleError(400, "Nothing selected", "select at least one incident")
    if action is not Action.RESOLVE:  # the whole order: once each
        chosen = list(dict.fromkeys((n, "") for n, _ in chosen))
    reason = str(form.get("reason") or "")
    outcomes: list[Outcome] = await asyncio.gather(
        *(perform(service, n, action, visitor, reason, c or None) for n, c in chosen)
    )
    status = 200 if all(o.accepted for o in outcomes) else 409
    if is_htmx(request):
        return render(request, "_fallout_outcomes.html", status_code=status, outcomes=outcomes)
    view = await _view(service, Filters())
    return render(request, "fallout.html", status_code=status, outcomes=outcomes, **view)
