"""The operator endpoints under ``/api/v1/orders``: the orders as visibility knows them, one
order as `o2a status --json` shows it, and the operator actions. Each calls the order service;
a refusal is the workflow's own reason (409), as the CLI prints it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from o2a.api.auth import Permission, Role, require
from o2a.models import FulfillmentStatus, Model, OperatorActionView, OrderState, OrderStatus
from o2a.service import OrderService, OrderSummary, RequestReceipt
from workflows.contracts.customer_order import OperatorRequest

router = APIRouter(prefix="/api/v1/orders", tags=["operator"])


def order_service(request: Request) -> OrderService:
    """The application's one service, on its Temporal client (made once Temporal first
    answers: the routers depend on the connection, o2a/api/app.py)."""
    service: OrderService = request.app.state.service
    return service


Service = Annotated[OrderService, Depends(order_service)]
Reader = Annotated[Role, Depends(require(Permission.READ))]
Operator = Annotated[Role, Depends(require(Permission.OPERATE))]


def _named(
    request: Request,
    number: Annotated[str, Path(description="The order number (its Identification/ID).")],
) -> str:
    """The order number of the path, named in the request's log line."""
    request.state.order_number = number
    return number


OrderNumber = Annotated[str, Depends(_named)]


class OperatorAction(StrEnum):
    RESOLVE = "resolve"
    SUSPEND = "suspend"
    RESUME = "resume"
    ABORT = "abort"


ACTIONS: dict[
    OperatorAction, Callable[[OrderService, str, OperatorRequest], Awaitable[OperatorActionView]]
] = {
    OperatorAction.RESOLVE: OrderService.resolve,
    OperatorAction.SUSPEND: OrderService.suspend,
    OperatorAction.RESUME: OrderService.resume,
    OperatorAction.ABORT: OrderService.abort,
}


class CancelBody(Model):
    reason: str | None = None
    operator: str | None = None
    """Who (recorded with the cancel); the caller's role if not given."""


REFUSED: dict[int | str, dict[str, object]] = {
    404: {"description": "No such order."},
    409: {"description": "The order refused: the reason is the workflow's."},
}


@router.get("")
async def list_orders(
    service: Service,
    _: Reader,
    state: OrderState | None = None,
    status: FulfillmentStatus | None = None,
    customer: Annotated[str | None, Query(description="The customer account ID.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[OrderSummary]:
    """The newest orders first, from Temporal visibility (no worker asked)."""
    return await service.list_orders(state, limit, status=status, customer=customer)


@router.get("/{number}", responses={404: {"description": "No such order."}})
async def order_status(service: Service, _: Reader, number: OrderNumber) -> OrderStatus:
    """The order's state, lines, components, fallout and revisions: `o2a status --json`."""
    return await service.status(number)


@router.post("/{number}/cancel", responses=REFUSED)
async def cancel(
    service: Service,
    role: Operator,
    number: OrderNumber,
    body: Annotated[CancelBody | None, Body()] = None,
) -> RequestReceipt:
    """Signal a cancel; the order takes it in its turn (its outcome under the receipt's
    request ID, in the order's revisions)."""
    body = body or CancelBody()
    return await service.cancel(number, body.reason, body.operator or role.value)


@router.post("/{number}/{action}", responses=REFUSED)
async def act(
    service: Service,
    role: Operator,
    number: OrderNumber,
    action: Annotated[OperatorAction, Path(description="What to do to the order.")],
    body: Annotated[OperatorRequest | None, Body()] = None,
) -> OperatorActionView:
    """resolve: retry the failed components (or the one named); suspend: running steps
    finish, no new step starts; resume; abort: end the order at once, without
    compensation. The recorded action, or 409 with the order's reason."""
    body = body or OperatorRequest()
    request = body.model_copy(update={"operator": body.operator or role.value})
    return await ACTIONS[action](service, number, request)
