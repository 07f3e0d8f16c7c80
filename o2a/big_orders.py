"""Big orders (issue 9): generated in memory, waited on, and measured from their histories.

The test and `o2a bench --big` share this module, so both judge an order by the same
figures: events per history, the longest workflow task, the largest payload, failed tasks.

Shape of a generated order: an offer root line ``1``, then per bundle a site service bundle
``1.k`` with its product lines ``1.k.j``. ``lines_per_bundle`` counts the bundle line and its
products, and the offer takes the place of the last bundle's last product, so an order holds
exactly ``bundles x lines_per_bundle`` lines: 250 x 4 = 1,000, and 50 x 100 = 5,000, the most
an order may have (MAX_ORDER_LINES). Each bundle's products are a broadband plan, a fixed
plan and a CPE device, then broadband features, fixed features and CPE devices in turn; the
line left out is a CPE device, so every bundle is still two Provision components (broadband
and fixed), each one SOM child workflow.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.worker import Worker

from o2a.client import failure_message
from o2a.models import (
    Address,
    CustomerOrder,
    FulfillmentMode,
    ItemReference,
    OrderStatus,
    SalesOrderLine,
    Specification,
)
from o2a.task_clock import Longest

log = logging.getLogger(__name__)

# --- the orders -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BigOrderShape:
    """One of the issue's orders: how many site bundles, how many lines each (bundle line
    included), and how long it may take before it counts as never completing."""

    name: str
    bundles: int
    lines_per_bundle: int
    timeout_seconds: float


ISSUE_9_SHAPES = (
    BigOrderShape("1k-lines-250-bundles", bundles=250, lines_per_bundle=4, timeout_seconds=600),
    # 50 sites of 100 lines, not 1,250 bundles of 4: 2,500 children would be more than one
    # parent history can hold without continue-as-new.
    BigOrderShape("5k-lines-50-sites", bundles=50, lines_per_bundle=100, timeout_seconds=600),
)

ORDER_DATE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""Fixed and in the past; no requested delivery date, so nothing is future-dated."""

_CITIES = (
    ("Amsterdam", "1017"),
    ("Rotterdam", "3011"),
    ("Utrecht", "3511"),
    ("Eindhoven", "5611"),
    ("Groningen", "9711"),
)


@dataclass(frozen=True)
class _Product:
    name: str
    product_class: str
    specs: tuple[tuple[str, str], ...]


_BROADBAND_PLAN = _Product(
    "Business Fibre 1000",
    "Broadband Service Plan Class",
    (("Speed", "1000 Mbps"), ("UploadSpeed", "1000 Mbps"), ("AccessTechnology", "FTTH")),
)
_FIXED_PLAN = _Product("SIP Trunk 10 Channels", "Fixed Service Plan Class", (("Channels", "10"),))
_ROUTER = _Product(
    "Business Router BRX-8",
    "CPE Device Class",
    (("Model", "BRX-8 SD-WAN"), ("DeliveryMethod", "Engineer")),
)
_EXTRAS = (
    _Product("Static IP Block /29", "Broadband Service Feature Class", (("IPv4Prefix", "/29"),)),
    _Product("Hunt Group", "Fixed Service Feature Class", (("Members", "8"),)),
    _Product("IP Desk Phone Pack (10)", "CPE Device Class", (("Model", "DP-410"),)),
    _Product("Managed Wi-Fi", "Broadband Service Feature Class", (("AccessPoints", "3"),)),
    _Product("Call Recording", "Fixed Service Feature Class", (("RetentionDays", "90"),)),
    _Product("Wi-Fi Access Point", "CPE Device Class", (("Model", "AP-6E"),)),
)
"""After the plans and the router: broadband feature, fixed feature, CPE, in turn."""


def big_order(order_number: str, bundles: int, lines_per_bundle: int) -> CustomerOrder:
    """A multi-site business order of ``bundles`` x ``lines_per_bundle`` lines, offer included."""
    if bundles < 1 or lines_per_bundle < 2:
        raise ValueError(
            "an order needs a bundle of at least two lines, to leave room for the offer"
        )
    offer = SalesOrderLine(
        id="1",
        business_component_id=f"{order_number}-1",
        fulfillment_mode=FulfillmentMode.DELIVER,
        item=ItemReference(name="Business Connect Multi-Site Offer", type_code="OFFER"),
    )
    lines = [offer]
    for site in range(1, bundles + 1):
        city, postcode = _CITIES[site % len(_CITIES)]
        address = Address(
            line_one=f"Industrieweg {site}", city=city, postal_code=f"{postcode} AB", country="NL"
        )
        bundle_id = f"1.{site}"
        site_bundle = ItemReference(
            name=f"Site S{site:04d} Connectivity", type_code="SERVICE BUNDLE"
        )
        lines.append(_line(order_number, bundle_id, "1", address, site_bundle))
        products = itertools.chain(
            (_BROADBAND_PLAN, _FIXED_PLAN, _ROUTER), itertools.cycle(_EXTRAS)
        )
        last = lines_per_bundle - (1 if site == bundles else 0)  # the offer's place
        for number, product in zip(range(1, last), products, strict=False):
            item = ItemReference(
                name=product.name,
                type_code="PRODUCT",
                product_class=product.product_class,
                specifications=[Specification(name=n, value=v) for n, v in product.specs],
            )
            lines.append(_line(order_number, f"{bundle_id}.{number}", bundle_id, address, item))
    return CustomerOrder(
        order_number=order_number,
        revision_id=f"{order_number}-REV1",
        order_date=ORDER_DATE,
        type_code="SALES ORDER",
        status_code="OPEN",
        customer_account="CA-909000",
        lines=lines,
    )


def _line(
    order_number: str, line_id: str, parent_id: str, address: Address, item: ItemReference
) -> SalesOrderLine:
    return SalesOrderLine(
        id=line_id,
        business_component_id=f"{order_number}-{line_id}",
        parent_id=parent_id,
        root_id="1",
        fulfillment_mode=FulfillmentMode.DELIVER,
        service_address=address,
        item=item,
    )


# --- running and waiting for one to end -----------------------------------------------------

SHUTDOWN_SECONDS = 30.0


@asynccontextmanager
async def running(
    worker: Worker, shutdown_seconds: float = SHUTDOWN_SECONDS
) -> AsyncIterator[None]:
    """Run the worker for the block. A workflow task the SDK judged deadlocked can hold its
    shutdown for good (a stuck order's bench once hung so), so after ``shutdown_seconds``
    the worker is left behind rather than the figures never shown."""
    run = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        try:
            await asyncio.wait_for(worker.shutdown(), shutdown_seconds)
        except TimeoutError:
            log.warning("worker did not shut down within %.0f s; left behind", shutdown_seconds)
        else:
            await run  # a worker that failed says so here


STUCK_ATTEMPTS = 3
"""A workflow task on its third attempt has failed twice in a row: the order is stuck (a
deadlocked task fails every time), so waiting longer only wastes the timeout."""


async def wait_for_order(client: Client, workflow_id: str, timeout: float) -> str:
    """How the order ended: its state (``completed``), the workflow's close status, or why
    it was given up on (stuck on a failing workflow task, or not done in time)."""
    handle = client.get_workflow_handle(workflow_id, result_type=OrderStatus)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        description = await handle.describe()
        if description.status is not None and description.status != WorkflowExecutionStatus.RUNNING:
            if description.status == WorkflowExecutionStatus.COMPLETED:
                status: OrderStatus = await handle.result()
                return status.state.value
            return f"workflow {description.status.name.lower()}"
        attempt = description.raw_description.pending_workflow_task.attempt
        if attempt >= STUCK_ATTEMPTS:
            return f"stuck: workflow task on attempt {attempt}"
        await asyncio.sleep(0.5)
    return f"not done after {timeout:.0f} s"


# --- measuring it ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """An event of one run, to find it in the Web UI or `temporal workflow show`."""

    workflow_id: str
    event_id: int
    event_type: str

    def __str__(self) -> str:
        return f"{self.workflow_id} #{self.event_id} {self.event_type}"


@dataclass(frozen=True)
class HistoryFigures:
    """One run's history."""

    workflow_id: str
    events: int
    longest_task_seconds: float
    """Workflow task started → completed (or failed, timed out), by event time: on a busy
    machine this counts queueing and GIL waits too, so the limit applies to the CPU the
    task clock measures instead."""
    longest_task: Where | None
    largest_payload_bytes: int
    largest_payload: Where | None
    failed_tasks: int
    """Failed or timed out: a deadlock, a worker too slow."""
    first_task_failure: str | None
    force_closed_tasks: int
    """Failed by the server to flush a burst of buffered events (counted apart)."""


@dataclass(frozen=True)
class OrderFigures:
    parent: list[HistoryFigures]
    """One per run (more than one if the order continued as new)."""
    children: list[HistoryFigures]
    wall_seconds: float | None
    """First run started → last run completed; None if it did not complete."""

    @property
    def histories(self) -> list[HistoryFigures]:
        return [*self.parent, *self.children]

    @property
    def parent_events(self) -> int:
        return sum(h.events for h in self.parent)

    @property
    def children_events(self) -> int:
        return sum(h.events for h in self.children)

    @property
    def child_workflows(self) -> int:
        return len({h.workflow_id for h in self.children})

    @property
    def most_events(self) -> HistoryFigures:
        return max(self.histories, key=lambda h: h.events)

    @property
    def longest_task(self) -> HistoryFigures:
        return max(self.histories, key=lambda h: h.longest_task_seconds)

    @property
    def largest_payload(self) -> HistoryFigures:
        return max(self.histories, key=lambda h: h.largest_payload_bytes)

    @property
    def failed_tasks(self) -> int:
        return sum(h.failed_tasks for h in self.histories)

    @property
    def force_closed_tasks(self) -> int:
        return sum(h.force_closed_tasks for h in self.histories)


@dataclass(frozen=True)
class Limits:
    """Issue 9's bounds for every history of an order."""

    task_seconds: float = 0.5
    """CPU of one workflow activation (o2a/task_clock.py)."""
    events: int = 10_240
    payload_bytes: int = 512 * 1024


def violations(figures: OrderFigures, limits: Limits, longest: Longest) -> list[str]:
    """Every bound the order broke, one line each, naming where. ``longest`` is the
    activation that took the most CPU in the worker that ran the order."""
    found = []
    if figures.failed_tasks:
        failing = next(h for h in figures.histories if h.failed_tasks)
        found.append(
            f"{figures.failed_tasks} failed or timed-out workflow task(s), first in "
            f"{failing.workflow_id}: {failing.first_task_failure}"
        )
    if longest.cpu_seconds >= limits.task_seconds:
        found.append(
            f"workflow activation of {longest.cpu_seconds * 1000:,.0f} ms CPU in "
            f"{longest.workflow_id} ({longest.jobs}; limit {limits.task_seconds * 1000:,.0f} ms)"
        )
    busy = figures.most_events
    if busy.events > limits.events:
        found.append(
            f"history of {busy.events:,} events in {busy.workflow_id} (limit {limits.events:,})"
        )
    big = figures.largest_payload
    if big.largest_payload_bytes > limits.payload_bytes:
        found.append(
            f"payload of {big.largest_payload_bytes:,} bytes at {big.largest_payload} "
            f"(limit {limits.payload_bytes:,})"
        )
    return found


FETCH_CONCURRENCY = 16


async def measure_order(client: Client, workflow_id: str) -> OrderFigures:
    """Figures of every run of the order and of every child it started."""
    parent_runs = await _runs(client, workflow_id)
    children = [
        e.child_workflow_execution_started_event_attributes.workflow_execution
        for history in parent_runs
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
    ]
    gate = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def child_runs(child_id: str, run_id: str) -> list[WorkflowHistory]:
        async with gate:
            return await _runs(client, child_id, run_id)

    fetched = await asyncio.gather(*(child_runs(c.workflow_id, c.run_id) for c in children))
    first, last = parent_runs[0].events[0], parent_runs[-1].events[-1]
    completed = last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    return OrderFigures(
        parent=[_figures(h) for h in parent_runs],
        children=[_figures(h) for runs in fetched for h in runs],
        wall_seconds=_seconds_between(first, last) if completed else None,
    )


async def _runs(
    client: Client, workflow_id: str, run_id: str | None = None
) -> list[WorkflowHistory]:
    """The run asked for (default: the latest) with the runs it continued from and into."""

    async def fetch(run: str | None) -> WorkflowHistory:
        history = await client.get_workflow_handle(workflow_id, run_id=run).fetch_history()
        for event in history.events:  # the figures name why a task failed, sealed or not
            if event.HasField("workflow_task_failed_event_attributes"):
                failure = event.workflow_task_failed_event_attributes.failure
                failure.message = await failure_message(client.data_converter, failure)
        return history

    runs = [await fetch(run_id)]
    while (
        previous := runs[0]
        .events[0]
        .workflow_execution_started_event_attributes.continued_execution_run_id
    ):
        runs.insert(0, await fetch(previous))
    while (
        runs[-1].events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    ):
        attrs = runs[-1].events[-1].workflow_execution_continued_as_new_event_attributes
        runs.append(await fetch(attrs.new_execution_run_id))
    return runs


def _figures(history: WorkflowHistory) -> HistoryFigures:
    started: dict[int, HistoryEvent] = {}
    longest, longest_at = 0.0, None
    largest, largest_at = 0, None
    failures: list[str] = []
    force_closed = 0
    for event in history.events:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        size = max((p.ByteSize() for p in _payloads(event)), default=0)
        if size > largest:
            largest, largest_at = size, Where(history.workflow_id, event.event_id, kind)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started[event.event_id] = event
            continue
        start_id = _task_started_event_id(event)
        if start_id is None or start_id not in started:
            continue
        seconds = _seconds_between(started[start_id], event)
        if seconds > longest:
            longest, longest_at = (
                seconds,
                Where(history.workflow_id, start_id, "WORKFLOW_TASK_STARTED"),
            )
        if _force_closed(event):
            force_closed += 1
        elif event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            failures.append(_task_failure(event))
    return HistoryFigures(
        workflow_id=history.workflow_id,
        events=len(history.events),
        longest_task_seconds=longest,
        longest_task=longest_at,
        largest_payload_bytes=largest,
        largest_payload=largest_at,
        failed_tasks=len(failures),
        first_task_failure=failures[0] if failures else None,
        force_closed_tasks=force_closed,
    )


def _force_closed(event: HistoryEvent) -> bool:
    """The server, not the worker, failed the task: more events arrived while it ran than
    the server buffers (a burst of hundreds of children starting), so it flushed them into
    history and handed the worker a new task. Flow control, not a fault of the order."""
    return (
        event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        and event.workflow_task_failed_event_attributes.cause
        == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND
    )


def _task_started_event_id(event: HistoryEvent) -> int | None:
    """The WorkflowTaskStarted event a task's end event closes, if it is one."""
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
        return event.workflow_task_completed_event_attributes.started_event_id
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
        return event.workflow_task_failed_event_attributes.started_event_id
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        return event.workflow_task_timed_out_event_attributes.started_event_id
    return None


def _task_failure(event: HistoryEvent) -> str:
    """Why: the worker's failure (a deadlock), the server's cause (FORCE_CLOSE_COMMAND: too
    many events arrived while the task ran, so the server failed it to flush them) or a
    timeout (the worker never answered)."""
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        kind = event.workflow_task_timed_out_event_attributes.timeout_type
        return f"timed out ({TimeoutType.Name(kind).removeprefix('TIMEOUT_TYPE_')})"
    attrs = event.workflow_task_failed_event_attributes
    cause = WorkflowTaskFailedCause.Name(attrs.cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
    return f"{cause} {attrs.failure.message}".strip()


def _seconds_between(earlier: HistoryEvent, later: HistoryEvent) -> float:
    return (later.event_time.ToNanoseconds() - earlier.event_time.ToNanoseconds()) / 1e9


def _payloads(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere in the message: inputs, results, headers, memos, failures."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            if entry.fields_by_name["value"].type != FieldDescriptor.TYPE_MESSAGE:
                continue
            items = list(value.values())
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            yield from _payloads(item)
