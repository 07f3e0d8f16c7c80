"""Fulfillment systems on the bus: requests read from every target system's request subject
and answered by a FulfillmentSystem adapter, the way an ASAP or billing adapter would.

``o2a simulate`` runs it with the simulator (workers/simulate.py); tests run it with a
gated simulator to hold an answer. Each request is answered in a task of its own, so a
long SimulatedDelay holds up no other request (the message is kept ours with progress
acks meanwhile), and is acked only once its response is stored: a responder that dies
midway answers again after a restart, and the response's message ID makes that second
answer a duplicate the broker drops.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from o2a import metrics
from o2a.bus import PUBLISH_TIMEOUT, BusConnection, BusUnavailable
from o2a.bus_consumer import consume
from o2a.fulfillment_bus import (
    FulfillmentResponse,
    Outcome,
    ProtocolError,
    read_request,
    reply_headers,
    response_message,
)
from o2a.models import FaultDetail
from o2a.ports import (
    FulfillmentFault,
    FulfillmentRequest,
    FulfillmentSystem,
    FulfillmentUnavailable,
)
from o2a.telemetry import producing

ACK_WAIT = 30.0
PROGRESS_EVERY = ACK_WAIT / 3
"""A request still being worked on is acked as in progress this often, so it is not
delivered to another responder meanwhile."""
RETRY_DELAY = 2.0
MAX_IN_FLIGHT = 1_000

log = logging.getLogger(__name__)


class BusResponder:
    """``name`` names its durable consumer: responders of one name share the requests."""

    def __init__(self, connection: BusConnection, system: FulfillmentSystem, name: str) -> None:
        self._connection = connection
        self._system = system
        self._name = name

    @property
    def subject(self) -> str:
        return self._connection.subjects.fulfillment_request("*")

    async def run(self, stop: asyncio.Event) -> None:
        subjects = self._connection.subjects
        await consume(
            self._connection,
            self.subject,
            f"{subjects.stream_of(self.subject)}_{self._name.upper()}",
            self._handle,
            stop,
            ack_wait=ACK_WAIT,
            max_in_flight=MAX_IN_FLIGHT,
        )

    async def _handle(self, message: Msg) -> None:
        try:
            request = read_request(message.data)
            headers = reply_headers(message.headers)
        except ProtocolError as exc:
            log.warning("dropped a message on %s: %s", message.subject, exc)
            await message.term()
            return
        response = await self._answer(request, message)
        reply = response_message(self._connection.subjects, request, headers, response)
        try:
            js = await self._connection.jetstream()
            with producing(reply.subject, reply.headers) as headers:
                await js.publish(
                    reply.subject, reply.body, timeout=PUBLISH_TIMEOUT, headers=headers
                )
        except (BusUnavailable, NatsError, TimeoutError) as exc:
            log.warning("the response to %s was not stored (%s)", request.request_id, exc)
            await message.nak(delay=RETRY_DELAY)
            return
        metrics.bus_published(self._connection.subjects, reply.subject)
        await message.ack()
        log.info("%s %s: %s", request.target_system, request.request_id, response.outcome)

    async def _answer(self, request: FulfillmentRequest, message: Msg) -> FulfillmentResponse:
        work = asyncio.create_task(self._system.execute(request))
        try:
            while not (await asyncio.wait({work}, timeout=PROGRESS_EVERY))[0]:
                await message.in_progress()
            updates = work.result()
        except FulfillmentFault as fault:
            return FulfillmentResponse(
                request_id=request.request_id,
                outcome=Outcome.FAULT,
                fault=FaultDetail(
                    code=fault.code, message=fault.message, line_id=fault.line_id, step=fault.step
                ),
            )
        except FulfillmentUnavailable as exc:
            return FulfillmentResponse(
                request_id=request.request_id, outcome=Outcome.UNAVAILABLE, reason=str(exc)
            )
        except Exception as exc:  # a system's own failure: the step is retried, not the message
            log.exception("%s failed on %s", request.target_system, request.request_id)
            return FulfillmentResponse(
                request_id=request.request_id,
                outcome=Outcome.UNAVAILABLE,
                reason=f"{request.target_system} failed: {exc or type(exc).__name__}",
            )
        finally:
            work.cancel()
        return FulfillmentResponse(
            request_id=request.request_id, outcome=Outcome.COMPLETED, updates=updates
        )
