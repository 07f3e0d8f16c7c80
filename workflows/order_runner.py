"""Running an order's components: inline fulfillment calls, SOM child workflows, future-dated
starts, and the one registry of what is in flight.

Every task it spawns is watched: an activity or child failure becomes fallout where it
happens; anything else (a bug) is kept on the context and raised by the run loop, so the
workflow task fails visibly instead of the order hanging in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.workflow import ChildWorkflowHandle

with workflow.unsafe.imports_passed_through():
    from activities.decomposition import DecompositionActivities
    from activities.fulfillment import FulfillmentActivities
    from activities.messaging import MessagingActivities, ProvisioningOrderMessage
    from o2a import ids, visibility
    from o2a.models import (
        KIND_STEPS,
        ComponentKind,
        ComponentState,
        ComponentUpdate,
        CustomerOrder,
        FaultDetail,
        LineUpdate,
        OrderComponent,
        OrderPlan,
        SalesOrderLine,
        Step,
    )
    from o2a.ports import FulfillmentRequest
    from workflows.contracts.provisioning_order import ProvisioningOrder, ProvisioningResult
    from workflows.order_context import OrderContext
    from workflows.order_reporting import OrderReporter
    from workflows.policies import (
        DECOMPOSITION_TIMEOUT,
        FULFILLMENT_HEARTBEAT,
        FULFILLMENT_RETRY,
        FULFILLMENT_TIMEOUT,
        MESSAGE_RETRY,
        MESSAGE_TIMEOUT,
    )
    from workflows.provisioning_order import ProvisioningOrderWorkflow

ChildHandle = ChildWorkflowHandle[ProvisioningOrderWorkflow, ProvisioningResult]


class Phase(StrEnum):
    WAITING = "waiting"
    """Future-dated: sleeping until its start time."""
    CALLING = "calling"
    """An inline fulfillment call is under way."""
    STARTING = "starting"
    """A SOM child is being started: no handle to signal yet."""
    CHILD = "child"
    """A SOM child runs; ``child`` is its handle."""


@dataclass
class InFlight:
    phase: Phase
    child: ChildHandle | None = None


@dataclass
class Amendment:
    """A completed billing or customer-sync component takes a revision in place."""

    removed: list[SalesOrderLine] = field(default_factory=list)
    """Lines as they were, to take back with the undo step."""
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


async def decompose(order: CustomerOrder) -> OrderPlan:
    """Through an activity, so the plan is in history and replay never reads the catalog."""
    return await workflow.execute_activity_method(
        DecompositionActivities.decompose_order,
        order,
        start_to_close_timeout=DECOMPOSITION_TIMEOUT,
        retry_policy=FULFILLMENT_RETRY,
    )


def fault_of(err: BaseException) -> FaultDetail:
    """The innermost application error names the fault; its message says what failed."""
    cause: BaseException | None = err
    innermost: ApplicationError | None = None
    while cause is not None:
        if isinstance(cause, ApplicationError):
            innermost = cause
        cause = cause.__cause__
    if innermost is None:
        return FaultDetail(code="FULFILLMENT_FAILED", message=str(err))
    detail = (
        FaultDetail.model_validate(innermost.details[0])
        if innermost.details
        else FaultDetail(code=innermost.type or "FULFILLMENT_FAILED")
    )
    return detail.model_copy(update={"message": innermost.message})


def failed_update(component_id: str, err: BaseException) -> ComponentUpdate:
    """A failed step as the component update that raises fallout."""
    fault = fault_of(err)
    return ComponentUpdate(
        component_id=component_id,
        state=ComponentState.FAILED,
        step=fault.step,
        fault_code=fault.code,
        fault_message=fault.message,
    )


class ComponentRunner:
    def __init__(self, ctx: OrderContext, reporter: OrderReporter) -> None:
        self._ctx = ctx
        self._reporter = reporter
        self._in_flight: dict[str, InFlight] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._keep: dict[str, list[str]] = {}
        self._amendments: dict[str, Amendment] = {}

    # --- what is in flight ---------------------------------------------------------------------

    def children(self) -> dict[str, ChildHandle]:
        return {
            cid: run.child
            for cid, run in self._in_flight.items()
            if run.child is not None and run.phase is Phase.CHILD
        }

    async def settle(self) -> None:
        """Inline calls finish and children being started get their handle, so
        compensation sees final states and can signal every running child."""
        await self._ctx.wait(
            lambda: all(
                run.phase not in (Phase.CALLING, Phase.STARTING) for run in self._in_flight.values()
            )
        )
        self._ctx.drain_inbox()

    async def gone(self, component_id: str) -> None:
        """Wait until a component's run has ended and its last update is applied."""
        await self._ctx.wait(lambda: component_id not in self._in_flight)
        self._ctx.drain_inbox()

    async def no_children(self) -> None:
        await self._ctx.wait(lambda: not self.children())
        self._ctx.drain_inbox()

    def recall_waiting(self) -> None:
        """Future-dated components not yet started go back to pending for the new plan."""
        waiting = [cid for cid, run in self._in_flight.items() if run.phase is Phase.WAITING]
        for cid in waiting:
            del self._in_flight[cid]
        self._ctx.tracker.recall(waiting)

    async def tell_children(self, action: str) -> None:
        """Suspend or resume every running child; one that finished meanwhile has nothing
        left to hold or release."""
        for child in self.children().values():
            await self._tell(child, action)

    @staticmethod
    async def _tell(child: ChildHandle, action: str) -> None:
        signal = (
            ProvisioningOrderWorkflow.suspend
            if action == "suspend"
            else ProvisioningOrderWorkflow.resume
        )
        with contextlib.suppress(FailureError):
            await child.signal(signal)

    # --- what a revision leaves for the next run -------------------------------------------------

    def keep(self, component_id: str, lines: list[str]) -> None:
        """A SOM rerun skips the lines whose work stands."""
        self._keep[component_id] = lines

    def amend(self, component_id: str, amendment: Amendment) -> None:
        self._amendments[component_id] = amendment

    # --- starting ------------------------------------------------------------------------------

    def start(self, component: OrderComponent) -> None:
        """Start a component now, or (future-dated) at requested delivery minus duration."""
        ctx = self._ctx
        ctx.runs[component.id] = ctx.runs.get(component.id, 0) + 1
        start_at = self._start_time(component)
        if start_at is not None and start_at > workflow.now():
            ctx.tracker.wait(component.id, workflow.now())
            self._in_flight[component.id] = InFlight(Phase.WAITING)
            self._spawn(self._wait_then_begin(component, start_at))
            return
        ctx.tracker.apply(self._began(component), workflow.now())
        self._spawn(self._run(component))

    def _began(self, component: OrderComponent) -> ComponentUpdate:
        provisioning = component.kind is ComponentKind.PROVISION
        self._in_flight[component.id] = InFlight(Phase.STARTING if provisioning else Phase.CALLING)
        return ComponentUpdate(
            component_id=component.id,
            state=ComponentState.IN_PROGRESS,
            milestone=component.start_milestone,
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and self._ctx.crash is None:
            self._ctx.crash = error

    def _start_time(self, component: OrderComponent) -> datetime | None:
        order = self._ctx.order
        dates = [
            line.requested_delivery_date or order.requested_delivery_date
            for line in self.lines_of(component.lines)
        ]
        known = [d for d in dates if d is not None]
        if not known:
            return None
        return min(known) - timedelta(seconds=component.expected_duration_seconds)

    def _waiting(self, component_id: str) -> bool:
        run = self._in_flight.get(component_id)
        return run is not None and run.phase is Phase.WAITING

    async def _wait_then_begin(self, component: OrderComponent, start_at: datetime) -> None:
        """A timer, not a poll: the order sleeps durably until the component's start."""
        try:
            await workflow.wait_condition(
                lambda: not self._waiting(component.id),
                timeout=(start_at - workflow.now()).total_seconds(),
            )
            return  # recalled by a revision or cancel: the new plan decides
        except TimeoutError:
            pass
        # Its time has come; a suspended order holds it until resume (or a recall).
        await workflow.wait_condition(
            lambda: not self._ctx.suspended or not self._waiting(component.id)
        )
        if not self._waiting(component.id):
            return
        self._ctx.inbox.append(self._began(component))
        await self._run(component)

    async def _run(self, component: OrderComponent) -> None:
        ctx = self._ctx
        state = ComponentState.COMPLETED
        watch = self._spawn(self._reporter.watch_jeopardy(component))
        try:
            if component.kind is ComponentKind.PROVISION:
                result = await self._provision(component)
                state, line_updates = result.state, result.line_updates
            else:
                line_updates = await self._call_function(component)
        except FailureError as err:
            ctx.inbox.append(failed_update(component.id, err))
            return
        finally:
            watch.cancel()
            self._in_flight.pop(component.id, None)
        ctx.inbox.append(
            ComponentUpdate(
                component_id=component.id,
                state=state,
                milestone=component.complete_milestone
                if state is ComponentState.COMPLETED
                else None,
                line_updates=line_updates,
            )
        )

    # --- fulfillment calls ---------------------------------------------------------------------

    def lines_of(
        self, line_ids: list[str], order: CustomerOrder | None = None
    ) -> list[SalesOrderLine]:
        wanted = set(line_ids)
        return [line for line in (order or self._ctx.order).lines if line.id in wanted]

    async def _fulfill(
        self, component: OrderComponent, step: Step, lines: list[SalesOrderLine]
    ) -> list[LineUpdate]:
        """One call to the component's fulfillment system: one step for these lines."""
        order = self._ctx.order
        run = self._ctx.runs.get(component.id, 1)
        return await workflow.execute_activity_method(
            FulfillmentActivities.fulfill,
            FulfillmentRequest(
                request_id=ids.fulfillment_request_id(
                    order.order_number, order.revision, component.id, run, step
                ),
                order_number=order.order_number,
                revision=order.revision,
                component_id=component.id,
                function=component.function,
                target_system=component.target_system,
                step=step,
                lines=lines,
                run=run,
            ),
            start_to_close_timeout=FULFILLMENT_TIMEOUT,
            heartbeat_timeout=FULFILLMENT_HEARTBEAT,
            retry_policy=FULFILLMENT_RETRY,
        )

    async def _call_function(self, component: OrderComponent) -> list[LineUpdate]:
        """The do step for every line, or for an amended component only what changed."""
        step = KIND_STEPS[component.kind][0]
        amendment = self._amendments.get(component.id)
        if amendment is None:
            return await self._fulfill(component, step, self.lines_of(component.lines))
        updates: list[LineUpdate] = []
        if amendment.removed:
            await self._fulfill(component, step.undo(), amendment.removed)
        if amendment.changed:
            updates += await self._fulfill(
                component, step.amend(), self.lines_of(amendment.changed)
            )
        if amendment.added:
            updates += await self._fulfill(component, step, self.lines_of(amendment.added))
        del self._amendments[component.id]
        return updates

    async def undo(self, component: OrderComponent, lines: list[SalesOrderLine]) -> None:
        """Take back a finished component's work for these lines (a new run: a retry after
        fallout is a fresh attempt)."""
        if component.kind is ComponentKind.PROVISION:
            await self._provision(component, undo_lines=lines)
            return
        self._ctx.runs[component.id] = self._ctx.runs.get(component.id, 0) + 1
        await self._fulfill(component, KIND_STEPS[component.kind][0].undo(), lines)

    async def _provision(
        self, component: OrderComponent, undo_lines: list[SalesOrderLine] | None = None
    ) -> ProvisioningResult:
        """A SOM child run: the component's lines, or (``undo_lines``) only undo work."""
        ctx = self._ctx
        order = ctx.order
        if undo_lines:
            ctx.runs[component.id] = ctx.runs.get(component.id, 0) + 1
        run = ctx.runs.get(component.id, 1)
        provisioning_order = ProvisioningOrder(
            order_number=order.order_number,
            revision=order.revision,
            component_id=component.id,
            target_system=component.target_system,
            parent_workflow_id=workflow.info().workflow_id,
            priority=order.priority,
            customer_account=order.customer_account,
            run=run,
            lines=[] if undo_lines else self.lines_of(component.lines),
            done_lines=[] if undo_lines else self._keep.pop(component.id, []),
            undo_lines=undo_lines or [],
        )
        await workflow.execute_activity_method(
            MessagingActivities.send_provisioning_order,
            ProvisioningOrderMessage(
                message_id=ids.provisioning_order_message_id(
                    order.order_number, order.revision, component.id, run
                ),
                created=workflow.now(),
                order=provisioning_order,
            ),
            start_to_close_timeout=MESSAGE_TIMEOUT,
            retry_policy=MESSAGE_RETRY,
        )
        handle = await workflow.start_child_workflow(
            ProvisioningOrderWorkflow.run,
            provisioning_order,
            id=ids.provisioning_workflow_id(order.order_number, component.id),
            static_summary=f"{component.target_system}: {component.function} of "
            f"{len(component.lines)} lines",
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(visibility.ORDER_NUMBER, order.order_number)]
            ),
        )
        if not undo_lines:
            self._in_flight[component.id] = InFlight(Phase.CHILD, handle)
            if ctx.suspended:
                await self._tell(handle, "suspend")
        return await handle
