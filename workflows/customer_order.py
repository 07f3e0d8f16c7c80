"""CustomerOrderWorkflow: the COM role for one customer order.

Decomposes the order (through an activity, so the plan is in history), runs components as
their dependencies allow, provisioning ones as SOM child workflows, and turns every
component state change into line statuses, milestones and the order-level status. CRM
hears of each customer-visible change once, in an UpdateSalesOrderEBM.

Revisions and cancels arrive as signals and wait in one queue, taken in arrival order
between steps: each is planned (DO / UNDO / REDO / AMEND / NONE per component) and its
undo work runs in reverse dependency order before the new plan carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.workflow import ChildWorkflowHandle

with workflow.unsafe.imports_passed_through():
    from activities.decomposition import DecompositionActivities
    from activities.fulfillment import FunctionCall, run_order_function
    from activities.messaging import (
        FalloutMessage,
        JeopardyMessage,
        MessagingActivities,
        ProvisioningOrderMessage,
        SalesOrderUpdateMessage,
    )
    from o2a import ids, visibility
    from o2a.models import (
        ComponentKind,
        ComponentState,
        ComponentUpdate,
        CustomerOrder,
        FulfillmentMode,
        FulfillmentStatus,
        JeopardyView,
        LineUpdate,
        LineView,
        OrderComponent,
        OrderPlan,
        OrderState,
        OrderStatus,
        ProvisioningOrder,
        ProvisioningResult,
        ProvisioningRevision,
        RevisionView,
        SalesOrderLine,
    )
    from o2a.revision import (
        Compensation,
        RevisionPlan,
        cancellation_plan,
        hard_ponr_violations,
        plan_revision,
    )
    from o2a.simulator import UNDO_PREFIX
    from o2a.tracking import FulfillmentTracker
    from workflows.contracts.customer_order import CancelRequest, OperatorRequest
    from workflows.policies import (
        DECOMPOSITION_TIMEOUT,
        FULFILLMENT_HEARTBEAT,
        FULFILLMENT_RETRY,
        FULFILLMENT_TIMEOUT,
        MESSAGE_RETRY,
        MESSAGE_TIMEOUT,
    )
    from workflows.provisioning_order import (
        CANCEL_SIGNAL,
        COMPONENT_UPDATE_SIGNAL,
        RESUME_SIGNAL,
        REVISE_SIGNAL,
        SUSPEND_SIGNAL,
        ProvisioningOrderWorkflow,
    )

STATUS_QUERY = "status"
RESOLVE_SIGNAL = "resolve"
ABORT_SIGNAL = "abort"
JEOPARDY_LEVELS = (("Low", 1.0), ("Medium", 1.5), ("High", 2.0), ("Critical", 3.0))

# The simulator's step name for each non-provisioning component kind.
KIND_STEPS = {
    ComponentKind.SYNC_CUSTOMER: "sync",
    ComponentKind.SHIP: "ship",
    ComponentKind.BILLING: "billing",
}


@workflow.defn
class CustomerOrderWorkflow:
    @workflow.init
    def __init__(self, order: CustomerOrder) -> None:
        self._order = order
        self._state = OrderState.NOT_STARTED
        self._tracker: FulfillmentTracker | None = None
        self._inbox: list[ComponentUpdate] = []
        self._runs: dict[str, int] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._crm_updates = 0
        self._published: tuple[OrderState, FulfillmentStatus] | None = None
        self._resolve: list[str | None] = []
        self._suspended = False
        self._abort: OperatorRequest | None = None
        self._fallouts_reported = 0
        self._waiting: set[str] = set()
        self._plan: OrderPlan | None = None
        self._requests: list[CustomerOrder | CancelRequest] = []
        self._children: dict[
            str, ChildWorkflowHandle[ProvisioningOrderWorkflow, ProvisioningResult]
        ] = {}
        self._running_functions: set[str] = set()
        self._starting: set[str] = set()
        """Provisioning components between "started" and having a child handle to signal."""
        self._keep_lines: dict[str, list[str]] = {}
        self._outcome: RevisionView | None = None

    @workflow.run
    async def run(self, order: CustomerOrder) -> OrderStatus:
        plan = self._plan = await self._decompose(order)
        self._tracker = FulfillmentTracker(order, plan)
        while True:
            if self._abort is not None:
                # At once, without compensation; the children close with this workflow.
                self._state = OrderState.ABORTED
                await self._publish()
                break
            if self._requests:
                request = self._requests.pop(0)
                if isinstance(request, CancelRequest):
                    if await self._cancel(request):
                        break
                else:
                    await self._revise(request)
                continue
            tracker = self._tracker
            for component_id in self._resolve:
                tracker.reset_failed(component_id)
            self._resolve.clear()
            if not self._suspended:
                for component_id in tracker.ready_components():
                    self._start(self._plan.component(component_id))
            # Fallout puts the order in `failed` at once; independent components carry on,
            # and once nothing runs the order waits, durably, for an operator's resolve.
            self._state = (
                OrderState.SUSPENDED
                if self._suspended
                else OrderState.FAILED
                if tracker.has_failed()
                else OrderState.WAITING
                if tracker.only_waiting()
                else OrderState.IN_PROGRESS
            )
            await self._publish()
            if tracker.is_finished() and not self._requests:
                self._state = OrderState.COMPLETED
                await self._publish()
                break
            await workflow.wait_condition(self._has_news)
            self._drain_inbox()
        await workflow.wait_condition(workflow.all_handlers_finished)
        # Changes queued behind a cancel are answered too: the order they meant is gone.
        for request in self._requests:
            number = (
                self._order.revision if isinstance(request, CancelRequest) else request.revision
            )
            self._accept(
                RevisionView(number=number, outcome="rejected", reason=f"order is {self._state}")
            )
        if self._requests:
            self._requests.clear()
            await self._publish()
        return self._tracker.snapshot(self._state, self._crm_updates)

    # --- signals and queries ------------------------------------------------------------------

    @workflow.signal(name=COMPONENT_UPDATE_SIGNAL)
    def component_update(self, update: ComponentUpdate) -> None:
        self._inbox.append(update)

    @workflow.signal(name=REVISE_SIGNAL)
    def revise(self, order: CustomerOrder) -> None:
        """A revision waits its turn; a revision with FulfillmentModeCode CANCEL is a cancel."""
        if order.fulfillment_mode is FulfillmentMode.CANCEL:
            self._requests.append(
                CancelRequest(reason=f"revision {order.revision} with FulfillmentModeCode CANCEL")
            )
        else:
            self._requests.append(order)

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self, request: CancelRequest) -> None:
        self._requests.append(request)

    def _has_news(self) -> bool:
        suspension_changed = self._suspended != (self._state is OrderState.SUSPENDED)
        return bool(self._inbox or self._requests or self._resolve) or (
            self._abort is not None or suspension_changed
        )

    @workflow.signal(name=RESOLVE_SIGNAL)
    def resolve(self, request: OperatorRequest | None = None) -> None:
        """Operator action: retry the failed components (or one of them)."""
        self._resolve.append(request.component if request else None)

    @workflow.signal(name=SUSPEND_SIGNAL)
    async def suspend(self) -> None:
        """Running steps finish; no new step starts, here or in the SOM children."""
        self._suspended = True
        await self._tell_children(SUSPEND_SIGNAL)

    @workflow.signal(name=RESUME_SIGNAL)
    async def resume(self) -> None:
        self._suspended = False
        await self._tell_children(RESUME_SIGNAL)

    @workflow.signal(name=ABORT_SIGNAL)
    def abort(self, request: OperatorRequest | None = None) -> None:
        self._abort = request or OperatorRequest()

    async def _tell_children(self, signal: str) -> None:
        for child in list(self._children.values()):
            await self._tell_child(child, signal)

    async def _tell_child(
        self, child: ChildWorkflowHandle[ProvisioningOrderWorkflow, ProvisioningResult], signal: str
    ) -> None:
        # A child that finished meanwhile has nothing left to hold or release.
        with contextlib.suppress(FailureError):
            await child.signal(signal)

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> OrderStatus:
        if self._tracker is not None:
            return self._tracker.snapshot(self._state, self._crm_updates)
        return OrderStatus(
            order_number=self._order.order_number,
            revision=self._order.revision,
            state=self._state,
            status=FulfillmentStatus.OPEN,
            customer_account=self._order.customer_account,
            lines=[
                LineView(
                    id=line.id,
                    name=line.item.name,
                    action=line.action,
                    product_class=line.item.product_class,
                    status=FulfillmentStatus.PENDING,
                )
                for line in self._order.lines
            ],
            components=[],
        )

    # --- running components -------------------------------------------------------------------

    def _start(self, component: OrderComponent) -> None:
        """Start a component now, or (future-dated) at requested delivery minus duration."""
        assert self._tracker is not None
        self._runs[component.id] = self._runs.get(component.id, 0) + 1
        start_at = self._start_time(component)
        if start_at is not None and start_at > workflow.now():
            self._tracker.apply(
                ComponentUpdate(component_id=component.id, state=ComponentState.WAITING),
                workflow.now(),
            )
            self._spawn(self._wait_then_begin(component, start_at))
            return
        self._tracker.apply(self._began(component), workflow.now())
        self._spawn(self._run_component(component))

    def _began(self, component: OrderComponent) -> ComponentUpdate:
        if component.kind is not ComponentKind.PROVISION:
            self._running_functions.add(component.id)
        return ComponentUpdate(
            component_id=component.id,
            state=ComponentState.IN_PROGRESS,
            milestone=component.start_milestone,
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    def _start_time(self, component: OrderComponent) -> datetime | None:
        dates = [
            line.requested_delivery_date or self._order.requested_delivery_date
            for line in self._lines_of(component.lines)
        ]
        known = [d for d in dates if d is not None]
        if not known:
            return None
        return min(known) - timedelta(seconds=component.expected_duration_seconds)

    async def _wait_then_begin(self, component: OrderComponent, start_at: datetime) -> None:
        """A timer, not a poll: the order sleeps durably until the component's start."""
        self._waiting.add(component.id)
        try:
            await workflow.wait_condition(
                lambda: component.id not in self._waiting,
                timeout=(start_at - workflow.now()).total_seconds(),
            )
            return  # recalled by a revision or cancel: the new plan decides
        except TimeoutError:
            pass
        # Its time has come; a suspended order holds it until resume (or a recall).
        await workflow.wait_condition(
            lambda: not self._suspended or component.id not in self._waiting
        )
        if component.id not in self._waiting:
            return
        self._waiting.discard(component.id)
        self._inbox.append(self._began(component))
        await self._run_component(component)

    def _recall_waiting(self) -> None:
        """Future-dated components not yet started go back to pending for the new plan."""
        assert self._tracker is not None
        for component_id in self._waiting:
            self._tracker.components[component_id].state = ComponentState.PENDING
        self._waiting.clear()

    async def _watch_jeopardy(self, component: OrderComponent) -> None:
        """Raise Low, Medium, High, Critical as the component runs 1x, 1.5x, 2x, 3x late."""
        assert self._tracker is not None
        started = workflow.now()
        expected_by = started + timedelta(seconds=component.expected_duration_seconds)
        for severity, factor in JEOPARDY_LEVELS:
            due = started + timedelta(seconds=component.expected_duration_seconds * factor)
            await workflow.sleep(max((due - workflow.now()).total_seconds(), 0.001))
            jeopardy = JeopardyView(
                component=component.id,
                severity=severity,
                raised_at=workflow.now(),
                expected_by=expected_by,
            )
            self._tracker.jeopardies.append(jeopardy)
            await workflow.execute_activity_method(
                MessagingActivities.send_jeopardy,
                JeopardyMessage(
                    message_id=ids.jeopardy_message_id(
                        self._order.order_number,
                        self._order.revision,
                        component.id,
                        severity,
                        self._runs.get(component.id, 1),
                    ),
                    created=workflow.now(),
                    order_number=self._order.order_number,
                    revision=self._order.revision,
                    jeopardy=jeopardy,
                    lines=component.lines,
                ),
                start_to_close_timeout=MESSAGE_TIMEOUT,
                retry_policy=MESSAGE_RETRY,
            )

    async def _run_component(self, component: OrderComponent) -> None:
        state = ComponentState.COMPLETED
        watch = asyncio.create_task(self._watch_jeopardy(component))
        try:
            if component.kind is ComponentKind.PROVISION:
                result = await self._provision(component)
                state, line_updates = result.state, result.line_updates
            else:
                line_updates = await self._call_function(component)
        except FailureError as err:
            self._inbox.append(_failed(component.id, err))
            return
        finally:
            watch.cancel()
            self._starting.discard(component.id)
            self._running_functions.discard(component.id)
            self._children.pop(component.id, None)
        self._inbox.append(
            ComponentUpdate(
                component_id=component.id,
                state=state,
                milestone=component.complete_milestone
                if state is ComponentState.COMPLETED
                else None,
                line_updates=line_updates,
            )
        )

    def _lines_of(
        self, line_ids: list[str], order: CustomerOrder | None = None
    ) -> list[SalesOrderLine]:
        wanted = set(line_ids)
        return [line for line in (order or self._order).lines if line.id in wanted]

    async def _call_function(
        self,
        component: OrderComponent,
        lines: list[SalesOrderLine] | None = None,
        undo: bool = False,
    ) -> list[LineUpdate]:
        """The component's function for its lines; ``undo`` runs the function's undo step."""
        step = KIND_STEPS[component.kind]
        return await workflow.execute_activity(
            run_order_function,
            FunctionCall(
                order_number=self._order.order_number,
                revision=self._order.revision,
                component_id=component.id,
                function=component.function,
                target_system=component.target_system,
                step=UNDO_PREFIX + step if undo else step,
                lines=self._lines_of(component.lines) if lines is None else lines,
                run=self._runs.get(component.id, 1),
            ),
            start_to_close_timeout=FULFILLMENT_TIMEOUT,
            heartbeat_timeout=FULFILLMENT_HEARTBEAT,
            retry_policy=FULFILLMENT_RETRY,
        )

    async def _provision(
        self, component: OrderComponent, undo_lines: list[SalesOrderLine] | None = None
    ) -> ProvisioningResult:
        """A SOM child run: the component's lines, or (``undo_lines``) only undo work."""
        order = self._order
        self._runs[component.id] = run = self._runs.get(component.id, 0) + (1 if undo_lines else 0)
        if not undo_lines:
            self._starting.add(component.id)
        provisioning_order = ProvisioningOrder(
            order_number=order.order_number,
            revision=order.revision,
            component_id=component.id,
            target_system=component.target_system,
            parent_workflow_id=workflow.info().workflow_id,
            priority=order.priority,
            customer_account=order.customer_account,
            run=run,
            lines=[] if undo_lines else self._lines_of(component.lines),
            done_lines=[] if undo_lines else self._keep_lines.pop(component.id, []),
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
            static_summary=f"{component.target_system}: {len(component.lines)} lines",
        )
        if not undo_lines:
            self._children[component.id] = handle
            self._starting.discard(component.id)
            if self._suspended:
                await self._tell_child(handle, SUSPEND_SIGNAL)
        return await handle

    # --- revisions and cancels --------------------------------------------------------------

    async def _decompose(self, order: CustomerOrder) -> OrderPlan:
        return await workflow.execute_activity_method(
            DecompositionActivities.decompose_order,
            order,
            start_to_close_timeout=DECOMPOSITION_TIMEOUT,
            retry_policy=FULFILLMENT_RETRY,
        )

    async def _settle_functions(self) -> None:
        """Short inline calls finish first, and children being started get their handle, so
        compensation sees final states and can signal every running child."""
        await workflow.wait_condition(lambda: not self._running_functions and not self._starting)
        self._drain_inbox()

    async def _revise(self, order: CustomerOrder) -> None:
        current, tracker, old_plan = self._order, self._tracker, self._plan
        assert tracker is not None and old_plan is not None
        if order.order_number != current.order_number:
            return await self._reject(order.revision, f"order number {order.order_number} differs")
        if order.revision <= current.revision:
            return await self._reject(
                order.revision,
                f"revision {order.revision} is not higher than the current {current.revision}",
            )
        self._recall_waiting()
        previous_state, self._state = self._state, OrderState.AMENDING
        await self._publish()
        try:
            plan = await self._decompose(order)
        except ActivityError as err:
            self._state = previous_state
            return await self._reject(order.revision, _fault_of(err)[1])
        await self._settle_functions()
        while True:
            revision = plan_revision(current, old_plan, order, plan, tracker.progress())
            violations = hard_ponr_violations(revision, old_plan, tracker.ponr_passed)
            if violations:
                self._state = previous_state
                return await self._reject(
                    order.revision, f"past the hard point of no return: {', '.join(violations)}"
                )
            if await self._signal_children(revision, order, plan):
                break
        await self._undo_finished(revision, old_plan, current)
        self._tracker = tracker.revised(order, plan, revision)
        plan_ids = {c.id for c in plan.components}
        for comp in revision.compensations:
            if comp.component_id in self._children:
                continue  # a running child compensates itself and reports how it ended
            if comp.component_id not in plan_ids:  # dropped: undone, or never started
                self._tracker.components[comp.component_id].state = ComponentState.CANCELLED
            elif (
                comp.kind is Compensation.REDO
                and plan.component(comp.component_id).kind is ComponentKind.PROVISION
            ):
                # A SOM rerun skips the lines whose work stands; inline calls redo them all.
                self._keep_lines[comp.component_id] = comp.keep_lines
        self._order, self._plan = order, plan
        self._accept(RevisionView(number=order.revision, outcome="accepted"))
        workflow.upsert_search_attributes([visibility.ORDER_REVISION.value_set(order.revision)])

    async def _cancel(self, request: CancelRequest) -> bool:
        """True when the order is cancelled; False when the cancel is refused."""
        tracker, plan = self._tracker, self._plan
        assert tracker is not None and plan is not None
        self._recall_waiting()
        await self._settle_functions()
        reason = request.reason or "cancel requested"
        if tracker.is_finished():
            await self._reject(
                self._order.revision, f"cancel refused: the order is complete ({reason})"
            )
            return False
        while True:
            revision = cancellation_plan(self._order, plan, tracker.progress())
            violations = hard_ponr_violations(revision, plan, tracker.ponr_passed)
            if violations:
                await self._reject(
                    self._order.revision,
                    f"cancel refused: past the hard point of no return: {', '.join(violations)}",
                )
                return False
            if self._state is not OrderState.CANCELING:
                self._state = OrderState.CANCELING
                await self._publish()
            if await self._signal_children(revision, None, None):
                break
        await self._undo_finished(revision, plan, self._order)
        await workflow.wait_condition(lambda: not self._children)
        self._drain_inbox()
        tracker.cancel_all()
        self._state = OrderState.CANCELLED
        self._accept(RevisionView(number=self._order.revision, outcome="cancelled", reason=reason))
        await self._publish()
        return True

    async def _signal_children(
        self, revision: RevisionPlan, order: CustomerOrder | None, plan: OrderPlan | None
    ) -> bool:
        """Running SOM children compensate themselves. False when one finished before the
        signal reached it: the caller plans again with that component's final state."""
        for comp in revision.compensations:
            child = self._children.get(comp.component_id)
            if child is None or comp.kind is Compensation.NONE:
                continue
            try:
                if comp.kind is Compensation.UNDO:
                    await child.signal(CANCEL_SIGNAL)
                else:
                    assert order is not None and plan is not None
                    lines = self._lines_of(plan.component(comp.component_id).lines, order)
                    await child.signal(
                        REVISE_SIGNAL,
                        ProvisioningRevision(lines=lines, undo_lines=comp.undo_lines),
                    )
            except FailureError:
                await self._child_finished(comp.component_id)
                return False
        return True

    async def _child_finished(self, component_id: str) -> None:
        await workflow.wait_condition(lambda: component_id not in self._children)
        self._drain_inbox()

    async def _undo_finished(
        self, revision: RevisionPlan, old_plan: OrderPlan, old_order: CustomerOrder
    ) -> None:
        """Finished work is undone here, a component only after every component that
        depended on it (billing before the provisioning it followed)."""
        old_ids = {c.id for c in old_plan.components}
        undo = {
            c.component_id: c.undo_lines
            for c in revision.compensations
            if c.undo_lines and c.component_id in old_ids and c.component_id not in self._children
        }
        dependents = {
            c.id: {d.id for d in old_plan.components if c.id in d.depends_on}
            for c in old_plan.components
        }
        while undo:
            wave = [cid for cid in undo if not dependents[cid] & set(undo)]
            await asyncio.gather(
                *(
                    self._undo_component(
                        old_plan.component(cid), self._lines_of(undo[cid], old_order)
                    )
                    for cid in wave
                )
            )
            for cid in wave:
                del undo[cid]

    async def _undo_component(self, component: OrderComponent, lines: list[SalesOrderLine]) -> None:
        """An undo that fails is fallout like any step: the order waits for an operator."""
        try:
            if component.kind is ComponentKind.PROVISION:
                await self._provision(component, undo_lines=lines)
            else:
                await self._call_function(component, lines, undo=True)
        except FailureError as err:
            self._inbox.append(_failed(component.id, err))

    def _accept(self, outcome: RevisionView) -> None:
        assert self._tracker is not None
        self._tracker.revisions.append(outcome)
        self._outcome = outcome

    async def _reject(self, number: int, reason: str) -> None:
        """Recorded, reported to CRM; the order carries on as it was."""
        self._accept(RevisionView(number=number, outcome="rejected", reason=reason))
        await self._publish()

    def _drain_inbox(self) -> None:
        assert self._tracker is not None
        updates, self._inbox = self._inbox, []
        for update in updates:
            self._tracker.apply(update, workflow.now())

    # --- telling the world ----------------------------------------------------------------------

    async def _report_fallouts(self) -> None:
        """Each new incident: an AIA Fault to error handling and a trouble ticket to CRM."""
        assert self._tracker is not None
        order = self._order
        for fallout in self._tracker.fallouts[self._fallouts_reported :]:
            component = (
                next((c for c in self._plan.components if c.id == fallout.component), None)
                if self._plan
                else None
            )
            failed = (
                ids.provisioning_order_message_id(
                    order.order_number,
                    order.revision,
                    fallout.component,
                    self._runs.get(fallout.component, 1),
                )
                if component is not None and component.kind is ComponentKind.PROVISION
                else order.revision_id or order.order_number
            )
            await workflow.execute_activity_method(
                MessagingActivities.send_fallout,
                FalloutMessage(
                    order_number=order.order_number,
                    created=workflow.now(),
                    fallout=fallout,
                    failed_message_id=failed,
                ),
                start_to_close_timeout=MESSAGE_TIMEOUT,
                retry_policy=MESSAGE_RETRY,
            )
            self._fallouts_reported += 1

    async def _publish(self) -> None:
        """CRM, search attributes and UI details, each only when something changed."""
        tracker = self._tracker
        assert tracker is not None
        status = tracker.order_status()
        workflow.set_current_details(tracker.details_markdown(self._state))
        if self._published != (self._state, status):
            self._published = (self._state, status)
            workflow.upsert_search_attributes(
                [
                    visibility.ORDER_STATE.value_set(self._state.value),
                    visibility.ORDER_STATUS.value_set(status.value),
                ]
            )
        await self._report_fallouts()
        changes = tracker.take_changes()
        outcome, self._outcome = self._outcome, None
        if changes is None and outcome is None:
            return
        self._crm_updates += 1
        await workflow.execute_activity_method(
            MessagingActivities.send_sales_order_update,
            SalesOrderUpdateMessage(
                message_id=ids.sales_order_update_message_id(
                    self._order.order_number, self._order.revision, self._crm_updates
                ),
                created=workflow.now(),
                order_number=self._order.order_number,
                revision=self._order.revision,
                order_status=status,
                lines=changes or [],
                revision_outcome=outcome,
            ),
            start_to_close_timeout=MESSAGE_TIMEOUT,
            retry_policy=MESSAGE_RETRY,
        )


def _failed(component_id: str, err: BaseException) -> ComponentUpdate:
    """A failed step as the component update that raises fallout."""
    code, message, step = _fault_of(err)
    return ComponentUpdate(
        component_id=component_id,
        state=ComponentState.FAILED,
        step=step,
        fault_code=code,
        fault_message=message,
    )


def _fault_of(err: BaseException) -> tuple[str, str, str | None]:
    """The innermost application error names the fault code; its message says what failed."""
    cause: BaseException | None = err
    innermost: ApplicationError | None = None
    while cause is not None:
        if isinstance(cause, ApplicationError):
            innermost = cause
        cause = cause.__cause__
    if innermost is None:
        return "FULFILLMENT_FAILED", str(err), None
    details = innermost.details
    code = str(details[0]) if details else (innermost.type or "FULFILLMENT_FAILED")
    step = str(details[2]) if len(details) > 2 else None
    return code, innermost.message, step
