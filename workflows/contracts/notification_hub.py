"""Contract of NotificationHubWorkflow: the TMF622 hub, the one durable list of event
subscriptions of a deployment (its task queue), kept in Temporal and nowhere else."""

from __future__ import annotations

from pydantic import Field

from o2a.models import Model
from workflows.contracts.listener_delivery import TmfEvent

WORKFLOW_TYPE = "NotificationHubWorkflow"

SUBSCRIBE_UPDATE = "subscribe"
"""Subscription → Subscription; the validator refuses a taken ID or a query it cannot
read."""
UNSUBSCRIBE_UPDATE = "unsubscribe"
"""Subscription ID → None; the validator refuses an unknown ID. Ends the listener's
delivery workflow."""
SUBSCRIPTIONS_QUERY = "subscriptions"
"""→ list[Subscription], secrets included (for the service and the notifiers, never shown
to a client)."""
MATCHING_QUERY = "matching"
"""list[TmfEvent] → list[Fanout]: for each subscription that wants any, its events, in
order. Asked only by workers of builds before notifiers kept the list themselves."""


def hub_workflow_id(task_queue: str) -> str:
    """One hub per deployment: the worker that sends an order's messages and the API share
    the task queue."""
    return f"o2a-hub/{task_queue}"


class Subscription(Model):
    id: str
    callback: str
    query: str = ""
    """TMF notification filter, e.g. ``eventType=ProductOrderStateChangeEvent&productOrder.id=A``
    (o2a.subscriptions.EventFilter); empty: every event."""
    secret: str
    """Signs every delivery (HMAC-SHA256); shown to the client once, at subscribe."""


class HubState(Model):
    """What a hub run hands the next (continue-as-new)."""

    subscriptions: list[Subscription] = Field(default_factory=list)


class Fanout(Model):
    subscription: Subscription
    events: list[TmfEvent]


__all__ = [
    "MATCHING_QUERY",
    "SUBSCRIBE_UPDATE",
    "SUBSCRIPTIONS_QUERY",
    "UNSUBSCRIBE_UPDATE",
    "WORKFLOW_TYPE",
    "Fanout",
    "HubState",
    "Subscription",
    "TmfEvent",
    "hub_workflow_id",
]
