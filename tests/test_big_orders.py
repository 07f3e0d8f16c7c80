"""Issue 9: big orders complete, in small workflow tasks, small histories and small payloads.

Each order runs on a real worker with the simulator (no delays) against the session's dev
server; the worker's shutdown is bounded, so a deadlocked workflow task cannot hang the test.
The figures come from the histories of the order and of every child it started, and the CPU
of each workflow activation from the worker's task clock (o2a/task_clock.py).
"""

from __future__ import annotations

import gc

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from o2a.big_orders import (
    ISSUE_9_SHAPES,
    BigOrderShape,
    Limits,
    big_order,
    measure_order,
    running,
    violations,
    wait_for_order,
)
from o2a.catalog import Catalog
from o2a.config import Settings
from o2a.decomposition import decompose
from o2a.models import ComponentKind, OrderState
from o2a.task_clock import TaskClock
from tests.support import start
from workers.worker import build_worker


@pytest.mark.parametrize(
    ("bundles", "lines_per_bundle", "lines", "provisioning", "components"),
    [(250, 4, 1_000, 500, 504), (50, 100, 5_000, 100, 104)],
)
def test_big_order_has_the_issues_shape(
    catalog: Catalog,
    bundles: int,
    lines_per_bundle: int,
    lines: int,
    provisioning: int,
    components: int,
) -> None:
    """Bundles x lines, bundle lines and the offer included; two Provision components per
    bundle (broadband, fixed), one each of SyncCustomer, Ship and the two billing ones."""
    order = big_order("BIG-SHAPE", bundles, lines_per_bundle)
    plan = decompose(order, catalog)
    assert len(order.lines) == lines
    assert len(plan.components) == components
    assert sum(c.kind is ComponentKind.PROVISION for c in plan.components) == provisioning
    assert order.requested_delivery_date is None
    assert all(line.requested_delivery_date is None for line in order.lines)
    assert all(
        not s.name.startswith("Simulated") for line in order.lines for s in line.item.specifications
    )


@pytest.mark.measured
@pytest.mark.parametrize("shape", ISSUE_9_SHAPES, ids=lambda s: s.name)
async def test_big_order_completes_within_limits(
    client: Client, settings: Settings, order_number: str, shape: BigOrderShape
) -> None:
    order = big_order(order_number, shape.bundles, shape.lines_per_bundle)
    clock = TaskClock()
    # The whole suite's objects live in this process: a full garbage collection of them,
    # falling in an activation, would count as that activation's CPU. Frozen, only what
    # the worker allocates is collected, as in a worker of its own.
    gc.collect()
    gc.freeze()
    try:
        async with running(build_worker(client, settings, workflow_runner=clock)):
            handle = await start(client, settings, order)
            ended = await wait_for_order(client, handle.id, shape.timeout_seconds)
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(f"test gave up: {ended}")  # nothing left on the server
    finally:
        gc.unfreeze()
    figures = await measure_order(client, handle.id)
    problems = violations(figures, Limits(), clock.longest)
    wall = (
        f"{figures.wall_seconds:.1f} s" if figures.wall_seconds is not None else "did not complete"
    )
    report = (
        f"{shape.name}: {ended} ({wall}); parent {figures.parent_events:,} events, "
        f"{figures.child_workflows} children {figures.children_events:,} events, "
        f"most in one history {figures.most_events.events:,}; "
        f"longest task {figures.longest_task.longest_task_seconds * 1000:,.0f} ms wall, "
        f"{clock.longest.cpu_seconds * 1000:,.0f} ms CPU; "
        f"largest payload {figures.largest_payload.largest_payload_bytes:,} bytes; "
        f"failed tasks {figures.failed_tasks}"
    )
    assert ended == OrderState.COMPLETED and not problems, "\n".join([report, *problems])
