"""`o2a bench --big`: issue 9's big orders, one after the other, each measured from history.

The worker runs in this process on a task queue of its own, so it runs the code as it is
now (no worker to restart between tries) and its peak RSS is this process's. Histories are
read only once both orders have ended, so reading them does not count as worker memory.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import uuid
from dataclasses import dataclass

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from o2a.big_orders import (
    ISSUE_9_SHAPES,
    BigOrderShape,
    Limits,
    OrderFigures,
    big_order,
    measure_order,
    running,
    violations,
    wait_for_order,
)
from o2a.catalog import load_catalog
from o2a.client import connect
from o2a.config import Settings
from o2a.decomposition import decompose
from o2a.models import ComponentKind, OrderState
from o2a.service import OrderService
from o2a.task_clock import Longest, TaskClock
from workers.worker import build_worker


@dataclass(frozen=True)
class BigRun:
    shape: BigOrderShape
    lines: int
    components: int
    children: int
    workflow_id: str | None
    """None if the server refused to start the order."""
    ended: str
    cpu: Longest
    """The activation that took the most CPU while the order ran."""
    peak_rss_mib: float


async def run_big_bench(settings: Settings) -> int:
    """0 if every order completed within issue 9's limits, 1 otherwise."""
    client = await connect("o2a-bench")
    run_id = uuid.uuid4().hex[:8]
    own = dataclasses.replace(settings, task_queue=f"{settings.task_queue}-big-{run_id}")
    service = OrderService(client, own)
    catalog = load_catalog(settings.catalog_path)
    limits = Limits()
    print(
        f"o2a bench --big: in-process worker on task queue {own.task_queue!r}, fulfillment by "
        f"{own.fulfillment}; limits per workflow task {limits.task_seconds * 1000:.0f} ms, "
        f"per history {limits.events:,} events, per payload {limits.payload_bytes // 1024} KiB"
    )
    runs: list[BigRun] = []
    clock = TaskClock()
    async with running(build_worker(client, own, workflow_runner=clock)):
        for shape in ISSUE_9_SHAPES:
            clock.longest = Longest()
            order = big_order(f"BIG-{run_id}-{shape.name}", shape.bundles, shape.lines_per_bundle)
            plan = decompose(order, catalog)
            children = sum(c.kind is ComponentKind.PROVISION for c in plan.components)
            print(f"{shape.name}: {len(order.lines):,} lines, running ...", file=sys.stderr)
            workflow_id: str | None = None
            try:
                workflow_id = (await service.submit(order)).workflow_id
            except RPCError as exc:  # e.g. the order itself is over the server's blob limit
                ended = f"start refused: {exc.message}"
            else:
                ended = await wait_for_order(client, workflow_id, shape.timeout_seconds)
                handle = client.get_workflow_handle(workflow_id)
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate(f"o2a bench --big gave up: {ended}")
            runs.append(
                BigRun(
                    shape,
                    len(order.lines),
                    len(plan.components),
                    children,
                    workflow_id,
                    ended,
                    clock.longest,
                    _peak_rss_mib(),
                )
            )
    failing = False
    print(
        f"\n{'order':<22} {'lines':>6} {'comp/SOM':>8} {'ended':<13} {'wall s':>7} {'task ms':>8} "
        f"{'CPU ms':>6} "
        f"{'events parent':>13} {'children':>9} {'max':>6} {'payload KiB':>11} "
        f"{'failed':>6} {'forced':>6} {'RSS MiB':>7}"
    )
    notes: list[str] = []
    for run in runs:
        figures = await measure_order(client, run.workflow_id) if run.workflow_id else None
        print(_row(run, figures))
        problems = violations(figures, limits, run.cpu) if figures else []
        if run.ended != OrderState.COMPLETED:
            problems.insert(0, run.ended)
        notes += [f"{run.shape.name}: {p}" for p in problems]
        failing = failing or bool(problems)
    print(
        "task ms: longest workflow task in the histories (wall, queueing included); CPU ms: "
        "longest workflow activation in the worker; forced: tasks the server failed to flush "
        "a burst of events (Temporal retries them); RSS: peak of this process (worker, "
        "client), after each order"
    )
    print("\n".join(notes) if notes else "every order completed within the limits")
    return 1 if failing else 0


def _row(run: BigRun, figures: OrderFigures | None) -> str:
    head = (
        f"{run.shape.name:<22} {run.lines:>6,} {f'{run.components}/{run.children}':>8} "
        f"{run.ended.split(':')[0][:13]:<13}"
    )
    tail = f"{run.peak_rss_mib:>7.0f}"
    if figures is None:
        return (
            f"{head} {'-':>7} {'-':>8} {'-':>6} {'-':>13} {'-':>9} {'-':>6} {'-':>11} {'-':>6} "
            f"{'-':>6} {tail}"
        )
    wall = f"{figures.wall_seconds:.1f}" if figures.wall_seconds is not None else "-"
    return (
        f"{head} {wall:>7} {figures.longest_task.longest_task_seconds * 1000:>8,.0f} "
        f"{run.cpu.cpu_seconds * 1000:>6,.0f} "
        f"{figures.parent_events:>13,} {figures.children_events:>9,} "
        f"{figures.most_events.events:>6,} "
        f"{figures.largest_payload.largest_payload_bytes / 1024:>11,.0f} "
        f"{figures.failed_tasks:>6} {figures.force_closed_tasks:>6} {tail}"
    )


def _peak_rss_mib() -> float:
    """ru_maxrss is KiB on Linux, bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)
