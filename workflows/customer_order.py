"""CustomerOrderWorkflow: the COM role for one customer order.

Decomposes the order (through an activity, so the plan is in history), runs components as
their dependencies allow, provisioning ones as SOM child workflows, and turns every
component state change into line statuses, milestones and the order-level status. CRM
hears of each customer-visible change once, in an UpdateSalesOrderEBM.

This module is the run loop and the order's interface (``workflows/contracts/``); the parts
it drives: ``order_runner`` (components in flight), ``order_changes`` (revisions and
cancels), ``order_reporting`` (CRM, fallout, jeopardy, what Temporal shows).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from o2a.models import (
        ComponentUpdate,
        CustomerOrder,
        FulfillmentMode,
        FulfillmentStatus,
        LineView,
        OperatorActionView,
        OrderState,
        OrderStatus,
        RevisionView,
    )
    from o2a.tracking import FulfillmentTracker
    from workflows.contracts.customer_order import (
        ABORT_UPDATE,
        AWAIT_ATTENTION_UPDATE,
        CANCEL_SIGNAL,
        REQUEST_OUTCOME_UPDATE,
        RESOLVE_UPDATE,
        RESUME_UPDATE,
        REVISE_SIGNAL,
        REVISION_BASIS_QUERY,
        STATUS_QUERY,
        SUSPEND_UPDATE,
        CancelRequest,
        CarriedOrder,
        OperatorRequest,
        OrderStart,
        OutcomeRequest,
        RevisionBasis,
        RevisionRequest,
    )
    from workflows.contracts.provisioning_order import COMPONENT_UPDATE_SIGNAL
    from workflows.order_changes import ChangeCoordinator
    from workflows.order_context import ATTENTION_STATES, FINAL_STATES, OrderContext
    from workflows.order_reporting import OrderReporter
    from workflows.order_runner import ComponentRunner
    from workflows.order_work import ComponentWork, decompose

SUSPENDABLE = (OrderState.IN_PROGRESS, OrderState.FAILED, OrderState.WAITING)
REPEATED_REQUEST_PATCH = "repeated-request-taken-once"
"""workflow.patched: a revise or cancel whose request ID the order already has is dropped."""
CONTINUE_AS_NEW_PATCH = "continue-as-new-when-suggested"
"""workflow.patched: an order idle with a long history continues as new. A history from
before it replays waiting, as it ran."""


@workflow.defn
class CustomerOrderWorkflow:
    @workflow.init
    def __init__(self, order: OrderStart) -> None:
        """A new order, or one continued as new with what its previous run carried (one
        parameter: a history's start event always has one payload)."""
        carried = order if isinstance(order, CarriedOrder) else None
        self._ctx = OrderContext(order.submitted if isinstance(order, CarriedOrder) else order)
        self._reporter = OrderReporter(self._ctx)
        self._work = ComponentWork(self._ctx)
        self._runner = ComponentRunner(self._ctx, self._reporter, self._work)
        self._changes = ChangeCoordinator(self._ctx, self._runner, self._work, self._reporter)
        self._runs_before = 0
        self._stay = False
        """Continue-as-new was due, but this history is from before it: replay as it ran."""
        if carried is not None:
            self._take_over(carried)

    @workflow.run
    async def run(self, order: OrderStart) -> OrderStatus:
        """The run loop, watched: a bug in any task the order spawned fails this workflow
        task at once, so nothing it commanded meanwhile is recorded."""
        body = asyncio.create_task(self._run(self._ctx.order))
        watched: list[asyncio.Future[Any]] = [body, self._ctx.crashed]
        await workflow.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if self._ctx.crashed.done():
            self._ctx.crashed.result()
        return body.result()

    async def _run(self, order: CustomerOrder) -> OrderStatus:
        ctx = self._ctx
        if not ctx.decomposed:  # not carried from a previous run
            ctx.tracker = FulfillmentTracker(
                order, await decompose(order, local=ctx.patches.local_decomposition)
            )
            workflow.logger.info(
                "revision %d planned: %d components",
                order.revision,
                len(ctx.tracker.plan.components),
            )
        self._runner.watch_jeopardies()
        while True:
            if ctx.abort is not None:
                # At once, without compensation; the children close with this workflow.
                ctx.tracker.abort(workflow.now())
                ctx.state = OrderState.ABORTED
                await self._reporter.publish()
                break
            if ctx.changes:
                if await self._changes.take(ctx.changes.pop(0)):
                    break
                continue
            tracker = ctx.tracker
            for component_id in ctx.resolve:
                for cid in tracker.reset_failed(component_id):
                    if cid in tracker.retired:  # dropped by a revision; its undo fell out
                        self._runner.undo_retired(cid)
            if None in ctx.resolve and tracker.undelivered():
                await self._reporter.redeliver()
            ctx.resolve.clear()
            if not ctx.suspended:
                for component_id in tracker.ready_components():
                    self._runner.start(tracker.plan.component(component_id))
            if tracker.is_finished() and not ctx.changes and not tracker.has_failed():
                if await self._reporter.complete():
                    break
                continue  # CRM could not be told: the order waits in `failed`
            # Fallout puts the order in `failed` at once; independent components carry on,
            # and once nothing runs the order waits, durably, for an operator's resolve.
            ctx.state = (
                OrderState.SUSPENDED
                if ctx.suspended
                else OrderState.FAILED
                if tracker.has_failed()
                else OrderState.WAITING
                if tracker.only_waiting()
                else OrderState.IN_PROGRESS
            )
            await self._reporter.publish()
            await ctx.wait(lambda: self._has_news() or self._continue_as_new_due())
            if self._continue_as_new_due():
                self._continue_as_new()
            ctx.drain_inbox()
        # Changes queued behind the end, or arriving while the last handlers finish, are
        # answered too: the order they meant is gone, and whoever waits for them returns.
        while True:
            while ctx.changes:
                await self._changes.reject(ctx.changes.pop(0), f"order is {ctx.state.value}")
            await workflow.wait_condition(
                lambda: workflow.all_handlers_finished() or bool(ctx.changes)
            )
            if not ctx.changes:
                workflow.logger.info("order %s", ctx.state.value)
                return ctx.tracker.snapshot(ctx.state, self._reporter.crm_updates)

    # --- continue-as-new: a long-lived order's history stays short -----------------------------

    def _continue_as_new_due(self) -> bool:
        """Temporal suggests it, and the order is idle: nothing in flight (no child, no
        activity, no future-dated wait), nothing queued, no handler running. Such an order
        waits for the outside world (an operator, a revision): the next run carries on."""
        ctx = self._ctx
        return (
            not self._stay
            and workflow.info().is_continue_as_new_suggested()
            and not self._has_news()
            and ctx.abort is None
            and not ctx.changing
            and self._runner.idle
            and self._reporter.idle
            and self._changes.idle
            and workflow.all_handlers_finished()
        )

    def _continue_as_new(self) -> None:
        if not self._ctx.patches.has(CONTINUE_AS_NEW_PATCH):
            self._stay = True
            return
        ctx, reporter = self._ctx, self._reporter
        carried = CarriedOrder(
            submitted=ctx.submitted,
            tracker=ctx.tracker.carried(),
            state=ctx.state,
            suspended=ctx.suspended,
            received=ctx.received,
            updates_taken=sorted(ctx.updates_taken),
            runs=ctx.runs,
            crm_updates=reporter.crm_updates,
            told_state=reporter.told_state,
            published=reporter.published,
            fallouts_reported=reporter.fallouts_reported,
            fulfilled=self._work.fulfilled(),
            runs_before=self._runs_before + 1,
            started=ctx.started,
        )
        workflow.logger.info("continuing as new: run %d of the order", carried.runs_before + 1)
        workflow.continue_as_new(carried)

    def _take_over(self, carried: CarriedOrder) -> None:
        """The previous run's state, before any handler or the run loop sees the order."""
        ctx, reporter = self._ctx, self._reporter
        ctx.tracker = FulfillmentTracker.restored(carried.tracker)
        ctx.state = carried.state
        ctx.suspended = carried.suspended
        ctx.received = carried.received
        ctx.updates_taken = set(carried.updates_taken)
        ctx.runs = carried.runs
        reporter.crm_updates = carried.crm_updates
        reporter.told_state = carried.told_state
        reporter.published = carried.published
        reporter.fallouts_reported = carried.fallouts_reported
        for component_id, lines in carried.fulfilled.items():
            self._work.hold_fulfilled(component_id, lines)
        self._runs_before = carried.runs_before
        if carried.started is not None:
            ctx.started = carried.started

    def _has_news(self) -> bool:
        ctx = self._ctx
        suspension_changed = ctx.suspended != (ctx.state is OrderState.SUSPENDED)
        return bool(ctx.inbox or ctx.changes or ctx.resolve) or suspension_changed

    # --- from SOM children ----------------------------------------------------------------------

    @workflow.signal(name=COMPONENT_UPDATE_SIGNAL)
    def component_update(self, update: ComponentUpdate) -> None:
        """Each update once: a send retried after its signal went out delivers it again."""
        ctx = self._ctx
        if update.message_id is not None:
            if update.message_id in ctx.updates_taken:
                return
            ctx.updates_taken.add(update.message_id)
        ctx.inbox.append(update)

    # --- revisions and cancels: signals, queued in arrival order ---------------------------------

    @workflow.signal(name=REVISE_SIGNAL)
    def revise(self, request: RevisionRequest) -> None:
        """A revision waits its turn; a revision with FulfillmentModeCode CANCEL is a cancel."""
        ctx, order = self._ctx, request.order
        if self._already_received(request.request_id):
            return
        ctx.received.append(request.request_id)
        if order.fulfillment_mode is FulfillmentMode.CANCEL:
            ctx.changes.append(
                CancelRequest(
                    request_id=request.request_id,
                    reason=f"revision {order.revision} with FulfillmentModeCode CANCEL",
                    revision=order.revision,
                )
            )
        else:
            ctx.changes.append(request)

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self, request: CancelRequest) -> None:
        if self._already_received(request.request_id):
            return
        self._ctx.received.append(request.request_id)
        self._ctx.changes.append(request)

    def _already_received(self, request_id: str) -> bool:
        """The same request again (a bus message redelivered after its signal, a door's
        retry): taken once. Histories from before this rule ran a repeat as a second
        request, and replay the same way."""
        if request_id not in self._ctx.received or not self._ctx.patches.has(
            REPEATED_REQUEST_PATCH
        ):
            return False
        workflow.logger.info("request %s received again: already queued or answered", request_id)
        return True

    @workflow.update(name=REQUEST_OUTCOME_UPDATE)
    async def request_outcome(self, request: OutcomeRequest) -> RevisionView:
        """Waits until the revise or cancel with this ID has been answered."""
        await workflow.wait_condition(lambda: self._outcome(request.request_id) is not None)
        outcome = self._outcome(request.request_id)
        assert outcome is not None
        return outcome

    @request_outcome.validator
    def _known_request(self, request: OutcomeRequest) -> None:
        if request.request_id not in self._ctx.received:
            raise ValueError(f"no revise or cancel {request.request_id} reached this order")

    def _outcome(self, request_id: str) -> RevisionView | None:
        if not self._ctx.decomposed:
            return None
        return next((r for r in self._ctx.tracker.revisions if r.request_id == request_id), None)

    # --- operator actions: updates, refused by their validators with the reason -----------------

    @workflow.update(name=RESOLVE_UPDATE)
    def resolve(self, request: OperatorRequest) -> OperatorActionView:
        """Retry the failed components (or one of them), a failed undo included; resolving
        the order as a whole also sends again the messages that could not be delivered."""
        self._ctx.resolve.append(request.component)
        return self._record("resolve", request)

    @resolve.validator
    def _can_resolve(self, request: OperatorRequest) -> None:
        ctx = self._ctx
        failed = ctx.tracker.failed_components() if ctx.decomposed else []
        undelivered = ctx.tracker.undelivered() if ctx.decomposed else []
        if request.component is not None and request.component not in failed:
            raise ValueError(
                f"component {request.component} of order {self._number} has not failed; "
                f"failed: {', '.join(failed) or 'none'}"
            )
        if not failed and not undelivered:
            raise ValueError(
                f"order {self._number} is {ctx.state.value}: nothing has failed, "
                "so there is nothing to resolve"
            )

    @workflow.update(name=SUSPEND_UPDATE)
    async def suspend(self, request: OperatorRequest) -> OperatorActionView:
        """Running steps finish; no new step starts, here or in the SOM children."""
        self._ctx.suspended = True
        action = self._record("suspend", request)
        await self._runner.tell_children("suspend")
        return action

    @suspend.validator
    def _can_suspend(self, request: OperatorRequest) -> None:
        del request
        if self._ctx.suspended:
            raise ValueError(f"order {self._number} is already suspended")
        if self._ctx.changing:
            raise ValueError(
                f"order {self._number} is {self._ctx.state.value} while it takes a revision "
                "or cancel: suspend it once that is done"
            )
        if self._ctx.state not in SUSPENDABLE:
            raise ValueError(
                f"order {self._number} is {self._ctx.state.value}: "
                "only an order in progress, failed or waiting can be suspended"
            )

    @workflow.update(name=RESUME_UPDATE)
    async def resume(self, request: OperatorRequest) -> OperatorActionView:
        self._ctx.suspended = False
        action = self._record("resume", request)
        await self._runner.tell_children("resume")
        return action

    @resume.validator
    def _can_resume(self, request: OperatorRequest) -> None:
        del request
        if not self._ctx.suspended:
            raise ValueError(
                f"order {self._number} is {self._ctx.state.value}: "
                "only a suspended order can be resumed"
            )

    @workflow.update(name=ABORT_UPDATE)
    def abort(self, request: OperatorRequest) -> OperatorActionView:
        """Ends the order at once, without compensation."""
        self._ctx.abort = request
        return self._record("abort", request)

    @abort.validator
    def _can_abort(self, request: OperatorRequest) -> None:
        del request
        if self._ctx.abort is not None:
            raise ValueError(f"order {self._number} is already being aborted")
        if self._ctx.state in FINAL_STATES:
            raise ValueError(f"order {self._number} is {self._ctx.state.value}: it has ended")

    @workflow.update(name=AWAIT_ATTENTION_UPDATE)
    async def await_attention(self) -> OrderStatus:
        """Returns once the order needs someone (failed, suspended) or has ended."""
        await workflow.wait_condition(lambda: self._ctx.state in ATTENTION_STATES)
        return self.status()

    def _record(self, action: str, request: OperatorRequest) -> OperatorActionView:
        view = OperatorActionView(
            action=action,
            operator=request.operator,
            reason=request.reason,
            component=request.component,
            at=workflow.now(),
        )
        if self._ctx.decomposed:
            self._ctx.tracker.record_action(view)
        return view

    @property
    def _number(self) -> str:
        return self._ctx.order.order_number

    # --- queries -------------------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> OrderStatus:
        ctx = self._ctx
        if ctx.decomposed:
            return ctx.tracker.snapshot(ctx.state, self._reporter.crm_updates)
        order = ctx.order
        return OrderStatus(
            order_number=order.order_number,
            revision=order.revision,
            state=ctx.state,
            status=FulfillmentStatus.OPEN,
            customer_account=order.customer_account,
            lines=[
                LineView(
                    id=line.id,
                    name=line.item.name,
                    action=line.action,
                    product_class=line.item.product_class,
                    status=FulfillmentStatus.PENDING,
                )
                for line in order.lines
            ],
            components=[],
        )

    @workflow.query(name=REVISION_BASIS_QUERY)
    def revision_basis(self) -> RevisionBasis:
        tracker = self._ctx.tracker
        return RevisionBasis(
            order=tracker.order,
            plan=tracker.plan,
            progress=tracker.progress(),
            ponr_passed=sorted(tracker.ponr_passed),
            state=self._ctx.state,
        )
