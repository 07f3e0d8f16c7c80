"""The o2a worker: every workflow (orders, their SOM children, the event hub and its
listeners' deliveries) and every activity on one task queue.

Several processes (``--processes N``) share the queue for throughput on multi-core hosts;
each process is a complete worker, so any of them may be killed and the others carry on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import multiprocessing
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Interceptor as WorkerInterceptor
from temporalio.worker import Replayer, Worker, WorkflowRunner

from activities.bare import bare_noop
from activities.decomposition import DecompositionActivities
from activities.fulfillment import FulfillmentActivities
from activities.messaging import MessagingActivities
from activities.notifications import NotificationActivities
from o2a import metrics
from o2a.adapters import FulfillmentAdapter, Wiring, fulfillment_system, message_bus
from o2a.client import connect, interceptors
from o2a.config import Settings
from o2a.encryption import warn_if_unencrypted
from o2a.logs import configure_logging
from o2a.models import FulfillmentRoute, RouteMode
from o2a.notifications import Notifier, TemporalNotifier
from o2a.ports import FulfillmentRequester, MessageBus
from o2a.telemetry import shutdown_tracing
from o2a.versioning import deployment_config, version_text
from o2a.workflow_runner import ContextFreeRunner
from workers.fulfillment_responses import FulfillmentResponses
from workflows.auto_upgrade import AUTO_UPGRADING
from workflows.bare import BareChildWorkflow, BareOrderWorkflow
from workflows.customer_order import CustomerOrderWorkflow
from workflows.listener_delivery import ListenerDeliveryWorkflow
from workflows.notification_hub import NotificationHubWorkflow
from workflows.plain import PlainChildWorkflow, PlainOrderWorkflow
from workflows.provisioning_order import ProvisioningOrderWorkflow

WORKFLOWS = [
    CustomerOrderWorkflow,
    ProvisioningOrderWorkflow,
    BareOrderWorkflow,
    BareChildWorkflow,
    PlainOrderWorkflow,
    PlainChildWorkflow,
    NotificationHubWorkflow,
    ListenerDeliveryWorkflow,
]
ORPHAN_CHECK_SECONDS = 1.0
MAX_CONCURRENT_ACTIVITIES = 500
MAX_CONCURRENT_WORKFLOW_TASKS = 100
WORKFLOW_ACTIVATION_THREADS = 4
"""Workflow activations are pure Python holding the GIL, so they run one at a time however
many threads carry them; the SDK's default of one thread per concurrent workflow task (100)
only adds hand-offs between threads (README, Benchmark). Four, not one: a long
activation (a big order's) leaves three for the others, since the SDK's 2 s deadlock
detector counts the time an activation waits for a thread (a workflow stuck in a loop
would hold one for good, where it would slow all hundred). The pool goes with the worker:
its threads end once the worker is gone (ThreadPoolExecutor's own weakref)."""


def build_replayer(converter: DataConverter) -> Replayer:
    """Replays a history as this worker runs it: its workflows, its runner (the sandbox
    passing every module through) and its workflow interceptors."""
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=converter,
        workflow_runner=ContextFreeRunner(converter),
        interceptors=[i for i in interceptors() if isinstance(i, WorkerInterceptor)],
    )


def build_worker(
    client: Client,
    settings: Settings,
    *,
    wiring: Wiring | None = None,
    bus: MessageBus | None = None,
    fulfillment: FulfillmentAdapter | None = None,
    notifier: Notifier | None = None,
    workflow_runner: WorkflowRunner | None = None,
) -> Worker:
    """The adapters the settings name, unless given (tests bring their own), sharing the
    ``wiring`` (its bus connection); the caller closes it. Events go to the hub of the
    worker's task queue. The orders this worker plans reach their fulfillment systems the
    way its adapter does (inline, or over the bus: then run it with ``serving``, which
    also reads the systems' responses)."""
    wiring = wiring or Wiring(settings, "o2a-worker")
    messaging = MessagingActivities(
        bus or message_bus(wiring), notifier or TemporalNotifier(client, settings.task_queue)
    )
    adapter = fulfillment or fulfillment_system(wiring)
    if isinstance(adapter, FulfillmentRequester):
        mode, system, requester = RouteMode.BUS, None, adapter
    else:
        mode, system, requester = RouteMode.INLINE, adapter, None
    fulfillment_activities = FulfillmentActivities(system, requester, messaging)
    route = FulfillmentRoute(mode=mode, deadline_seconds=settings.fulfillment_deadline)
    decomposition = DecompositionActivities(settings.catalog_path, route)
    _ = decomposition.catalog  # a broken catalog stops the worker at start, not an order
    notifications = NotificationActivities()
    versioning = deployment_config(settings.deployment_name, settings.build_id)
    workflows = WORKFLOWS if versioning is None else [AUTO_UPGRADING.get(w, w) for w in WORKFLOWS]
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=workflows,
        activities=[
            decomposition.decompose_order,
            messaging.send_provisioning_order,
            messaging.send_fulfillment_update,
            messaging.send_sales_order_update,
            messaging.deliver_sales_order_update,
            messaging.send_fallout,
            messaging.send_jeopardy,
            fulfillment_activities.fulfill,
            fulfillment_activities.fulfill_and_report,
            fulfillment_activities.announce_fulfill_and_report,
            fulfillment_activities.request_fulfillment,
            notifications.deliver_event,
            bare_noop,
        ],
        workflow_runner=ContextFreeRunner(client.data_converter, workflow_runner),
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_concurrent_workflow_tasks=MAX_CONCURRENT_WORKFLOW_TASKS,
        max_cached_workflows=settings.max_cached_workflows,
        deployment_config=versioning,
        workflow_task_executor=concurrent.futures.ThreadPoolExecutor(
            max_workers=WORKFLOW_ACTIVATION_THREADS, thread_name_prefix="temporal_workflow_"
        ),
    )


@asynccontextmanager
async def serving(
    client: Client,
    settings: Settings,
    *,
    wiring: Wiring,
    bus: MessageBus | None = None,
    fulfillment: FulfillmentAdapter | None = None,
) -> AsyncIterator[Worker]:
    """The worker running and, when its fulfillment systems are on the bus, the consumer of
    their responses beside it, for the block; the caller closes the ``wiring``."""
    adapter = fulfillment or fulfillment_system(wiring)
    worker = build_worker(client, settings, wiring=wiring, bus=bus, fulfillment=adapter)
    stop = asyncio.Event()
    async with worker:
        if not isinstance(adapter, FulfillmentRequester):
            yield worker
            return
        responses = asyncio.create_task(FulfillmentResponses(client, wiring.bus()).run(stop))
        try:
            yield worker
        finally:
            stop.set()
            await responses


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set, or until SIGINT/SIGTERM; in-flight tasks finish first."""
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port)
    client = await connect("o2a-worker")
    warn_if_unencrypted()
    wiring = Wiring(settings, "o2a-worker")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with serving(client, settings, wiring=wiring):
            print(
                f"o2a worker polling task queue {settings.task_queue!r}, "
                f"messages to {', '.join(settings.sinks)} (outbox {settings.outbox_dir}), "
                f"fulfillment by {settings.fulfillment}, "
                f"{version_text(settings.deployment_name, settings.build_id)}",
                flush=True,
            )
            await stop.wait()
    finally:
        await wiring.close()
    print("o2a worker stopped", flush=True)


def _process_main(settings: Settings, parent: int) -> None:
    configure_logging()  # a spawned child starts afresh; its parent checked the variables
    asyncio.run(_child_worker(settings, parent))
    # The SDK's runtime threads outlive the event loop; a spawned child that finalizes the
    # interpreter under them can abort ("PyGILState_Release"). Its work is done: leave.
    shutdown_tracing()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def _child_worker(settings: Settings, parent: int) -> None:
    """One of ``--processes N``: it stops with its parent, also one killed with SIGKILL
    (which cannot pass a signal on), instead of polling on as an orphan."""
    stop = asyncio.Event()

    async def until_orphaned() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(ORPHAN_CHECK_SECONDS)
        stop.set()

    watch = asyncio.create_task(until_orphaned())
    try:
        await run_worker(settings, stop)
    finally:
        watch.cancel()


def _nth(settings: Settings, n: int) -> Settings:
    """The settings of the ``n``th of ``--processes``: its metrics on a port of its own,
    the ``n``th after the one given."""
    port = settings.metrics_port
    return settings if port is None else dataclasses.replace(settings, metrics_port=port + n)


def run_workers(settings: Settings, processes: int) -> None:
    if processes <= 1:
        asyncio.run(run_worker(settings))
        return
    # Refuse unknown adapters here, once, rather than with a traceback in every child.
    wiring = Wiring(settings, "o2a-worker")
    message_bus(wiring)
    fulfillment_system(wiring)
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(target=_process_main, args=(_nth(settings, n), os.getpid()))
        for n in range(processes)
    ]
    for child in children:
        child.start()

    def stop_children(signum: int, frame: object) -> None:
        """SIGTERM (or a SIGINT not sent to the whole process group) reaches every child."""
        del signum, frame
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_children)
    signal.signal(signal.SIGINT, stop_children)
    for child in children:
        child.join()
