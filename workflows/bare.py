"""The benchmark's bare shape: the same number of child workflows, activities and signals as
a real order, with no business logic, so `o2a bench --compare-bare` can price o2a's own work.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.bare import bare_noop

TIMEOUT = timedelta(seconds=30)


class BareChildShape(BaseModel):
    steps: list[int]
    """Parallel activities in each step; the step's call carries its report, as o2a's
    inline SOM steps do (activities/fulfillment.py ``fulfill_and_report``)."""
    signals: int


class BareOrderShape(BaseModel):
    parent_activities: int
    children: list[BareChildShape]


class BareChildInput(BaseModel):
    parent_workflow_id: str
    shape: BareChildShape


async def _noop(step: str) -> None:
    await workflow.execute_activity(bare_noop, step, start_to_close_timeout=TIMEOUT)


@workflow.defn
class BareChildWorkflow:
    @workflow.run
    async def run(self, child: BareChildInput) -> None:
        parent = workflow.get_external_workflow_handle(child.parent_workflow_id)
        for n, width in enumerate(child.shape.steps):
            await asyncio.gather(*(_noop("step") for _ in range(width)))
            if n < child.shape.signals:
                await parent.signal(BareOrderWorkflow.update)


@workflow.defn
class BareOrderWorkflow:
    def __init__(self) -> None:
        self._updates = 0

    @workflow.signal
    def update(self) -> None:
        self._updates += 1

    @workflow.run
    async def run(self, shape: BareOrderShape) -> None:
        await _noop("decompose")
        info = workflow.info()

        async def parent_side() -> None:
            for _ in range(shape.parent_activities - 1):
                await _noop("parent")

        await asyncio.gather(
            parent_side(),
            *(
                workflow.execute_child_workflow(
                    BareChildWorkflow.run,
                    BareChildInput(parent_workflow_id=info.workflow_id, shape=child),
                    id=f"{info.workflow_id}/child-{n}",
                )
                for n, child in enumerate(shape.children)
            ),
        )
        expected = sum(c.signals for c in shape.children)
        await workflow.wait_condition(lambda: self._updates >= expected)
