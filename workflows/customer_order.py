"""CustomerOrderWorkflow: the COM role for one customer order.

Decomposes the order (through an activity, so the plan is in history), runs components as
their dependencies allow, provisioning ones as SOM child workflows, and turns every
component state change into line statuses, milestones and the order-level status. CRM
hears of each customer-visible change once, in an UpdateSalesOrderEBM.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.decomposition import DecompositionActivities
    from activities.fulfillment import FunctionCall, run_order_function
    from activities.messaging import (
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
        FulfillmentStatus,
        LineUpdate,
        LineView,
        OrderComponent,
        OrderState,
        OrderStatus,
        ProvisioningOrder,
        SalesOrderLine,
    )
    from o2a.tracking import FulfillmentTracker
    from workflows.policies import (
        DECOMPOSITION_TIMEOUT,
        FULFILLMENT_HEARTBEAT,
        FULFILLMENT_RETRY,
        FULFILLMENT_TIMEOUT,
        MESSAGE_RETRY,
        MESSAGE_TIMEOUT,
    )
    from workflows.provisioning_order import COMPONENT_UPDATE_SIGNAL, ProvisioningOrderWorkflow

STATUS_QUERY = "status"
RESOLVE_SIGNAL = "resolve"

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
        self._resolve_requested = False

    @workflow.run
    async def run(self, order: CustomerOrder) -> OrderStatus:
        plan = await workflow.execute_activity_method(
            DecompositionActivities.decompose_order,
            order,
            start_to_close_timeout=DECOMPOSITION_TIMEOUT,
            retry_policy=FULFILLMENT_RETRY,
        )
        tracker = self._tracker = FulfillmentTracker(order, plan)
        while True:
            if self._resolve_requested:
                self._resolve_requested = False
                tracker.reset_failed()
            for component_id in tracker.ready_components():
                self._start(plan.component(component_id))
            # Fallout puts the order in `failed` at once; independent components carry on,
            # and once nothing runs the order waits, durably, for an operator's resolve.
            self._state = OrderState.FAILED if tracker.has_failed() else OrderState.IN_PROGRESS
            await self._publish()
            if tracker.is_finished():
                break
            await workflow.wait_condition(lambda: bool(self._inbox) or self._resolve_requested)
            self._drain_inbox()
        self._state = OrderState.COMPLETED
        await self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return tracker.snapshot(self._state, self._crm_updates)

    # --- signals and queries ------------------------------------------------------------------

    @workflow.signal(name=COMPONENT_UPDATE_SIGNAL)
    def component_update(self, update: ComponentUpdate) -> None:
        self._inbox.append(update)

    @workflow.signal(name=RESOLVE_SIGNAL)
    def resolve(self) -> None:
        """Operator action: retry the failed components."""
        self._resolve_requested = True

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
        assert self._tracker is not None
        self._runs[component.id] = self._runs.get(component.id, 0) + 1
        self._tracker.apply(
            ComponentUpdate(
                component_id=component.id,
                state=ComponentState.IN_PROGRESS,
                milestone=component.start_milestone,
            ),
            workflow.now(),
        )
        task = asyncio.create_task(self._run_component(component))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run_component(self, component: OrderComponent) -> None:
        try:
            if component.kind is ComponentKind.PROVISION:
                line_updates = await self._provision(component)
            else:
                line_updates = await self._call_function(component)
        except FailureError as err:
            code, message, step = _fault_of(err)
            self._inbox.append(
                ComponentUpdate(
                    component_id=component.id,
                    state=ComponentState.FAILED,
                    step=step,
                    fault_code=code,
                    fault_message=message,
                )
            )
            return
        self._inbox.append(
            ComponentUpdate(
                component_id=component.id,
                state=ComponentState.COMPLETED,
                milestone=component.complete_milestone,
                line_updates=line_updates,
            )
        )

    def _lines_of(self, component: OrderComponent) -> list[SalesOrderLine]:
        wanted = set(component.lines)
        return [line for line in self._order.lines if line.id in wanted]

    async def _call_function(self, component: OrderComponent) -> list[LineUpdate]:
        return await workflow.execute_activity(
            run_order_function,
            FunctionCall(
                order_number=self._order.order_number,
                revision=self._order.revision,
                component_id=component.id,
                function=component.function,
                target_system=component.target_system,
                step=KIND_STEPS[component.kind],
                lines=self._lines_of(component),
                run=self._runs[component.id],
            ),
            start_to_close_timeout=FULFILLMENT_TIMEOUT,
            heartbeat_timeout=FULFILLMENT_HEARTBEAT,
            retry_policy=FULFILLMENT_RETRY,
        )

    async def _provision(self, component: OrderComponent) -> list[LineUpdate]:
        order = self._order
        provisioning_order = ProvisioningOrder(
            order_number=order.order_number,
            revision=order.revision,
            component_id=component.id,
            target_system=component.target_system,
            parent_workflow_id=workflow.info().workflow_id,
            priority=order.priority,
            customer_account=order.customer_account,
            run=self._runs[component.id],
            lines=self._lines_of(component),
        )
        await workflow.execute_activity_method(
            MessagingActivities.send_provisioning_order,
            ProvisioningOrderMessage(
                message_id=ids.provisioning_order_message_id(
                    order.order_number, order.revision, component.id
                ),
                created=workflow.now(),
                order=provisioning_order,
            ),
            start_to_close_timeout=MESSAGE_TIMEOUT,
            retry_policy=MESSAGE_RETRY,
        )
        result = await workflow.execute_child_workflow(
            ProvisioningOrderWorkflow.run,
            provisioning_order,
            id=ids.provisioning_workflow_id(order.order_number, component.id),
            static_summary=f"{component.target_system}: {len(component.lines)} lines",
        )
        return result.line_updates

    def _drain_inbox(self) -> None:
        assert self._tracker is not None
        updates, self._inbox = self._inbox, []
        for update in updates:
            self._tracker.apply(update, workflow.now())

    # --- telling the world ----------------------------------------------------------------------

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
        changes = tracker.take_changes()
        if changes is None:
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
                lines=changes,
            ),
            start_to_close_timeout=MESSAGE_TIMEOUT,
            retry_policy=MESSAGE_RETRY,
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
