"""`o2a bench --compare-plain` end to end: the session's Temporal server, a worker on the
test's own task queue, and the command as a user runs it; then the plain children's
histories, which must hold one activity per line and step and nothing else."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from o2a.config import Settings
from o2a.models import ComponentKind, OrderPlan
from tests.support import StartWorker, cli_env, until
from tests.test_cli import Run, o2a
from workflows.provisioning_order import STEPS

ORDERS = 4
NUMBER = r"\d+(?:\.\d+)?"


async def bench_here(
    worker: StartWorker, env: Mapping[str, str], *args: str, timeout: float = 90
) -> Run:
    """`o2a bench` against a worker of this test's own, in this process: the memory it
    reports is this process's, not that of another worker on the host."""
    async with worker():
        return await o2a("bench", *args, "--worker-pid", str(os.getpid()), env=env, timeout=timeout)


async def test_bench_compare_plain_prints_the_plain_run_and_the_ratio(
    client: Client,
    temporal_address: str,
    settings: Settings,
    worker: StartWorker,
    tp_plan: OrderPlan,
) -> None:
    provisioning = [c for c in tp_plan.components if c.kind is ComponentKind.PROVISION]
    env = cli_env(temporal_address, settings)
    run = await bench_here(worker, env, "-n", str(ORDERS), "-c", "2", "--compare-plain")
    assert run.returncode == 0, run
    out = run.stdout
    assert f"== o2a: {ORDERS} orders in " in out, run
    assert f"== plain shape: {ORDERS} orders in " in out, run
    assert "== bare shape" not in out, run
    plain = out[out.index("== plain shape") :]
    assert re.search(rf"throughput      {NUMBER} orders/s", plain), run
    assert re.search(rf"latency         p50 {NUMBER}s  p95 {NUMBER}s  p99 {NUMBER}s", plain)
    lines = sum(len(c.lines) for c in provisioning)
    figures = re.search(
        rf"history/order   (\d+) events: parent (\d+) events, children (\d+) events in "
        rf"{len(provisioning)} workflows; activities 0 parent \+ {len(STEPS) * lines} children; "
        r"signals 0",
        plain,
    )
    assert figures, run
    total, parent, children = map(int, figures.groups())
    assert abs(total - (parent + children)) <= 1, run  # each average is rounded on its own
    ratio = re.search(
        rf"ratio o2a / plain shape: {NUMBER}x orders/s \(p50 latency {NUMBER}x\); "
        r"events/order o2a (\d+), plain (\d+)",
        out,
    )
    assert ratio, run
    assert int(ratio.group(2)) == total, run
    assert "Traceback" not in run.stderr, run

    query = f"WorkflowType = 'PlainChildWorkflow' AND TaskQueue = '{settings.task_queue}'"

    async def all_listed() -> bool:
        return len([w async for w in client.list_workflows(query)]) == ORDERS * len(provisioning)

    await until(all_listed)
    async for child in client.list_workflows(query):
        component = provisioning[int(child.id.rsplit("/child-", 1)[1])]  # started in plan order
        history = await client.get_workflow_handle(child.id).fetch_history()
        steps = [
            (await client.data_converter.decode(attrs.input.payloads[:1]))[0]
            for attrs in (
                e.activity_task_scheduled_event_attributes
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            )
        ]
        # Every line once per step, the steps in sequence.
        assert steps == [s.value for s in STEPS for _ in component.lines], (child.id, steps)
