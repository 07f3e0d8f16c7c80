"""`o2a bench --via bus`: orders published to the inbound subject, as CRM sends them, each
measured from its publish to its workflow's completion, with fulfillment over the bus (the
`o2a up` listener, worker and `o2a simulate` do the work).

The baseline runs first, on the same Temporal server in the same run: the same number of
orders submitted directly to a worker of the bench's own (in this process, on a task queue
of its own) with the inline simulator. Its EBMs go to the bus too (sink ``nats``), so the
ratio prices the inbound listener and the fulfillment systems answering over the bus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from o2a import ids
from o2a.adapters import Wiring
from o2a.big_orders import running
from o2a.bus import DEFAULT_URL, BusConnection, BusUnavailable, Subjects
from o2a.bus_messages import document_message_id, publish_document
from o2a.client import connect
from o2a.config import BUS_SINKS, DEFAULT_FULFILLMENT, Settings
from o2a.errors import InputError
from o2a.listener import Listener
from o2a.service import OrderIntake, OrderService
from starters.bench import (
    BenchOptions,
    RunFigures,
    _completed,
    _drive,
    direct_run,
    percentiles,
    ratio,
    summary,
)
from workers.worker import build_worker

STARTED_POLL = 0.05
"""Seconds between looks for the workflow the listener starts for a published order."""
TARGET = 0.8
"""Issue 11: the bus path at least this share of the direct path's throughput."""


async def run_bus_bench(settings: Settings, options: BenchOptions) -> int:
    if options.orders < 1 or options.concurrency < 1:
        raise InputError("--orders and --concurrency must be at least 1")
    url = settings.nats_url or DEFAULT_URL
    on_bus = dataclasses.replace(settings, nats_url=url)
    order = OrderIntake(settings).load_order(options.sample)
    document = options.sample.read_bytes()
    bus = BusConnection(url, Subjects(on_bus.subject_prefix), "o2a-bench")
    try:
        await _listener_consumes(bus, on_bus)
        client = await connect("o2a-bench")
        run_id = uuid.uuid4().hex[:8]
        own = dataclasses.replace(
            on_bus,
            task_queue=f"{settings.task_queue}-bench-{run_id}",
            fulfillment=DEFAULT_FULFILLMENT,
            sinks=BUS_SINKS,
        )
        print(
            f"o2a bench --via bus: {options.orders} x {options.sample.name} "
            f"({len(order.lines)} lines), concurrency {options.concurrency}, NATS "
            f"{bus.url}; baseline on an in-process worker on task queue {own.task_queue!r}, "
            f"inline simulator, EBMs to the bus"
        )
        wiring = Wiring(own, "o2a-bench-worker")
        try:
            async with running(build_worker(client, own, wiring=wiring)):
                direct = await direct_run(
                    "direct", client, OrderService(client, own), order, options, run_id
                )
        finally:
            await wiring.close()
        print(summary("direct, inline simulator", direct.run))
        print(percentiles("submit latency ", direct.submits))
        via, publishes = await _via_bus(client, bus, options, document, order.order_number, run_id)
    finally:
        await bus.close()
    print(summary(f"via the bus ({bus.subjects.sales_order}), fulfillment over the bus", via))
    print(percentiles("publish latency", publishes))
    print(ratio("via bus / direct inline", via, direct.run))
    met = via.orders_per_second >= TARGET * direct.run.orders_per_second
    print(f"target {TARGET}x of the direct path's throughput: {'met' if met else 'not met'}")
    return 0


async def _listener_consumes(bus: BusConnection, settings: Settings) -> None:
    """One line (exit 2) when there is no bus, or no listener's durable consumer on it."""
    listener = Listener(settings)
    try:
        js = await bus.jetstream()
        await js.consumer_info(listener.stream, listener.consumer)
    except BusUnavailable as exc:
        raise InputError(f"--via bus needs the bus (O2A_NATS_URL): {exc}") from None
    except NotFoundError:
        raise InputError(
            f"--via bus needs a listener (`o2a listen` or `o2a up`): no durable consumer "
            f"{listener.consumer} on stream {listener.stream} at {bus.url}"
        ) from None
    except (NatsError, TimeoutError) as exc:
        raise InputError(f"--via bus: NATS at {bus.url}: {exc or type(exc).__name__}") from None


async def _via_bus(
    client: Client,
    bus: BusConnection,
    options: BenchOptions,
    document: bytes,
    sample_number: str,
    run_id: str,
) -> tuple[RunFigures, RunFigures]:
    """Each order published (its own order number and EBMID) and waited for until its
    workflow completed; the figures of the orders, and of the publishes."""
    number = f">{sample_number}<".encode()
    ebm_id = f">{document_message_id(document)}<".encode()
    subject = bus.subjects.sales_order
    publishes: list[float] = []

    async def one_publish(i: int) -> None:
        order_number = f"BUS-{run_id}-{i:05d}"
        body = document.replace(number, f">{order_number}<".encode()).replace(
            ebm_id, f">bench-{run_id}-{i:05d}<".encode()
        )
        loop = asyncio.get_running_loop()
        began = loop.time()
        ack = await publish_document(bus, subject, body)
        publishes.append(loop.time() - began)
        if ack.duplicate:
            raise RuntimeError(f"{order_number}: the broker had its EBMID already")
        await _started_and_completed(client, ids.order_workflow_id(order_number))

    via = await _drive("via bus", options, one_publish)
    return via, RunFigures("publish", len(publishes), via.seconds, publishes)


async def _started_and_completed(client: Client, workflow_id: str) -> None:
    """The listener starts the workflow when it takes the message: until then, looked for."""
    while True:
        try:
            await _completed(client, workflow_id)
            return
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
        await asyncio.sleep(STARTED_POLL)
