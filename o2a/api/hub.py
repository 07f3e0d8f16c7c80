"""TMF622 hub: ``POST {API_ROOT}/hub`` registers a listener for order events, ``GET`` and
``DELETE {API_ROOT}/hub/{id}`` show and remove it. The door parses and answers; the
subscriptions live in the hub workflow (o2a/notifications.py ``Hub``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict

from o2a.api.auth import Permission, require
from o2a.api.errors import TmfError
from o2a.config import Settings
from o2a.errors import InputError
from o2a.notifications import Hub
from o2a.tmf622 import API_ROOT
from workflows.contracts.notification_hub import Subscription

router = APIRouter(prefix=API_ROOT, tags=["TMF622 event hub"])

Orderer = Annotated[object, Depends(require(Permission.ORDER))]


class HubInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    callback: str
    query: str | None = None
    """TMF notification filter: ``eventType=A,B`` and ``productOrder.id=X``; none: all."""
    secret: str | None = None
    """Signs each delivery (``X-O2A-Signature``); made by o2a when not given."""


class EventSubscription(BaseModel):
    """A subscription as shown after it was made: without its secret."""

    id: str
    callback: str
    query: str


class NewEventSubscription(EventSubscription):
    secret: str
    """Shown this once: the listener checks each delivery's signature with it."""


def _hub(request: Request) -> Hub:
    settings: Settings = request.app.state.settings
    return Hub(request.app.state.client, settings.task_queue)


def _href(subscription_id: str) -> str:
    return f"{API_ROOT}/hub/{subscription_id}"


@router.post("/hub", status_code=201, response_model=NewEventSubscription)
async def subscribe(
    body: HubInput, request: Request, response: Response, _: Orderer
) -> NewEventSubscription:
    """201 with the secret; 422 for a callback that is no http(s) URL or a query o2a cannot
    filter on."""
    try:
        made: Subscription = await _hub(request).subscribe(
            body.callback, body.query or "", body.secret
        )
    except InputError as exc:
        raise TmfError(422, "Invalid subscription", str(exc)) from None
    response.headers["Location"] = _href(made.id)
    return NewEventSubscription(**made.model_dump())


@router.get("/hub/{subscription_id}", response_model=EventSubscription)
async def subscription(subscription_id: str, request: Request, _: Orderer) -> EventSubscription:
    found = await _hub(request).find(subscription_id)
    if found is None:
        raise TmfError(404, "Not found", f"no hub subscription {subscription_id}")
    return EventSubscription(id=found.id, callback=found.callback, query=found.query)


@router.delete("/hub/{subscription_id}", status_code=204)
async def unsubscribe(subscription_id: str, request: Request, _: Orderer) -> Response:
    """Its listener gets nothing more, not even events still queued for it."""
    if not await _hub(request).unsubscribe(subscription_id):
        raise TmfError(404, "Not found", f"no hub subscription {subscription_id}")
    return Response(status_code=204)
