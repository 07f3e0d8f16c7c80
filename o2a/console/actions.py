"""Operator actions from the console: the order's own updates (resolve, suspend, resume,
abort) and the cancel signal, through the service as the API calls them. The answer is the
workflow's: accepted, or refused with its reason. Any page that acts on orders (one order,
the fallout list) calls ``perform`` and shows ``_action_outcome.html``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from o2a.api.operator import ACTIONS, OperatorAction
from o2a.console.access import Visitor
from o2a.errors import NoWorkerError, OrderConflictError
from o2a.models import OrderState
from o2a.service import OrderService
from workflows.contracts.customer_order import OperatorRequest

MAX_REASON = 500


class Action(StrEnum):
    RESOLVE = "resolve"
    SUSPEND = "suspend"
    RESUME = "resume"
    ABORT = "abort"
    CANCEL = "cancel"

    @property
    def label(self) -> str:
        return LABELS[self]


LABELS = {
    Action.RESOLVE: "Retry failed work (resolve)",
    Action.SUSPEND: "Suspend",
    Action.RESUME: "Resume",
    Action.ABORT: "Abort, without compensation",
    Action.CANCEL: "Cancel the order (compensate)",
}

_FINAL = {OrderState.COMPLETED, OrderState.CANCELLED, OrderState.ABORTED}


def offered(state: OrderState) -> list[Action]:
    """The actions worth offering in this state; the workflow still decides (it may have
    moved on since the page was drawn)."""
    if state in _FINAL:
        return []
    shown = [Action.RESOLVE] if state is OrderState.FAILED else []
    if state is OrderState.SUSPENDED:
        shown.append(Action.RESUME)
    elif state in (OrderState.IN_PROGRESS, OrderState.FAILED, OrderState.WAITING):
        shown.append(Action.SUSPEND)
    if state is not OrderState.CANCELING:
        shown.append(Action.CANCEL)
    return [*shown, Action.ABORT]


@dataclass(frozen=True)
class Outcome:
    order_number: str
    action: Action
    accepted: bool
    message: str


async def perform(
    service: OrderService,
    order_number: str,
    action: Action,
    visitor: Visitor,
    reason: str | None = None,
    component: str | None = None,
) -> Outcome:
    """One action on one order, recorded with the visitor's role as the operator."""
    reason = (reason or "").strip()[:MAX_REASON] or None
    try:
        if action is Action.CANCEL:
            receipt = await service.cancel(order_number, reason, visitor.name)
            message = f"cancel requested (request {receipt.request_id}): the order takes it in turn"
        else:
            request = OperatorRequest(operator=visitor.name, reason=reason, component=component)
            view = await ACTIONS[OperatorAction(action.value)](service, order_number, request)
            message = f"{view.action} accepted at {view.at:%H:%M:%S} UTC"
    except (OrderConflictError, NoWorkerError) as exc:
        return Outcome(order_number, action, False, str(exc))
    return Outcome(order_number, action, True, message)
