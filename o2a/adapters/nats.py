"""The MessageBus port on NATS JetStream: each EBM to its subject, deduplicated by the
broker on its EBMID (``Nats-Msg-Id``), done only once JetStream has stored it."""

from __future__ import annotations

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NotFoundError

from o2a import metrics
from o2a.bus import MSG_ID, PUBLISH_TIMEOUT, BusConnection, BusUnavailable
from o2a.ports import Destination
from o2a.telemetry import producing


class NatsBus:
    def __init__(self, connection: BusConnection) -> None:
        self._connection = connection

    async def publish(self, destination: Destination, message_id: str, document: bytes) -> bytes:
        """A retried publish of the same ID inside the duplicate window is acknowledged as
        a duplicate and stored once; the stored body is then read back (by the sequence the
        acknowledgement names) and returned, as the port says. Raises
        BusUnavailable while NATS cannot take it, so the activity retries. The current
        trace goes with it (``traceparent``)."""
        js = await self._connection.jetstream()
        subject = self._connection.subjects.of(destination)
        try:
            with producing(subject, {MSG_ID: message_id}) as headers:
                ack = await js.publish(subject, document, timeout=PUBLISH_TIMEOUT, headers=headers)
            held = await _stored(js, ack) if ack.duplicate else document
        except (NatsError, TimeoutError) as exc:
            raise BusUnavailable(
                f"NATS did not store {message_id}: {exc or type(exc).__name__}"
            ) from exc
        metrics.bus_published(self._connection.subjects, subject)
        return held


async def _stored(js: JetStreamContext, ack: PubAck) -> bytes:
    """The body a duplicate acknowledgement points at; empty when it is gone from the
    stream (limits): what cannot be seen is not taken for the sender's own."""
    try:
        stored = await js.get_msg(ack.stream, ack.seq)
    except NotFoundError:
        return b""
    return stored.data or b""
