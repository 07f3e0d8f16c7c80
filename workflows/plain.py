"""The benchmark's plain shape: what an order needs of Temporal and no more (a parent, one
child per provisioning component, one no-op activity per line and step), so
`o2a bench --compare-plain` prices everything o2a adds to it, its own shape included.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.bare import bare_noop
    from workflows.bare import TIMEOUT


class PlainChildInput(BaseModel):
    lines: int
    """The component's lines: one activity each per step, in parallel."""
    steps: list[str]
    """In sequence (design, activate, verify)."""


class PlainOrderInput(BaseModel):
    children: list[PlainChildInput]
    """One per provisioning component, all at once."""


@workflow.defn
class PlainChildWorkflow:
    @workflow.run
    async def run(self, child: PlainChildInput) -> None:
        for step in child.steps:
            await asyncio.gather(
                *(
                    workflow.execute_activity(bare_noop, step, start_to_close_timeout=TIMEOUT)
                    for _ in range(child.lines)
                )
            )


@workflow.defn
class PlainOrderWorkflow:
    @workflow.run
    async def run(self, order: PlainOrderInput) -> None:
        parent = workflow.info().workflow_id
        await asyncio.gather(
            *(
                workflow.execute_child_workflow(
                    PlainChildWorkflow.run, child, id=f"{parent}/child-{n}"
                )
                for n, child in enumerate(order.children)
            )
        )
