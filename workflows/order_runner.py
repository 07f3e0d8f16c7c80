"""Running an order's components: starting them as their dependencies allow (now, or at a
future-dated start), the one registry of what is in flight, and the tasks that run them.

Every task it spawns is watched: an activity or child failure becomes fallout where it
happens; anything else (a bug) is kept on the context and raised by the run loop, so the
workflow task fails visibly instead of the order hanging in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from o2a.models import (
        ComponentKind,
        ComponentState,
        ComponentUpdate,
        OrderComponent,
        SalesOrderLine,
    )
    from workflows.contracts.provisioning_order import ProvisioningResult
    from workflows.order_context import OrderContext
    from workflows.order_reporting import OrderReporter
    from workflows.order_work import ChildHandle, ComponentWork, failed_update
    from workflows.provisioning_order import ProvisioningOrderWorkflow


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


class ComponentRunner:
    def __init__(self, ctx: OrderContext, reporter: OrderReporter, work: ComponentWork) -> None:
        self._ctx = ctx
        self._reporter = reporter
        self._work = work
        self._in_flight: dict[str, InFlight] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        """No component running, waiting to start or being undone: only the order's
        jeopardy watch, which a next run starts again."""
        others = self._tasks - {self._watch} if self._watch is not None else self._tasks
        return not self._in_flight and not others

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
        self._ctx.tracker.recall(waiting, workflow.now())

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

    def undo_retired(self, component_id: str) -> None:
        """Run again the undo of a component a revision dropped, after its fallout was
        resolved: the component ends cancelled once its work is taken back."""
        spec, lines = self._ctx.tracker.retired[component_id]
        self._ctx.tracker.undoing(component_id, workflow.now())
        self._ctx.tracker.apply(
            ComponentUpdate(component_id=component_id, state=ComponentState.IN_PROGRESS),
            workflow.now(),
        )
        self._in_flight[component_id] = InFlight(Phase.CALLING)
        self._spawn(self._undo_retired(spec, lines))

    async def _undo_retired(self, spec: OrderComponent, lines: list[SalesOrderLine]) -> None:
        try:
            await self._work.undo(spec, lines)
        except FailureError as err:
            self._ctx.inbox.append(failed_update(spec.id, err))
            return
        finally:
            self._in_flight.pop(spec.id, None)
        self._ctx.inbox.append(
            ComponentUpdate(component_id=spec.id, state=ComponentState.CANCELLED)
        )

    def _began(self, component: OrderComponent) -> ComponentUpdate:
        provisioning = component.kind is ComponentKind.PROVISION
        self._in_flight[component.id] = InFlight(Phase.STARTING if provisioning else Phase.CALLING)
        return ComponentUpdate(
            component_id=component.id,
            state=ComponentState.IN_PROGRESS,
            milestone=component.start_milestone,
        )

    def watch_jeopardies(self) -> None:
        """The order's one jeopardy watch, for as long as the order runs."""
        self._watch = self._spawn(self._reporter.watch_jeopardies())

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
        if error is not None:
            self._ctx.crash(error)

    def _start_time(self, component: OrderComponent) -> datetime | None:
        order = self._ctx.order
        dates = [
            line.requested_delivery_date or order.requested_delivery_date
            for line in self._work.lines_of(component.lines)
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
        self._reporter.watch(component)
        try:
            if component.kind is ComponentKind.PROVISION:
                result = await self._run_child(component)
                state, line_updates = result.state, result.line_updates
            else:
                line_updates = await self._work.call_function(component)
        except FailureError as err:
            ctx.inbox.append(failed_update(component.id, err))
            return
        finally:
            self._reporter.unwatch(component.id)
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

    async def _run_child(self, component: OrderComponent) -> ProvisioningResult:
        handle = await self._work.start_child(component)
        self._in_flight[component.id] = InFlight(Phase.CHILD, handle)
        if self._ctx.suspended:
            await self._tell(handle, "suspend")
        return await handle
