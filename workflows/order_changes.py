"""Revisions and cancels of a running order: planning, the children's own compensation,
and undo waves for finished work.

Each change is planned (DO / UNDO / REDO / AMEND / NONE per component) against the order
in force; running SOM children compensate themselves on a signal; finished work is undone
here in reverse dependency order. An undo that fails is fallout like any step: the order
waits, failed, with the incident open and the later waves not run, until an operator
resolves it, which runs the failed undo again.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from o2a import visibility
    from o2a.models import (
        ComponentKind,
        ComponentState,
        CustomerOrder,
        OrderComponent,
        OrderPlan,
        OrderState,
        ProvisioningRevision,
        RevisionView,
        SalesOrderLine,
    )
    from o2a.revision import (
        Compensation,
        RevisionPlan,
        cancellation_plan,
        hard_ponr_violations,
        line_changed,
        plan_revision,
    )
    from workflows.contracts.customer_order import CancelRequest, RevisionRequest
    from workflows.order_context import Change, OrderContext
    from workflows.order_reporting import OrderReporter
    from workflows.order_runner import ComponentRunner
    from workflows.order_work import (
        ComponentWork,
        decompose,
        failed_update,
        fault_of,
    )
    from workflows.provisioning_order import ProvisioningOrderWorkflow


def _settled(task: asyncio.Task[bool | None]) -> None:
    """A change cut short by an abort: how its cancelled calls ended no longer matters."""
    if not task.cancelled():
        task.exception()


def outcome_number(change: Change, current_revision: int) -> int:
    """An outcome is numbered as the request that caused it."""
    if isinstance(change, RevisionRequest):
        return change.order.revision
    return change.revision or current_revision


class ChangeCoordinator:
    def __init__(
        self,
        ctx: OrderContext,
        runner: ComponentRunner,
        work: ComponentWork,
        reporter: OrderReporter,
    ) -> None:
        self._ctx = ctx
        self._runner = runner
        self._work = work
        self._reporter = reporter
        self._before_undo: dict[str, ComponentState] = {}
        self._undo_failed: list[str] = []
        """Components whose undo fell out: they wait for a resolve before it runs again."""

    @property
    def idle(self) -> bool:
        """No undo waiting for an operator's resolve."""
        return not (self._undo_failed or self._before_undo)

    async def take(self, change: Change) -> bool:
        """True when the order has ended (cancelled). Every change gets an outcome, also
        one an abort cut short, so a caller waiting for it is answered."""
        ctx = self._ctx
        ended = False
        ctx.changing = True
        work = asyncio.create_task(
            self._cancel(change) if isinstance(change, CancelRequest) else self._revise(change)
        )
        try:
            # An abort ends the order at once, also in the middle of compensation.
            await workflow.wait_condition(lambda: work.done() or ctx.abort is not None)
        finally:
            ctx.changing = False
        if work.done():
            ended = bool(work.result())
        else:
            work.cancel()
            work.add_done_callback(_settled)
        answered = any(r.request_id == change.request_id for r in self._ctx.tracker.revisions)
        if not answered:
            await self.reject(change, "the order was aborted before the change was done")
        return ended

    async def reject(self, change: Change, reason: str) -> None:
        """Recorded, reported to CRM; the order carries on as it was."""
        self._reporter.record_outcome(
            RevisionView(
                number=outcome_number(change, self._ctx.order.revision),
                outcome="rejected",
                reason=reason,
                request_id=change.request_id,
                kind="cancel" if isinstance(change, CancelRequest) else "revision",
            )
        )
        await self._reporter.publish()

    # --- revisions -----------------------------------------------------------------------------

    async def _revise(self, request: RevisionRequest) -> None:
        ctx, runner = self._ctx, self._runner
        order, current, tracker = request.order, ctx.order, ctx.tracker
        old_plan = tracker.plan
        if order.order_number != current.order_number:
            return await self.reject(request, f"order number {order.order_number} differs")
        if order.revision <= current.revision:
            return await self.reject(
                request,
                f"revision {order.revision} is not higher than the current {current.revision}",
            )
        runner.recall_waiting()
        previous_state, ctx.state = ctx.state, OrderState.AMENDING
        await self._reporter.publish()
        try:
            plan = await decompose(order, local=ctx.patches.local_decomposition)
        except ActivityError as err:
            ctx.state = previous_state
            return await self.reject(request, fault_of(err).message)
        await runner.settle()
        if ctx.abort is not None:
            return
        signalled: list[str] = []
        while True:
            revision = plan_revision(current, old_plan, order, plan, tracker.progress())
            violations = hard_ponr_violations(revision, old_plan, tracker.ponr_passed)
            if violations:
                ctx.state = previous_state
                return await self.reject(
                    request, f"past the hard point of no return: {', '.join(violations)}"
                )
            if await self._signal_children(revision, order, plan, signalled):
                break
        undo = {
            c.component_id: self._work.lines_of(c.undo_lines, current)
            for c in revision.compensations
            if c.undo_lines and c.kind is not Compensation.AMEND
        }
        undo |= self._stale_standing_work(order, plan)
        if not await self._undo_waves(undo, old_plan):
            return  # aborted meanwhile
        children = runner.children()
        ctx.tracker = tracker.revised(order, plan, revision, running=list(children))
        for comp in revision.compensations:
            cid = comp.component_id
            if cid in children or cid not in ctx.tracker.plan_ids:
                continue
            if comp.kind is Compensation.AMEND:  # billing, sync: the difference at the rerun
                self._work.hold_fulfilled(
                    cid, self._work.lines_of(old_plan.component(cid).lines, current)
                )
            elif (
                comp.kind is Compensation.REDO
                and plan.component(cid).kind is ComponentKind.PROVISION
            ):
                self._work.hold_fulfilled(cid, self._work.lines_of(comp.keep_lines, current))
        self._reporter.record_outcome(
            RevisionView(
                number=order.revision,
                outcome="accepted",
                request_id=request.request_id,
                compensation=revision.summary(),
            )
        )
        workflow.upsert_search_attributes([visibility.ORDER_REVISION.value_set(order.revision)])

    def _stale_standing_work(
        self, order: CustomerOrder, plan: OrderPlan
    ) -> dict[str, list[SalesOrderLine]]:
        """Components still waiting for the rerun an earlier revision gave them: the work
        that stands and this revision no longer wants is undone now (provisioning; all of
        it for a component the revision drops); billing and sync take theirs at the rerun."""
        plan_ids = {c.id for c in plan.components}
        undo: dict[str, list[SalesOrderLine]] = {}
        for cid, standing in self._work.fulfilled().items():
            wanted = (
                {line.id: line for line in self._work.lines_of(plan.component(cid).lines, order)}
                if cid in plan_ids
                else {}
            )
            stale = [
                line
                for line in standing
                if line.id not in wanted or line_changed(line, wanted[line.id])
            ]
            if cid not in plan_ids:
                self._work.forget(cid)
            elif plan.component(cid).kind is ComponentKind.PROVISION:
                self._work.take_back(cid, [line.id for line in stale])
            else:
                continue
            if stale:
                undo[cid] = stale
        return undo

    # --- cancels -------------------------------------------------------------------------------

    async def _cancel(self, request: CancelRequest) -> bool:
        ctx, runner = self._ctx, self._runner
        tracker, plan, order = ctx.tracker, ctx.tracker.plan, ctx.order
        runner.recall_waiting()
        await runner.settle()
        if ctx.abort is not None:
            return False
        reason = request.reason or "cancel requested"
        if tracker.is_finished():
            await self.reject(request, f"cancel refused: the order is complete ({reason})")
            return False
        signalled: list[str] = []
        while True:
            revision = cancellation_plan(order, plan, tracker.progress())
            violations = hard_ponr_violations(revision, plan, tracker.ponr_passed)
            if violations:
                await self.reject(
                    request,
                    f"cancel refused: past the hard point of no return: {', '.join(violations)}",
                )
                return False
            if ctx.state is not OrderState.CANCELING:
                ctx.state = OrderState.CANCELING
                await self._reporter.publish()
            if await self._signal_children(revision, None, None, signalled):
                break
        undo = {
            c.component_id: self._work.lines_of(c.undo_lines, order)
            for c in revision.compensations
            if c.undo_lines
        }
        for cid, standing in self._work.fulfilled().items():  # waiting for a rerun
            self._work.forget(cid)
            if standing:
                undo[cid] = standing
        if not await self._undo_waves(undo, plan):
            return False
        await runner.no_children()
        if ctx.abort is not None:
            return False
        for cid in [c for c in tracker.failed_components() if c in tracker.retired]:
            if not await self._retry_dropped_undo(cid):  # dropped earlier, its undo fell out
                return False
        # A child whose own undo failed is fallout too: once resolved, its undo runs again.
        failed = [
            cid for cid in signalled if tracker.components[cid].state is ComponentState.FAILED
        ]
        self._undo_failed.extend(cid for cid in failed if cid not in self._undo_failed)
        again = {cid: self._work.lines_of(plan.component(cid).lines, order) for cid in failed}
        if not await self._undo_waves(again, plan):
            return False
        tracker.cancel_all(workflow.now())
        ctx.state = OrderState.CANCELLED
        self._reporter.record_outcome(
            RevisionView(
                number=outcome_number(request, order.revision),
                outcome="cancelled",
                reason=reason,
                request_id=request.request_id,
                kind="cancel",
                compensation=revision.summary(),
            )
        )
        await self._reporter.publish()
        return True

    # --- compensation --------------------------------------------------------------------------

    async def _signal_children(
        self,
        revision: RevisionPlan,
        order: CustomerOrder | None,
        plan: OrderPlan | None,
        signalled: list[str],
    ) -> bool:
        """Running SOM children compensate themselves; each is told once (``signalled``
        carries over when planning again). False when one finished before the signal reached
        it: the caller plans again with that component's final state."""
        children = self._runner.children()
        for comp in revision.compensations:
            child = children.get(comp.component_id)
            if child is None or comp.kind is Compensation.NONE or comp.component_id in signalled:
                continue
            try:
                if comp.kind is Compensation.UNDO:
                    await child.signal(ProvisioningOrderWorkflow.cancel)
                else:
                    assert order is not None and plan is not None
                    lines = self._work.lines_of(plan.component(comp.component_id).lines, order)
                    await child.signal(
                        ProvisioningOrderWorkflow.revise,
                        ProvisioningRevision(
                            revision=order.revision, lines=lines, undo_lines=comp.undo_lines
                        ),
                    )
            except FailureError:
                await self._runner.gone(comp.component_id)
                return False
            signalled.append(comp.component_id)
        return True

    async def _undo_waves(self, undo: dict[str, list[SalesOrderLine]], plan: OrderPlan) -> bool:
        """Finished work is undone here, a component only after every component that
        depended on it (billing before the provisioning it followed). False when the order
        was aborted while waiting for an operator."""
        children = self._runner.children()
        known = {c.id: c for c in plan.components}
        pending = {
            cid: lines for cid, lines in undo.items() if cid in known and cid not in children
        }
        dependents = {
            c.id: {d.id for d in plan.components if c.id in d.depends_on} for c in plan.components
        }
        while pending:
            if self._ctx.abort is not None:
                return False
            wave = [cid for cid in pending if not dependents[cid] & set(pending)]
            # An undo that fell out waits for the operator's resolve, and so do later waves.
            stuck = [cid for cid in wave if cid in self._undo_failed]
            if stuck and not await self._await_resolve(stuck):
                return False
            results = await asyncio.gather(*(self._undo(known[cid], pending[cid]) for cid in wave))
            for cid, done in zip(wave, results, strict=True):
                if done:
                    del pending[cid]
        return True

    async def _undo(self, component: OrderComponent, lines: list[SalesOrderLine]) -> bool:
        tracker = self._ctx.tracker
        before = tracker.components[component.id].state
        tracker.undoing(component.id, workflow.now())
        try:
            await self._work.undo(component, lines)
        except FailureError as err:
            self._before_undo[component.id] = before
            self._undo_failed.append(component.id)
            tracker.apply(failed_update(component.id, err), workflow.now())
            return False
        tracker.undone(component.id, workflow.now())
        return True

    async def _retry_dropped_undo(self, component_id: str) -> bool:
        """A component an earlier revision dropped, whose undo fell out: once resolved,
        its undo runs again, until it succeeds (False: aborted meanwhile)."""
        spec, lines = self._ctx.tracker.retired[component_id]
        self._undo_failed.append(component_id)
        while component_id in self._undo_failed:
            if not await self._await_resolve([component_id]):
                return False
            await self._undo(spec, lines)
        return True

    async def _await_resolve(self, failed: list[str]) -> bool:
        """Fallout in the middle of compensation: the order is failed, the incidents open,
        nothing further undone, until an operator resolves them (or aborts: False)."""
        ctx = self._ctx
        working, ctx.state = ctx.state, OrderState.FAILED
        await self._reporter.publish()
        await ctx.wait(lambda: any(r is None or r in failed for r in ctx.resolve))
        if ctx.abort is not None:
            return False
        ctx.resolve = [r for r in ctx.resolve if r is not None and r not in failed]
        for cid in failed:
            self._undo_failed.remove(cid)
            state = self._before_undo.pop(cid, ComponentState.IN_PROGRESS)
            ctx.tracker.reopen(cid, state)
        ctx.state = working
        await self._reporter.publish()
        return True
