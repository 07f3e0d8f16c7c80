"""The FulfillmentSystem port over the bus: a step's request goes to its target system's
request subject, stored by JetStream before the step waits; the answer comes back on the
response subject (workers/fulfillment_responses.py), not through this adapter."""

from __future__ import annotations

from nats.errors import Error as NatsError

from o2a import metrics
from o2a.bus import PUBLISH_TIMEOUT, BusConnection, BusUnavailable
from o2a.fulfillment_bus import request_message
from o2a.ports import FulfillmentRequest, FulfillmentUnavailable
from o2a.telemetry import producing


class BusFulfillment:
    """A FulfillmentRequester: holds nothing per waiting step, only the process's one
    connection to the bus."""

    def __init__(self, connection: BusConnection) -> None:
        self.connection = connection

    async def send(self, request: FulfillmentRequest, reply_token: bytes) -> None:
        """Raises FulfillmentUnavailable while NATS cannot store it, so the step retries."""
        message = request_message(self.connection.subjects, request, reply_token)
        try:
            js = await self.connection.jetstream()
            with producing(message.subject, message.headers) as headers:
                await js.publish(
                    message.subject, message.body, timeout=PUBLISH_TIMEOUT, headers=headers
                )
        except (BusUnavailable, NatsError, TimeoutError) as exc:
            raise FulfillmentUnavailable(
                f"the request could not be put on the bus: {exc or type(exc).__name__}"
            ) from exc
        metrics.bus_published(self.connection.subjects, message.subject)
