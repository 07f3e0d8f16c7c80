"""Delivering one TMF event to one hub listener: a JSON POST to its callback, signed with
the subscription's secret. Any answer but 2xx, or none, fails the attempt and the listener's
delivery workflow retries it with backoff."""

from __future__ import annotations

import json

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from o2a.notifications import signature
from workflows.contracts.listener_delivery import Delivery

LISTENER_UNAVAILABLE_TYPE = "ListenerUnavailable"
POST_TIMEOUT = 10.0
"""Seconds for one POST, within the workflow's start-to-close timeout."""


class NotificationActivities:
    @activity.defn(name="deliver_event")
    async def deliver_event(self, delivery: Delivery) -> None:
        """A listener that is down is BENIGN (retried, one warning line per attempt), not a
        traceback each time."""
        event = delivery.event
        body = json.dumps(event.document(), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-O2A-Event-Id": event.event_id,
            "X-O2A-Signature": signature(delivery.listener.secret, body),
        }
        try:
            async with httpx.AsyncClient(timeout=POST_TIMEOUT) as http:
                response = await http.post(
                    delivery.listener.callback, content=body, headers=headers
                )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            activity.logger.warning(
                "event %s not delivered to subscription %s on attempt %d, will retry: %s",
                event.event_id,
                delivery.listener.subscription_id,
                activity.info().attempt,
                exc,
            )
            raise ApplicationError(
                str(exc), type=LISTENER_UNAVAILABLE_TYPE, category=ApplicationErrorCategory.BENIGN
            ) from None
