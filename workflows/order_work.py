"""The work of one component: inline fulfillment calls (an amended component sends only what
changed), SOM child runs, and undo of finished work. What a failed call means (its fault)
is read here too, so fallout is built the same way wherever a call fails.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ChildWorkflowHandle

with workflow.unsafe.imports_passed_through():
    from activities.decomposition import DecompositionActivities
    from activities.messaging import MessagingActivities, ProvisioningOrderMessage
    from o2a import ids, visibility
    from o2a.faults import FULFILLMENT_FAULT_TYPE
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
    from o2a.revision import line_changed
    from workflows.contracts.provisioning_order import ProvisioningOrder, ProvisioningResult
    from workflows.fulfillment_call import fulfill
    from workflows.messages import send_message
    from workflows.order_context import OrderContext
    from workflows.policies import DECOMPOSITION_TIMEOUT, FULFILLMENT_RETRY
    from workflows.provisioning_order import ProvisioningOrderWorkflow

ChildHandle = ChildWorkflowHandle[ProvisioningOrderWorkflow, ProvisioningResult]


async def decompose(order: CustomerOrder, *, local: bool) -> OrderPlan:
    """A regular activity: its result is an event of the history, so the plan is there and
    replay never reads the catalog. ``local`` for a run of the builds that decomposed
    through a local activity (``OrderPatches.local_decomposition``): it replays as it ran."""
    execute = workflow.execute_local_activity_method if local else workflow.execute_activity_method
    return await execute(
        DecompositionActivities.decompose_order,
        order,
        start_to_close_timeout=DECOMPOSITION_TIMEOUT,
        retry_policy=FULFILLMENT_RETRY,
    )


def fault_of(err: BaseException) -> FaultDetail:
    """The innermost application error names the fault; its message says what failed. Only
    a fulfillment fault's details are a FaultDetail: another error's (a step result that a
    SOM child of an older build did not take) would not validate, and the order would
    crash instead of falling out."""
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
        if innermost.details and innermost.type == FULFILLMENT_FAULT_TYPE
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


class ComponentWork:
    def __init__(self, ctx: OrderContext) -> None:
        self._ctx = ctx
        self._fulfilled: dict[str, list[SalesOrderLine]] = {}
        self._line_index: tuple[CustomerOrder, dict[str, int]] | None = None

    # --- what a revision leaves standing ---------------------------------------------------------

    def hold_fulfilled(self, component_id: str, lines: list[SalesOrderLine]) -> None:
        """A completed component a revision changes runs again later; until then these lines'
        work (as they were fulfilled) stands in the system, and its rerun is the difference
        between them and the order in force then, however many revisions came between."""
        self._fulfilled[component_id] = lines

    def fulfilled(self) -> dict[str, list[SalesOrderLine]]:
        """Components waiting for their rerun, with the lines whose work stands."""
        return dict(self._fulfilled)

    def take_back(self, component_id: str, line_ids: list[str]) -> None:
        """These lines' work is being undone now: it no longer stands."""
        standing = self._fulfilled[component_id]
        self._fulfilled[component_id] = [line for line in standing if line.id not in line_ids]

    def forget(self, component_id: str) -> None:
        self._fulfilled.pop(component_id, None)

    def lines_of(
        self, line_ids: list[str], order: CustomerOrder | None = None
    ) -> list[SalesOrderLine]:
        order = order or self._ctx.order
        if self._line_index is None or self._line_index[0] is not order:
            self._line_index = (order, {line.id: i for i, line in enumerate(order.lines)})
        index = self._line_index[1]
        positions = sorted(index[line_id] for line_id in set(line_ids) if line_id in index)
        return [order.lines[i] for i in positions]

    async def _fulfill(
        self, component: OrderComponent, step: Step, lines: list[SalesOrderLine]
    ) -> list[LineUpdate]:
        """One call to the component's fulfillment system: one step for these lines."""
        order = self._ctx.order
        return await fulfill(
            order_number=order.order_number,
            revision=order.revision,
            component_id=component.id,
            function=component.function,
            target_system=component.target_system,
            run=self._ctx.runs.get(component.id, 1),
            step=step,
            lines=lines,
            route=self._ctx.tracker.plan.fulfillment,
        )

    async def call_function(self, component: OrderComponent) -> list[LineUpdate]:
        """The do step for every line; for a component that already fulfilled an earlier
        revision, only the difference: the undo step for lines gone, the amend step for lines
        changed, the do step for lines added, no call for the rest."""
        step = KIND_STEPS[component.kind][0]
        fulfilled = self._fulfilled.get(component.id)
        wanted = self.lines_of(component.lines)
        if fulfilled is None:
            return await self._fulfill(component, step, wanted)
        had = {line.id: line for line in fulfilled}
        gone = [line for line in fulfilled if line.id not in component.lines]
        changed = [line for line in wanted if line.id in had and line_changed(had[line.id], line)]
        added = [line for line in wanted if line.id not in had]
        updates: list[LineUpdate] = []
        # Each call that succeeds is what stands now, so a retry after fallout sends the rest.
        if gone:
            await self._fulfill(component, step.undo(), gone)
            self._fulfilled[component.id] = fulfilled = [
                line for line in fulfilled if line.id in component.lines
            ]
        if changed:
            updates += await self._fulfill(component, step.amend(), changed)
            fresh = {line.id: line for line in changed}
            self._fulfilled[component.id] = fulfilled = [
                fresh.get(line.id, line) for line in fulfilled
            ]
        if added:
            updates += await self._fulfill(component, step, added)
        del self._fulfilled[component.id]
        return updates

    async def undo(self, component: OrderComponent, lines: list[SalesOrderLine]) -> None:
        """Take back a finished component's work for these lines (a new run: a retry after
        fallout is a fresh attempt)."""
        if component.kind is ComponentKind.PROVISION:
            await (await self.start_child(component, undo_lines=lines))
            return
        self._ctx.runs[component.id] = self._ctx.runs.get(component.id, 0) + 1
        await self._fulfill(component, KIND_STEPS[component.kind][0].undo(), lines)

    async def start_child(
        self, component: OrderComponent, undo_lines: list[SalesOrderLine] | None = None
    ) -> ChildHandle:
        """Start a SOM child run: the component's lines, or (``undo_lines``) only undo work."""
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
            done_lines=[]
            if undo_lines
            else [line.id for line in self._fulfilled.pop(component.id, [])],
            undo_lines=undo_lines or [],
            fulfillment=ctx.tracker.plan.fulfillment,
            som_announces=ctx.patches.diet,
            som_patched=True,
        )
        if not provisioning_order.som_announces:
            await send_message(
                MessagingActivities.send_provisioning_order,
                ProvisioningOrderMessage.of(provisioning_order, workflow.now()),
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
        return handle
