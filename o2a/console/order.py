"""One order's page: its header, the line tree, components, the orchestration plan as a
graph, the timeline of component runs, revisions with their compensation, fallout,
jeopardies, the messages it sent, and the operator's actions.

While the order runs, htmx asks for the live part of the page every few seconds; the answer
is 204 (nothing to swap) unless the order changed, so a keyboard user's focus is only moved
when there is something new to see. Once the order has ended the polling stops.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response

from o2a.console.access import Operator, Posted, Reader, Service
from o2a.console.actions import Action, offered, perform
from o2a.console.order_view import first_lines, line_tree, sent_messages
from o2a.console.plan_graph import plan_graph
from o2a.console.timeline import timeline
from o2a.console.web import ConsoleError, app_singleton, is_htmx, page_router, render
from o2a.models import CustomerOrder, OrderPlan, OrderState
from o2a.service import OrderService

POLL_SECONDS = 2
SHOWN = {"lines": 500, "timeline": 60, "messages": 300}
"""How many lines, timeline rows and messages a page shows (big orders have thousands);
the page says how many more there are."""
FINAL = {OrderState.COMPLETED, OrderState.CANCELLED, OrderState.ABORTED}

router = page_router()


def _named(
    request: Request,
    number: Annotated[str, Path(max_length=200, description="The order number.")],
) -> str:
    """The order number of the path, named in the request's log line (as the API does)."""
    request.state.order_number = number
    return number


OrderNumber = Annotated[str, Depends(_named)]

Basis = tuple[CustomerOrder, OrderPlan]


class PlanCache:
    """The revision in force and its plan change only with a revision: asked once per
    revision, not on every refresh (a big order's plan is large)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._plans: OrderedDict[tuple[str, int], Basis] = OrderedDict()

    async def get(self, service: OrderService, number: str, revision: int) -> Basis | None:
        key = (number, revision)
        found = self._plans.get(key)
        if found is None:
            found = await service.order_in_force(number)
            if found is None or found[0].revision != revision:
                return found  # not planned yet, or revised meanwhile: not kept
            self._plans[key] = found
            while len(self._plans) > self._size:
                self._plans.popitem(last=False)
        self._plans.move_to_end(key)
        return found


async def _view(request: Request, service: OrderService, number: str) -> dict[str, Any]:
    timed = await service.timed_status(number)
    status = timed.status
    plans = app_singleton(request, "console_plans", PlanCache)
    basis = await plans.get(service, number, status.revision)
    order, plan = basis if basis is not None else (None, None)
    now = datetime.now(UTC)
    anchors = {c.id: f"component-{i}" for i, c in enumerate(status.components, start=1)}
    states = {c.id: c.state for c in status.components}
    messages = sent_messages(status, plan)
    digest = hashlib.sha256(f"{timed.model_dump_json()}|{plan is not None}".encode()).hexdigest()[
        :16
    ]
    return {
        "number": number,
        "timed": timed,
        "status": status,
        "order": order,
        "plan": plan,
        "live": status.state not in FINAL,
        "poll_seconds": POLL_SECONDS,
        "digest": digest,
        "tree": first_lines(line_tree(status, order), SHOWN["lines"]),
        "anchors": anchors,
        "graph": plan_graph(plan, states, anchors) if plan is not None else None,
        "timeline": timeline(
            status.components[: SHOWN["timeline"]],
            status.jeopardies,
            timed.started,
            timed.closed or now,
            anchors,
        ),
        "messages": messages[: SHOWN["messages"]],
        "totals": {
            "lines": len(status.lines),
            "timeline": len(status.components),
            "messages": len(messages),
        },
        "shown": SHOWN,
        "actions": offered(status.state),
        "drawn_at": now,
    }


@router.get("/orders/{number}")
async def order_page(
    request: Request, service: Service, _: Reader, number: OrderNumber
) -> Response:
    return render(request, "order.html", outcome=None, **await _view(request, service, number))


@router.get("/orders/{number}/live")
async def order_live(
    request: Request,
    service: Service,
    _: Reader,
    number: OrderNumber,
    seen: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The live part of the page; 204 when nothing changed since ``seen``."""
    view = await _view(request, service, number)
    if seen and seen == view["digest"]:
        return Response(status_code=204)
    return render(request, "_order_live.html", **view)


@router.post("/orders/{number}/actions")
async def order_action(
    request: Request,
    service: Service,
    visitor: Operator,
    number: OrderNumber,
    form: Posted,
) -> Response:
    """An operator action; htmx shows the answer in place, a plain form post the page."""
    try:
        action = Action(str(form.get("action") or ""))
    except ValueError:
        raise ConsoleError(400, "Unknown action", "choose one of the actions offered") from None
    outcome = await perform(service, number, action, visitor, str(form.get("reason") or ""))
    status = 200 if outcome.accepted else 409
    if is_htmx(request):
        return render(request, "_action_outcome.html", status_code=status, outcome=outcome)
    view = await _view(request, service, number)
    return render(request, "order.html", status_code=status, outcome=outcome, **view)
