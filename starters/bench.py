"""`o2a bench`: throughput, latency, history size and worker memory, against a running worker.

With ``--compare-bare`` the same server then runs a workload of the same shape (as many
child workflows, activities and signals per order, measured from the real orders' histories)
with no business logic, and the ratio prices what o2a itself adds. With ``--compare-plain``
it runs the plain shape an order needs (a parent, one child per provisioning component, one
no-op activity per line and step, nothing else), and the ratio prices what o2a adds to that,
its own shape included. With ``--via api`` the same orders are then submitted through the
HTTP API's AIA endpoint, and the POST's own latency is printed beside the ratio to the
direct client path.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from o2a.api.auth import KEYS_VARIABLE, ApiKeys, Role
from o2a.catalog import load_catalog
from o2a.client import connect
from o2a.config import Settings
from o2a.decomposition import decompose
from o2a.errors import InputError
from o2a.models import ComponentKind, CustomerOrder, OrderComponent, OrderState, OrderStatus
from o2a.service import OrderIntake, OrderService
from workflows.bare import BareChildShape, BareOrderShape, BareOrderWorkflow
from workflows.plain import PlainChildInput, PlainOrderInput, PlainOrderWorkflow
from workflows.provisioning_order import STEPS

HISTORY_SAMPLE = 10
AIA_PATH = "/aia/ProcessSalesOrderFulfillment"
ShapeT = TypeVar("ShapeT", bound=BaseModel)


@dataclass(frozen=True)
class ApiTarget:
    url: str
    key: str


def api_target(var_dir: Path) -> ApiTarget:
    """The API `o2a up` serves: ``O2A_API_URL`` (default http://localhost:8000) and an
    integrator key from ``O2A_API_KEYS``, else the keys `o2a up` keeps under ``var_dir``."""
    url = os.environ.get("O2A_API_URL", "http://localhost:8000").rstrip("/")
    configured = os.environ.get(KEYS_VARIABLE)
    kept = var_dir / "api-keys"
    if configured:
        keys = ApiKeys.parse(configured)
    elif kept.exists():
        keys = ApiKeys.parse(kept.read_text())
    else:
        raise InputError(f"--via api needs {KEYS_VARIABLE}, or the keys `o2a up` keeps in {kept}")
    key = keys.key_for(Role.INTEGRATOR)
    if key is None:
        raise InputError(f"--via api needs an integrator key in {KEYS_VARIABLE}")
    return ApiTarget(url, key)


@dataclass(frozen=True)
class BenchOptions:
    sample: Path
    orders: int
    concurrency: int
    compare_bare: bool
    worker_pid: int | None
    via_api: ApiTarget | None = None
    compare_plain: bool = False


@dataclass
class RunFigures:
    label: str
    orders: int
    seconds: float
    latencies: list[float]

    @property
    def orders_per_second(self) -> float:
        return self.orders / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass(frozen=True)
class DirectRun:
    run: RunFigures
    workflow_ids: list[str]
    """In the order they were started."""
    submits: RunFigures
    """How long each submit (the service starting the workflow) took."""


@dataclass(frozen=True)
class HistoryFigures:
    parent_events: float
    child_events: float
    children: float
    parent_activities: float
    child_activities: float
    signals: float

    @property
    def events_per_order(self) -> float:
        """Parent and children together: what the server persists for one order."""
        return self.parent_events + self.child_events


@dataclass(frozen=True)
class Baseline:
    """o2a's run, which each comparison then runs beside on the same server."""

    client: Client
    settings: Settings
    options: BenchOptions
    run_id: str
    lines_per_order: int
    run: RunFigures
    history: HistoryFigures


async def run_bench(settings: Settings, options: BenchOptions) -> int:
    if options.orders < 1 or options.concurrency < 1:
        raise InputError("--orders and --concurrency must be at least 1")
    order = OrderIntake(settings).load_order(options.sample)
    client = await connect("o2a-bench")
    service = OrderService(client, settings)
    run_id = uuid.uuid4().hex[:8]
    print(
        f"o2a bench: {options.orders} x {options.sample.name} ({len(order.lines)} lines), "
        f"concurrency {options.concurrency}, task queue {settings.task_queue!r}"
    )
    direct = await direct_run("o2a", client, service, order, options, run_id)
    o2a, workflow_ids = direct.run, direct.workflow_ids
    history = await _history_figures(client, workflow_ids[:HISTORY_SAMPLE])
    _report(o2a, len(order.lines), history, options.worker_pid)
    print(percentiles("submit latency ", direct.submits))
    if options.via_api is not None:
        await _via_api(client, options, options.via_api, order, o2a, run_id)
    o2a_run = Baseline(client, settings, options, run_id, len(order.lines), o2a, history)
    if options.compare_bare:
        await _compare(
            "bare", BareOrderWorkflow.run, _bare_shape(order, history, settings), o2a_run
        )
    if options.compare_plain:
        await _compare("plain", PlainOrderWorkflow.run, _plain_shape(order, settings), o2a_run)
    return 0


async def _compare(
    name: str,
    workflow: Callable[[Any, ShapeT], Awaitable[None]],
    shape: ShapeT,
    o2a: Baseline,
) -> None:
    """The same number of orders of a shape on the same server, then o2a's ratio to it."""
    workflow_ids: list[str] = []

    async def one(i: int) -> None:
        handle = await o2a.client.start_workflow(
            workflow, shape, id=f"{name}-{o2a.run_id}-{i:05d}", task_queue=o2a.settings.task_queue
        )
        workflow_ids.append(handle.id)
        await handle.result()

    run = await _drive(f"{name} shape", o2a.options, one)
    history = await _history_figures(o2a.client, workflow_ids[:HISTORY_SAMPLE])
    _report(run, o2a.lines_per_order, history, o2a.options.worker_pid)
    print(
        f"\n{ratio(f'o2a / {name} shape', o2a.run, run)}; events/order "
        f"o2a {o2a.history.events_per_order:.0f}, {name} {history.events_per_order:.0f}"
    )


async def direct_run(
    label: str,
    client: Client,
    service: OrderService,
    order: CustomerOrder,
    options: BenchOptions,
    run_id: str,
) -> DirectRun:
    """The orders submitted directly (the client path), each measured to its completion."""
    workflow_ids: list[str] = []
    submits: list[float] = []

    async def one_order(i: int) -> None:
        numbered = order.model_copy(update={"order_number": f"BENCH-{run_id}-{i:05d}"})
        began = time.monotonic()
        submitted = await service.submit(numbered)
        submits.append(time.monotonic() - began)
        workflow_ids.append(submitted.workflow_id)
        await _completed(client, submitted.workflow_id)

    run = await _drive(label, options, one_order)
    return DirectRun(run, workflow_ids, RunFigures("submit", len(submits), 0, submits))


async def _completed(client: Client, workflow_id: str) -> None:
    result = await client.get_workflow_handle(workflow_id, result_type=OrderStatus).result()
    if result.state is not OrderState.COMPLETED:
        raise RuntimeError(f"order {result.order_number} ended {result.state.value}")


async def _via_api(
    client: Client,
    options: BenchOptions,
    api: ApiTarget,
    order: CustomerOrder,
    direct: RunFigures,
    run_id: str,
) -> None:
    """The same orders posted to the AIA endpoint: each order's latency, and the POST's."""
    document = options.sample.read_bytes()
    number = f">{order.order_number}<".encode()
    posts: list[float] = []
    headers = {"Authorization": f"Bearer {api.key}", "Content-Type": "application/xml"}
    limits = httpx.Limits(max_connections=options.concurrency)
    async with httpx.AsyncClient(base_url=api.url, headers=headers, limits=limits) as http:

        async def one_post(i: int) -> None:
            body = document.replace(number, f">API-{run_id}-{i:05d}<".encode())
            began = time.monotonic()
            response = await http.post(AIA_PATH, content=body, timeout=30)
            posts.append(time.monotonic() - began)
            if response.status_code != 201:
                raise RuntimeError(f"POST {AIA_PATH}: {response.status_code} {response.text}")
            await _completed(client, response.json()["workflowId"])

        via = await _drive("via api", options, one_post)
    latency = RunFigures("POST", len(posts), via.seconds, posts)
    print(summary(f"via the API ({api.url}{AIA_PATH})", via))
    print(percentiles("POST latency   ", latency))
    print(ratio("via api / direct client", via, direct))


def summary(title: str, run: RunFigures) -> str:
    """A run's heading, throughput and order latency (from start to completion)."""
    return (
        f"\n== {title}: {run.orders} orders in {run.seconds:.1f}s\n"
        f"throughput      {run.orders_per_second:.2f} orders/s\n"
        f"order latency   p50 {run.percentile(50):.2f}s  p95 {run.percentile(95):.2f}s  "
        f"p99 {run.percentile(99):.2f}s"
    )


def ratio(label: str, run: RunFigures, base: RunFigures) -> str:
    return (
        f"ratio {label}: {run.orders_per_second / base.orders_per_second:.2f}x "
        f"orders/s (p50 latency {run.percentile(50) / base.percentile(50):.2f}x)"
    )


def percentiles(label: str, run: RunFigures) -> str:
    """In milliseconds: a submit (the service starting the workflow) or a POST of the API."""
    return f"{label} " + "  ".join(f"p{p} {run.percentile(p) * 1000:.0f} ms" for p in (50, 95, 99))


async def _drive(
    label: str, options: BenchOptions, one: Callable[[int], Awaitable[None]]
) -> RunFigures:
    gate = asyncio.Semaphore(options.concurrency)
    latencies: list[float] = []

    async def timed(i: int) -> None:
        async with gate:
            began = time.monotonic()
            await one(i)
            latencies.append(time.monotonic() - began)
            _progress(label, len(latencies), options.orders)

    started = time.monotonic()
    await asyncio.gather(*(timed(i) for i in range(options.orders)))
    print(file=sys.stderr)
    return RunFigures(label, options.orders, time.monotonic() - started, latencies)


def _progress(label: str, done: int, total: int, width: int = 30) -> None:
    filled = width * done // total
    sys.stderr.write(f"\r{label:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stderr.flush()


async def _history_figures(client: Client, workflow_ids: list[str]) -> HistoryFigures:
    parents, children, child_counts, parent_acts, child_acts, signals = [], [], [], [], [], []
    for workflow_id in workflow_ids:
        parent = await client.get_workflow_handle(workflow_id).fetch_history()
        kinds = [e.event_type for e in parent.events]
        child_ids = [
            e.start_child_workflow_execution_initiated_event_attributes.workflow_id
            for e in parent.events
            if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
        ]
        parents.append(len(parent.events))
        parent_acts.append(kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED))
        signals.append(kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED))
        child_counts.append(len(child_ids))
        events = activities = 0
        for child_id in child_ids:
            child = await client.get_workflow_handle(child_id).fetch_history()
            events += len(child.events)
            activities += sum(
                1
                for e in child.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            )
        children.append(events)
        child_acts.append(activities)
    mean = statistics.fmean
    return HistoryFigures(
        parent_events=mean(parents),
        child_events=mean(children),
        children=mean(child_counts),
        parent_activities=mean(parent_acts),
        child_activities=mean(child_acts),
        signals=mean(signals),
    )


def _bare_shape(
    order: CustomerOrder, history: HistoryFigures, settings: Settings
) -> BareOrderShape:
    """Children mirror the order's provisioning components; counts come from the history."""
    provisioning = _provisioning(order, settings)
    return BareOrderShape(
        parent_activities=round(history.parent_activities),
        children=[
            # One fulfillment call per step for all of the component's lines, as SOM makes.
            BareChildShape(steps=[1] * len(STEPS), signals=len(STEPS) - 1)
            for c in provisioning
        ],
    )


def _plain_shape(order: CustomerOrder, settings: Settings) -> PlainOrderInput:
    """One child per provisioning component, one activity per line and step, and no more."""
    steps = [step.value for step in STEPS]
    return PlainOrderInput(
        children=[
            PlainChildInput(lines=len(c.lines), steps=steps) for c in _provisioning(order, settings)
        ]
    )


def _provisioning(order: CustomerOrder, settings: Settings) -> list[OrderComponent]:
    """The components the order's plan hands to SOM children, as the catalog decomposes it."""
    plan = decompose(order, load_catalog(settings.catalog_path))
    return [c for c in plan.components if c.kind is ComponentKind.PROVISION]


def _worker_rss_mib(pid: int | None) -> str:
    pids = [pid] if pid else _find_worker_pids()
    if not pids:
        return "n/a (no worker process found on this host; pass --worker-pid)"
    total = 0
    for p in pids:
        try:
            for row in Path(f"/proc/{p}/status").read_text().splitlines():
                if row.startswith("VmRSS:"):
                    total += int(row.split()[1])
        except OSError:
            return f"n/a (cannot read /proc/{p})"
    return f"{total / 1024:.0f} MiB RSS ({len(pids)} process{'es' if len(pids) > 1 else ''})"


def _find_worker_pids() -> list[int]:
    """`o2a worker` / `o2a up` processes on this host, with the processes they spawned."""
    parents: dict[int, int] = {}
    found: set[int] = set()
    servers: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        words = [Path(a.decode(errors="replace")).name for a in argv if a]
        if "o2a" in words and ("worker" in words or "up" in words):
            found.add(pid)
        if words and words[0] == "temporal":
            servers.add(pid)  # `o2a up` runs the server as its child: not worker memory
    grew = True
    while grew:
        children = {pid for pid, ppid in parents.items() if ppid in found} - found - servers
        found |= children
        grew = bool(children)
    return sorted(found)


def _report(
    run: RunFigures, lines_per_order: int, history: HistoryFigures, worker_pid: int | None
) -> None:
    print(f"\n== {run.label}: {run.orders} orders in {run.seconds:.1f}s")
    print(f"throughput      {run.orders_per_second:.2f} orders/s")
    print(f"order lines     {run.orders_per_second * lines_per_order * 3600:,.0f} lines/hour")
    print(
        f"latency         p50 {run.percentile(50):.2f}s  p95 {run.percentile(95):.2f}s  "
        f"p99 {run.percentile(99):.2f}s"
    )
    print(
        f"history/order   {history.events_per_order:.0f} events: parent "
        f"{history.parent_events:.0f} events, children "
        f"{history.child_events:.0f} events in {history.children:.0f} workflows; "
        f"activities {history.parent_activities:.0f} parent + {history.child_activities:.0f} "
        f"children; signals {history.signals:.0f}"
    )
    print(f"worker memory   {_worker_rss_mib(worker_pid)}")
