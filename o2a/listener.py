"""The inbound door on the bus: CRM's ProcessSalesOrderFulfillmentEBM, taken from
``o2a.crm.salesorder`` to the application service (``OrderService.receive``: a new order
starts, a higher revision is signalled, FulfillmentModeCode CANCEL cancels). The rules and
why: docs/architecture.md, "Inbound on the bus".

A durable pull consumer with explicit acks. A message is acked only once its order was
started or signalled, it was a duplicate, or it was dead-lettered:
- one that can never succeed (not well-formed, a DTD, invalid, an unknown product class, an
  order that refuses it) goes to the dead-letter subject as an AIA Fault naming it;
- one that failed for a passing cause (Temporal unreachable) is NAKed to come again after
  an exponential backoff, and the listener pauses as long: messages wait in the stream;
- one delivered ``max_deliveries`` times that fails still is dead-lettered with the last
  reason, so nothing loops for ever.
Different orders of a batch are handled side by side, one order's messages in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from temporalio.client import Client
from temporalio.service import RPCError

from o2a import ids, metrics
from o2a.bus import MSG_ID, PUBLISH_TIMEOUT, REASON, BusConnection, BusUnavailable, Subjects
from o2a.bus_messages import document_message_id
from o2a.client import ConnectionFailed, connect
from o2a.config import Settings
from o2a.errors import (
    InputError,
    MalformedDocument,
    NoWorkerError,
    OrderConflictError,
    StaleRevision,
    UnknownOrderError,
)
from o2a.inbound import envelope, parse_order
from o2a.models import CustomerOrder
from o2a.outbound import Fault, render_aia_fault
from o2a.service import OrderIntake, OrderService
from o2a.telemetry import consuming

MAX_DELIVERIES = 20
HANDLE_TIMEOUT = 20.0
"""Seconds one message may take with Temporal (a hung call is a passing failure)."""
ACK_WAIT = 60.0
"""Seconds a fetched message stays this listener's before NATS delivers it again (one killed
mid-message): well over ``HANDLE_TIMEOUT``."""
MAX_ACK_PENDING = 256
"""Messages out and not yet acked, across listeners: while Temporal is down the stream
stops handing out more once this many wait for their redelivery."""
BATCH = 32
FETCH_WAIT = 1.0
"""Seconds a fetch waits for messages; also how soon a stop is noticed."""
MAX_REASON = 1000
NATS_RETRY_LONGEST = 30.0

PASSING = (ConnectionFailed, NoWorkerError, RPCError, TimeoutError)
"""Failures that may pass: Temporal unreachable or slow, no worker answering."""
REFUSING = (OrderConflictError, UnknownOrderError, InputError)
"""The order refuses the message (it has ended; no order to cancel; too big)."""

CORRECT_IT = "Correct the document and send it again; nothing was started or changed"
SEE_THE_ORDER = (
    "See the order (o2a status ORDER): send a new order, or a revision higher than its current"
)

ClientFactory = Callable[[], Awaitable[Client]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Redelivery:
    """When a message that failed for a passing cause comes again: ``first`` seconds after
    its first delivery, twice as long after each next one up to ``longest``; its
    ``max_deliveries``-th failure dead-letters it. The defaults wait out a Temporal outage of
    about 25 minutes."""

    max_deliveries: int = MAX_DELIVERIES
    first: float = 1.0
    longest: float = 120.0

    def delay(self, delivery: int) -> float:
        return min(self.first * 2.0 ** min(delivery - 1, 32), self.longest)


@dataclass(frozen=True)
class Refusal:
    """Why a message can never succeed: the AIA fault code, the reason, what to do."""

    code: str
    reason: str
    action: str = CORRECT_IT


@dataclass(frozen=True)
class _Letter:
    """A fetched message, read: its order, or why it can never be one."""

    msg: Msg
    order: CustomerOrder | None
    refusal: Refusal | None

    @property
    def sequence(self) -> int:
        return self.msg.metadata.sequence.stream

    @property
    def delivery(self) -> int:
        return self.msg.metadata.num_delivered

    @property
    def key(self) -> str:
        """Letters of one order are taken in turn, in stream order."""
        return f"order {self.order.order_number}" if self.order else f"#{self.sequence}"

    @property
    def label(self) -> str:
        if self.order is None:
            return f"#{self.sequence}"
        return f"#{self.sequence} order {self.order.order_number} revision {self.order.revision}"

    @property
    def fields(self) -> dict[str, str | None]:
        """The order its log lines name (o2a/logs.py)."""
        return {"order": self.order.order_number if self.order else None}

    @property
    def message_id(self) -> str:
        """The revise or cancel it makes is named by it, the same on every redelivery."""
        return (self.msg.headers or {}).get(MSG_ID) or document_message_id(self.msg.data)


class Listener:
    def __init__(
        self,
        settings: Settings,
        connect_client: ClientFactory | None = None,
        redelivery: Redelivery | None = None,
    ) -> None:
        if settings.nats_url is None:
            raise InputError("O2A_NATS_URL is not set: the listener needs a NATS server")
        self.subjects = Subjects(settings.subject_prefix)
        self.stream = self.subjects.stream_of(self.subjects.sales_order)
        self.consumer = f"{self.stream}_LISTENER"
        self._settings = settings
        self._intake = OrderIntake(settings)
        self._connect = connect_client or (lambda: connect("o2a-listener"))
        self._redelivery = redelivery or Redelivery()
        self._bus = BusConnection(settings.nats_url, self.subjects, "o2a-listener")
        self._service: OrderService | None = None
        self._service_lock = asyncio.Lock()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; the batch in hand is finished first."""
        subscription = None
        try:
            subscription = await self._subscribe(stop)
            if subscription is None:
                return
            log.info(
                "consuming %s as durable consumer %s; refused messages to %s",
                self.subjects.sales_order,
                self.consumer,
                self.subjects.dead_letter,
            )
            while not stop.is_set():
                try:
                    batch = await subscription.fetch(BATCH, timeout=FETCH_WAIT)
                except TimeoutError:  # nothing new, or NATS away (the client reconnects)
                    continue
                except NatsError as exc:
                    log.debug("fetch failed: %s", exc or type(exc).__name__)
                    await _wait(stop, FETCH_WAIT)
                    continue
                metrics.bus_fetched(self.consumer, batch)
                pause = await self._take(batch)
                if pause is not None:
                    await _wait(stop, pause)
        finally:
            with contextlib.suppress(NatsError, TimeoutError):
                if subscription is not None:  # the durable consumer stays
                    await subscription.unsubscribe()
                await self._bus.close()
            log.info("stopped")

    async def _subscribe(self, stop: asyncio.Event) -> JetStreamContext.PullSubscription | None:
        """The durable consumer, made or brought to this config; NATS not there yet is
        waited for (the listener may start before it)."""
        config = ConsumerConfig(
            durable_name=self.consumer,
            filter_subject=self.subjects.sales_order,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT,
            max_ack_pending=MAX_ACK_PENDING,
            max_deliver=-1,  # the listener dead-letters; NATS must never drop a message itself
        )
        delay = 1.0
        while not stop.is_set():
            try:
                js = await self._bus.jetstream()
                await js.add_consumer(self.stream, config)
                return await js.pull_subscribe_bind(durable=self.consumer, stream=self.stream)
            except (BusUnavailable, NatsError, TimeoutError) as exc:
                log.warning(
                    "cannot consume %s yet (%s); trying again in %gs",
                    self.subjects.sales_order,
                    exc or type(exc).__name__,
                    delay,
                )
                await _wait(stop, delay)
                delay = min(delay * 2, NATS_RETRY_LONGEST)
        return None

    async def _take(self, batch: list[Msg]) -> float | None:
        """Settles a batch; the pause before the next fetch if something failed passingly."""
        orders: dict[str, list[_Letter]] = {}
        for msg in batch:
            letter = await asyncio.to_thread(self._read, msg)
            orders.setdefault(letter.key, []).append(letter)
        async with asyncio.TaskGroup() as group:
            turns = [group.create_task(self._in_turn(letters)) for letters in orders.values()]
        pauses = [pause for turn in turns if (pause := turn.result()) is not None]
        return min(pauses, default=None)

    def _read(self, msg: Msg) -> _Letter:
        """Parsed and validated as every door does; the order number is kept for the log
        when only the validation fails."""
        order = None
        try:
            order = parse_order(msg.data)
            self._intake.validated(order)
            return _Letter(msg, order, None)
        except MalformedDocument as exc:
            return _Letter(msg, order, Refusal("MALFORMED_DOCUMENT", str(exc)))
        except InputError as exc:
            return _Letter(msg, order, Refusal("INVALID_ORDER", str(exc)))

    async def _in_turn(self, letters: list[_Letter]) -> float | None:
        """One order's letters in stream order: once one waits, the later ones wait too
        (a revision must not overtake its order)."""
        waiting: _Letter | None = None
        pauses: list[float | None] = []
        for n, letter in enumerate(letters):
            if n:  # it has waited for the ones before it: its ack time starts again
                with contextlib.suppress(NatsError, TimeoutError):
                    await letter.msg.in_progress()
            if waiting is not None and letter.refusal is None:
                pauses.append(await self._retry(letter, f"waits for {waiting.label}"))
                continue
            with consuming(letter.msg.subject, letter.msg.headers):  # CRM's trace, if any
                pause = await self._handle(letter)
            if pause is not None:
                waiting = letter
            pauses.append(pause)
        return min((p for p in pauses if p is not None), default=None)

    async def _handle(self, letter: _Letter) -> float | None:
        """Settles one message: a pause when it is to come again."""
        if letter.refusal is not None:
            await self._dead_letter(letter, letter.refusal)
            return None
        try:
            outcome = await asyncio.wait_for(self._receive(letter), HANDLE_TIMEOUT)
        except StaleRevision as exc:
            await self._settle(letter, letter.msg.ack(), f"duplicate, nothing new ({exc})")
            return None
        except REFUSING as exc:
            await self._dead_letter(letter, Refusal("ORDER_REFUSED", str(exc), SEE_THE_ORDER))
            return None
        except PASSING as exc:
            return await self._retry(letter, _passing_reason(exc))
        except Exception as exc:  # a bug: told in full, and retried like a passing failure
            log.exception("%s: unexpected failure", letter.label, extra=letter.fields)
            return await self._retry(letter, f"{type(exc).__name__}: {exc}")
        await self._settle(letter, letter.msg.ack(), outcome)
        return None

    async def _receive(self, letter: _Letter) -> str:
        assert letter.order is not None
        service = await self._order_service()
        receipt = await service.receive(letter.order, letter.message_id)
        if receipt is None:
            return f"started (workflow {ids.order_workflow_id(letter.order.order_number)})"
        return f"{receipt.kind} signalled (request {receipt.request_id})"

    async def _order_service(self) -> OrderService:
        """Temporal is connected to on first need, and again after a failed connect."""
        async with self._service_lock:
            if self._service is None:
                self._service = OrderService(await self._connect(), self._settings)
            return self._service

    async def _retry(self, letter: _Letter, reason: str) -> float | None:
        """NAKed to come again later, or dead-lettered on its last delivery."""
        delivery, most = letter.delivery, self._redelivery.max_deliveries
        if delivery >= most:
            action = (
                "Make Temporal reachable, then send the message again (it stays in stream "
                f"{self.stream} as sequence {letter.sequence})"
            )
            refusal = Refusal("DELIVERIES_EXHAUSTED", f"failed {delivery} times: {reason}", action)
            await self._dead_letter(letter, refusal)
            return None
        delay = self._redelivery.delay(delivery)
        outcome = f"{reason}; delivery {delivery} of {most}, again in {delay:g}s"
        await self._settle(letter, letter.msg.nak(delay=delay), outcome, logging.WARNING)
        return delay

    async def _dead_letter(self, letter: _Letter, refusal: Refusal) -> None:
        """An AIA Fault on the dead-letter subject, stored once however often the message
        comes (its ID is the stored message's), then the message is acked."""
        order_number = letter.order.order_number if letter.order else None
        message_id = ids.dead_letter_message_id(order_number, letter.sequence, letter.msg.data)
        reason = " ".join(refusal.reason.split())[:MAX_REASON]
        fault = Fault(
            code=refusal.code,
            text=reason,
            severity="ERROR",
            stack=f"{self.subjects.sales_order} sequence {letter.sequence} in stream "
            f"{self.stream}, delivery {letter.delivery}",
            faulting_service=self.consumer,
            implementation="JetStreamConsumer",
            corrective_action=refusal.action,
            incident_id=message_id,
        )
        found = envelope(letter.msg.data)
        document = render_aia_fault(
            message_id, fault, found.ebm_id if found else None, datetime.now(UTC)
        )
        try:
            js = await self._bus.jetstream()
            await js.publish(
                self.subjects.dead_letter,
                document,
                timeout=PUBLISH_TIMEOUT,
                headers={MSG_ID: message_id, REASON: reason},
            )
        except (BusUnavailable, NatsError, TimeoutError) as exc:
            log.warning(
                "%s: not dead-lettered yet (%s); NATS delivers it again",
                letter.label,
                exc or type(exc).__name__,
            )
            return
        outcome = f"dead-lettered as {message_id}: {reason}"
        await self._settle(letter, letter.msg.ack(), outcome, logging.WARNING)

    async def _settle(
        self, letter: _Letter, answer: Awaitable[None], outcome: str, level: int = logging.INFO
    ) -> None:
        """Ack or NAK, and the message's one log line (a warning when it did not go through)."""
        try:
            await answer
        except (NatsError, TimeoutError) as exc:
            log.warning(
                "%s: %s, but NATS did not hear so (%s): it comes again",
                letter.label,
                outcome,
                exc or type(exc).__name__,
                extra=letter.fields,
            )
            return
        log.log(level, "%s: %s", letter.label, outcome, extra=letter.fields)


def _passing_reason(exc: BaseException) -> str:
    if isinstance(exc, RPCError):
        return f"Temporal: {exc.status.name if exc.status else 'error'}: {exc.message}"
    if isinstance(exc, TimeoutError):
        return f"no answer from Temporal within {HANDLE_TIMEOUT:g}s"
    return str(exc)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """A pause that a stop cuts short."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_listener(
    settings: Settings,
    stop: asyncio.Event,
    *,
    connect_client: ClientFactory | None = None,
    redelivery: Redelivery | None = None,
) -> None:
    """The listener until ``stop`` is set (a bus service of `o2a up`, and `o2a listen`).
    Temporal down, at start or later, is waited out message by message. One log line per
    message (o2a/logs.py, set up by the command)."""
    await Listener(settings, connect_client, redelivery).run(stop)
