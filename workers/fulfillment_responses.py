"""The worker's side of fulfillment over the bus: the responses of every target system,
read by one durable consumer that all worker processes share, each completing the step
that waits for it by the task token it carries back.

Nothing is kept per waiting step: the step waits on the Temporal server, and the token in
the response is all it takes to find it, in whichever worker process reads the response,
also one started after the request went out. A response whose step no longer waits
(answered already, timed out, superseded by a revision, or its order gone) is logged in one
line and dropped; one that Temporal cannot take now is delivered again.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.fulfillment import unavailable_error
from o2a.bus import BusConnection
from o2a.bus_consumer import consume
from o2a.faults import fault_error
from o2a.fulfillment_bus import FulfillmentResponse, Outcome, ProtocolError, read_response

ACK_WAIT = 30.0
RETRY_DELAY = 2.0
"""Seconds before a response Temporal could not take is delivered again."""
MAX_IN_FLIGHT = 256
NOT_WAITING = frozenset(
    {RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION}
)
"""Temporal's answer when no step waits for the token (or it is not one of its tokens)."""

log = logging.getLogger(__name__)


class FulfillmentResponses:
    def __init__(self, client: Client, connection: BusConnection) -> None:
        self._client = client
        self._connection = connection

    @property
    def durable(self) -> str:
        """One per installation (subject prefix): every worker process reads through it."""
        subjects = self._connection.subjects
        return f"{subjects.stream_of(self.subject)}_RESPONSES"

    @property
    def subject(self) -> str:
        return self._connection.subjects.fulfillment_response("*")

    async def run(self, stop: asyncio.Event) -> None:
        await consume(
            self._connection,
            self.subject,
            self.durable,
            self._handle,
            stop,
            ack_wait=ACK_WAIT,
            max_in_flight=MAX_IN_FLIGHT,
        )

    async def _handle(self, message: Msg) -> None:
        try:
            response, token = read_response(message.data, message.headers)
        except ProtocolError as exc:
            log.warning("dropped a message on %s: %s", message.subject, exc)
            await message.term()
            return
        try:
            await self._settle(response, token)
        except RPCError as err:
            if err.status in NOT_WAITING:
                log.info(
                    "dropped the %s response to %s: no step waits for it (%s)",
                    response.outcome,
                    response.request_id,
                    err.message,
                )
                await message.ack()
                return
            log.warning(
                "Temporal did not take the response to %s (%s); it comes again",
                response.request_id,
                err.message,
            )
            await message.nak(delay=RETRY_DELAY)
            return
        await message.ack()

    async def _settle(self, response: FulfillmentResponse, token: bytes) -> None:
        """Through the client's data converter, as the activity would have returned or
        raised it: a fault is the same fallout as inline, a refusal is retried."""
        step = self._client.get_async_activity_handle(task_token=token)
        if response.outcome is Outcome.COMPLETED:
            await step.complete(response.updates)
        elif response.outcome is Outcome.FAULT:
            assert response.fault is not None  # read_response checks it
            await step.fail(fault_error(response.fault))
        else:
            await step.fail(unavailable_error(response.reason or "the system refused the call"))
