"""The event hub's subscriptions: a listener's TMF query (``EventFilter``) and which
listeners an order's events go to (``fanout``). Pure functions of their input, run inside
the hub workflow (``workflows/notification_hub.py``) and by the notifiers and the hub's
use cases (``o2a/notifications.py``, which also makes the events), so linted as workflow
code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl, urlsplit

from o2a.errors import InputError
from workflows.contracts.listener_delivery import TmfEvent
from workflows.contracts.notification_hub import Fanout, Subscription


class EventType(StrEnum):
    CREATE = "ProductOrderCreateEvent"
    STATE_CHANGE = "ProductOrderStateChangeEvent"
    MILESTONE = "ProductOrderMilestoneEvent"
    JEOPARDY_ALERT = "ProductOrderJeopardyAlertEvent"
    ERROR_MESSAGE = "ProductOrderErrorMessageEvent"
    CANCEL_STATE_CHANGE = "CancelProductOrderStateChangeEvent"


CANCEL_TASK = "cancelProductOrder"
"""The resource a CancelProductOrderStateChangeEvent carries."""


ORDER_KEYS = frozenset(
    {"id", "productOrder.id", "event.productOrder.id", "externalId", "productOrder.externalId"}
)
"""Filter keys meaning the order's id (the o2a order number, which is its first externalId)."""
EVENT_TYPE_KEY = "eventType"


@dataclass(frozen=True)
class EventFilter:
    """A subscription's TMF query: ``eventType`` (a comma list) and equality on the order's
    id; several keys must all hold; empty: every event."""

    event_types: frozenset[str] = frozenset()
    order_ids: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, query: str) -> EventFilter:
        event_types: set[str] = set()
        order_ids: set[str] = set()
        known = {t.value for t in EventType}
        for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=True):
            values = {v.strip() for v in value.split(",") if v.strip()}
            if not values:
                raise InputError(f"query: {key} has no value")
            if key == EVENT_TYPE_KEY:
                unknown = sorted(values - known)
                if unknown:
                    raise InputError(
                        f"query: unknown eventType {', '.join(unknown)}; known: "
                        + ", ".join(sorted(known))
                    )
                event_types |= values
            elif key in ORDER_KEYS:
                order_ids |= values
            else:
                raise InputError(
                    f"query: cannot filter on {key!r}; filters: {EVENT_TYPE_KEY}, "
                    + ", ".join(sorted(ORDER_KEYS))
                )
        return cls(frozenset(event_types), frozenset(order_ids))

    def matches(self, event: TmfEvent) -> bool:
        return (not self.event_types or event.event_type in self.event_types) and (
            not self.order_ids or event_order_id(event) in self.order_ids
        )


def event_order_id(event: TmfEvent) -> str:
    """The order an event is about: its productOrder, or the one its cancel task cancels."""
    resource = event.event.get(CANCEL_TASK, event.event)
    order_id: str = resource["productOrder"]["id"]
    return order_id


def fanout(subscriptions: Sequence[Subscription], events: Sequence[TmfEvent]) -> list[Fanout]:
    """Each subscription that wants any of the events, with those events in order."""
    fanouts = []
    for subscription in subscriptions:
        wanted = EventFilter.parse(subscription.query)
        matching = [event for event in events if wanted.matches(event)]
        if matching:
            fanouts.append(Fanout(subscription=subscription, events=matching))
    return fanouts


def check_callback(callback: str) -> None:
    parts = urlsplit(callback)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"callback: {callback!r} is not an http or https URL")
