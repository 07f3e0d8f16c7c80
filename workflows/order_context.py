"""What the parts of the COM workflow share: one source of truth for one order.

The tracker owns the order, its plan and every component's and line's state; this context
adds what only the workflow knows (the OSM order state, operator holds, queued requests,
the inbox of component updates). The run loop, the change coordinator, the component
runner and the reporter all read and write it; nothing is kept twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from o2a.models import ComponentUpdate, CustomerOrder, OrderState
    from o2a.tracking import FulfillmentTracker
    from workflows.contracts.customer_order import (
        CancelRequest,
        OperatorRequest,
        RevisionRequest,
    )
    from workflows.order_patches import OrderPatches

FINAL_STATES = frozenset({OrderState.COMPLETED, OrderState.CANCELLED, OrderState.ABORTED})
ATTENTION_STATES = FINAL_STATES | {OrderState.FAILED, OrderState.SUSPENDED}
"""States in which an order needs someone, or nobody any more."""

Change = RevisionRequest | CancelRequest


class WorkflowBug(Exception):
    """A spawned task died of something other than an activity or child failure: raised
    from the run method, it fails the workflow task (visible in the Web UI, retried from
    history once the code is fixed) instead of leaving the order hanging in progress."""


class OrderContext:
    def __init__(self, order: CustomerOrder) -> None:
        self.submitted = order
        self.started = workflow.info().workflow_start_time
        """When the order's first run started (carried across continue-as-new)."""
        self._tracker: FulfillmentTracker | None = None
        self.state = OrderState.NOT_STARTED
        self.suspended = False
        self.inbox: list[ComponentUpdate] = []
        self.resolve: list[str | None] = []
        """Resolve requests not yet taken: a failed component's ID, or None for all."""
        self.abort: OperatorRequest | None = None
        self.changes: list[Change] = []
        """Revisions and cancels, in arrival order, not yet taken."""
        self.changing = False
        """A revision or cancel is being taken (planned, compensated)."""
        self.received: list[str] = []
        """Request IDs of every revise and cancel received, taken or not."""
        self.updates_taken: set[str] = set()
        """Message IDs of the SOM updates received (only ever looked up, never iterated)."""
        self.runs: dict[str, int] = {}
        """How many times each component has been run (message and request IDs count it)."""
        self.patches = OrderPatches()
        """The patches this run has: asked first, as it begins."""
        self.crashed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Fails with WorkflowBug when a spawned task dies of a bug; the run method awaits
        it beside the run loop, so the workflow task in which the bug happened fails."""

    @property
    def tracker(self) -> FulfillmentTracker:
        assert self._tracker is not None, "the order is not decomposed yet"
        return self._tracker

    @tracker.setter
    def tracker(self, tracker: FulfillmentTracker) -> None:
        self._tracker = tracker

    @property
    def decomposed(self) -> bool:
        return self._tracker is not None

    @property
    def order(self) -> CustomerOrder:
        """The revision in force."""
        return self._tracker.order if self._tracker is not None else self.submitted

    def drain_inbox(self) -> None:
        updates, self.inbox = self.inbox, []
        for update in updates:
            self.tracker.apply(update, workflow.now())

    async def wait(self, condition: Callable[[], bool]) -> None:
        """Wait for ``condition``, or an abort."""
        await workflow.wait_condition(lambda: condition() or self.abort is not None)

    def crash(self, error: BaseException) -> None:
        if not self.crashed.done():
            bug = WorkflowBug(f"a task of the order failed: {error!r}")
            bug.__cause__ = error
            self.crashed.set_exception(bug)
