"""Contract of ListenerDeliveryWorkflow: one per hub subscription, delivering that
listener's TMF events to its callback one at a time, in the order they were signalled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from o2a.models import Model

WORKFLOW_TYPE = "ListenerDeliveryWorkflow"

EVENTS_SIGNAL = "events"
"""list[TmfEvent], queued behind what the listener has not yet been sent (signal-with-start
by the notifier, so the first event of a subscription starts its workflow)."""
END_SIGNAL = "end"
"""From the hub when the subscription is deleted: nothing more is delivered."""


def listener_workflow_id(subscription_id: str) -> str:
    return f"o2a-listener-{subscription_id}"


class TmfEvent(Model):
    """One TMF622 notification as a listener receives it (``document``)."""

    event_id: str
    """Deterministic (message ID, event kind, line): a retried message yields the same ID,
    and the listener's workflow drops a second delivery of it."""
    event_time: datetime
    event_type: str
    event: dict[str, Any]
    latest: tuple[str, str] | None = None
    """(subject, value) for an event that says what something is now (an order's state, a
    line's milestone): a listener already told that value for that subject is not told
    again. Not part of the document."""

    def document(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "eventTime": self.event_time.isoformat(),
            "eventType": self.event_type,
            "event": self.event,
        }


class Listener(Model):
    """Where a subscription's events go and the secret that signs them."""

    subscription_id: str
    callback: str
    secret: str


class ListenerState(Model):
    """What a run hands the next (continue-as-new): undelivered events and what it must
    remember to drop duplicates and repeats."""

    listener: Listener
    queue: list[TmfEvent] = Field(default_factory=list)
    recent_ids: list[str] = Field(default_factory=list)
    latest: dict[str, str] = Field(default_factory=dict)


class Delivery(Model):
    """The delivery activity's input: one event to one callback."""

    listener: Listener
    event: TmfEvent


__all__ = [
    "END_SIGNAL",
    "EVENTS_SIGNAL",
    "WORKFLOW_TYPE",
    "Delivery",
    "Listener",
    "ListenerState",
    "TmfEvent",
    "listener_workflow_id",
]
