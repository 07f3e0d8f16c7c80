"""A durable JetStream pull consumer run as a loop until told to stop.

Durable, so messages published while no process reads them wait in the stream; shared by
every process that runs it under the same name, so they split the work; explicit acks, so
a message is done only once its handler says so, and one whose handler died (or whose
process stopped) is delivered again after the ack wait. Each message gets a task of its
own: a slow one holds up no other. A bus that is down, or goes away, is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from o2a import metrics
from o2a.bus import BusConnection, BusUnavailable
from o2a.telemetry import consuming

Handler = Callable[[Msg], Coroutine[Any, Any, None]]
"""Acks (or naks, or terms) its message; an exception leaves it for redelivery."""

FETCH_WAIT = 1.0
"""Seconds a fetch waits for messages; also how soon a stop is noticed."""
BATCH = 64
RECONNECT_EVERY = 2.0

log = logging.getLogger(__name__)


async def consume(
    connection: BusConnection,
    subject: str,
    durable: str,
    handler: Handler,
    stop: asyncio.Event,
    *,
    ack_wait: float,
    max_in_flight: int,
) -> None:
    """Hand every message on ``subject`` to ``handler`` until ``stop`` is set. Handlers
    still running then are cancelled; their messages, not acked, come again later."""
    in_flight: set[asyncio.Task[None]] = set()
    failing = False  # one warning per outage, not one per attempt
    try:
        while not stop.is_set():
            try:
                reader = await _subscribe(connection, subject, durable, ack_wait)
            except (BusUnavailable, NatsError, TimeoutError) as exc:
                (log.debug if failing else log.warning)(
                    "cannot read %s (%s); trying again every %g s", subject, exc, RECONNECT_EVERY
                )
                failing = True
                await _pause(stop, RECONNECT_EVERY)
                continue
            if failing:
                log.warning("reading %s again", subject)
                failing = False
            try:
                await _read(reader, durable, handler, stop, in_flight, max_in_flight)
            except NatsError as exc:
                log.warning("reading %s failed (%s); trying again", subject, exc)
                failing = True
                await _pause(stop, RECONNECT_EVERY)
            finally:
                with contextlib.suppress(NatsError, TimeoutError):
                    await reader.unsubscribe()  # the durable consumer stays
    finally:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)


async def _subscribe(
    connection: BusConnection, subject: str, durable: str, ack_wait: float
) -> JetStreamContext.PullSubscription:
    js = await connection.jetstream()
    return await js.pull_subscribe(
        subject,
        durable=durable,
        stream=connection.subjects.stream_of(subject),
        config=ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=-1,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=subject,
        ),
    )


async def _read(
    reader: JetStreamContext.PullSubscription,
    durable: str,
    handler: Handler,
    stop: asyncio.Event,
    in_flight: set[asyncio.Task[None]],
    max_in_flight: int,
) -> None:
    while not stop.is_set():
        room = max_in_flight - len(in_flight)
        if room <= 0:
            await asyncio.wait(in_flight, timeout=FETCH_WAIT, return_when=asyncio.FIRST_COMPLETED)
            continue
        try:
            messages = await reader.fetch(min(room, BATCH), timeout=FETCH_WAIT)
        except TimeoutError:
            continue
        metrics.bus_fetched(durable, messages)
        for message in messages:
            task = asyncio.create_task(_traced(handler, message))
            in_flight.add(task)
            task.add_done_callback(_finished(in_flight))


async def _traced(handler: Handler, message: Msg) -> None:
    """The handler in a span of the trace the message carries (o2a/telemetry.py)."""
    with consuming(message.subject, message.headers):
        await handler(message)


def _finished(in_flight: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a message handler failed; it comes again", exc_info=task.exception())

    return done


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
