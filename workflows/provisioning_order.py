"""ProvisioningOrderWorkflow: the SOM role for one provisioning order component.

Runs design → activate → verify for the component, one fulfillment call per step for all
of its lines, and tells COM once per component state change (never once per line per step),
as an AIA ProcessFulfillmentOrderUpdateEBM that the parent order also hears as a signal.

A revise signal swaps in new lines (and the new revision number) between steps: the steps
already done for removed or changed lines are undone in reverse (undo-verify,
undo-activate, undo-design) before the changed lines are done again. A cancel signal
undoes everything done and ends the run.
"""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.fulfillment import StepReport
    from activities.messaging import (
        FulfillmentUpdateMessage,
        MessagingActivities,
        ProvisioningOrderMessage,
    )
    from o2a import ids
    from o2a.models import (
        KIND_STEPS,
        ComponentKind,
        ComponentState,
        LineUpdate,
        RouteMode,
        SalesOrderLine,
        Step,
    )
    from workflows.contracts.provisioning_order import (
        CANCEL_SIGNAL,
        RESUME_SIGNAL,
        REVISE_SIGNAL,
        SUSPEND_SIGNAL,
        CarriedComponent,
        ComponentUpdate,
        ProvisioningOrder,
        ProvisioningResult,
        ProvisioningRevision,
    )
    from workflows.fulfillment_call import fulfill
    from workflows.messages import send_message

STEPS = KIND_STEPS[ComponentKind.PROVISION]
MILESTONES = {
    Step.DESIGN: "PROVISION_DESIGNED",
    Step.ACTIVATE: "PROVISION_ACTIVATED",
    Step.VERIFY: "PROVISION_COMPLETE",
}
"""The milestone each step reaches once every line of the component has done it."""
UNDONE_MILESTONE = "PROVISION_UNDONE"
STEP_REPORTS_PATCH = "step-call-sends-its-report"
"""workflow.patched: an inline step's call sends the step's report itself, the last step's
the component's completion (one activity where there were two, fulfill then
send_fulfillment_update); older histories replay as they ran."""
CONTINUE_AS_NEW_PATCH = "continue-as-new-when-suggested"
"""workflow.patched: between steps, a long history continues as new; a history from before
it replays as it ran."""
FUNCTION = "Provision"


@workflow.defn
class ProvisioningOrderWorkflow:
    @workflow.init
    def __init__(self, order: ProvisioningOrder | CarriedComponent) -> None:
        """A new component run, or one continued as new with what the previous run carried
        (one parameter: a history's start event always has one payload)."""
        carried = order if isinstance(order, CarriedComponent) else None
        order = order.order if isinstance(order, CarriedComponent) else order
        self._order = order
        self._revision = order.revision
        self._lines = {line.id: line for line in order.lines}
        self._done: dict[str, list[Step]] = {lid: list(STEPS) for lid in order.done_lines}
        self._data: dict[str, dict[str, str]] = {}
        self._undone: list[str] = []
        self._revisions: list[ProvisioningRevision] = []
        self._cancel = False
        self._suspended = False
        self._sequence = 0
        self._completion_reported = False
        self._announcement_due = order.som_announces
        """This run's ProvisioningOrderEBM is still to be sent: with the first call."""
        self._state = ComponentState.IN_PROGRESS
        if carried is not None:
            self._revision = carried.revision
            self._lines = {line.id: line for line in carried.lines}
            self._done = carried.done
            self._data = carried.data
            self._undone = carried.undone
            self._revisions = carried.revisions
            self._cancel = carried.cancel
            self._suspended = carried.suspended
            self._sequence = carried.sequence
            self._completion_reported = carried.completion_reported
            self._announcement_due = carried.announcement_due

    @workflow.signal(name=REVISE_SIGNAL)
    def revise(self, revision: ProvisioningRevision) -> None:
        self._revisions.append(revision)

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self) -> None:
        self._cancel = True

    @workflow.signal(name=SUSPEND_SIGNAL)
    def suspend(self) -> None:
        """Steps under way finish; no new step starts until resume (or a cancel)."""
        self._suspended = True
        self._show()

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self) -> None:
        self._suspended = False
        self._show()

    @workflow.run
    async def run(self, start: ProvisioningOrder | CarriedComponent) -> ProvisioningResult:
        order = self._order
        self._show()
        workflow.logger.info(
            "component started: %d lines, %d to undo", len(order.lines), len(order.undo_lines)
        )
        if order.undo_lines and not isinstance(start, CarriedComponent):
            await self._undo({line.id: (line, list(STEPS)) for line in order.undo_lines})
            if not order.lines:  # an undo-only run: nothing to provision, nothing completed
                return self._result(ComponentState.CANCELLED)
        while True:
            if self._continue_as_new_due():
                workflow.continue_as_new(self._carried())
            await self._apply_revisions()
            if self._cancel:
                await self._undo(
                    {
                        lid: (self._lines[lid], steps)
                        for lid, steps in self._done.items()
                        if lid in self._lines
                    }
                )
                return self._result(ComponentState.CANCELLED)
            step = self._next_step()
            if step is not None:
                if self._suspended:
                    await workflow.wait_condition(lambda: not self._suspended or self._cancel)
                    continue
                await self._run_step(step)
                continue
            if not self._completion_reported:
                await self._report(
                    ComponentUpdate(
                        component_id=order.component_id,
                        state=ComponentState.COMPLETED,
                        milestone=MILESTONES[STEPS[-1]],
                        step=STEPS[-1],
                        line_updates=self._line_updates(),
                    ),
                    notify_parent=False,
                )
            # A revise or cancel that came in while reporting still gets its turn.
            if not self._revisions and not self._cancel:
                workflow.logger.info("component completed")
                return self._result(ComponentState.COMPLETED)

    def _continue_as_new_due(self) -> bool:
        """Between steps nothing is in flight: a long history (many revisions, a long
        suspension's signals) goes on in a fresh run, which the parent still awaits as
        this child."""
        return (
            workflow.info().is_continue_as_new_suggested()
            and workflow.all_handlers_finished()
            and self._has(CONTINUE_AS_NEW_PATCH)
        )

    def _has(self, patch: str) -> bool:
        """A SOM patch: given by a parent that says the child has them all (no marker, no
        search attribute upsert: two events fewer), or asked, as a child from before always
        did. A patch added later is asked by every child until the parent says that too, by
        a field of its own: histories recorded meanwhile hold its marker, and the SDK
        refuses a history holding a marker the code no longer asks for."""
        return self._order.som_patched or workflow.patched(patch)

    def _carried(self) -> CarriedComponent:
        return CarriedComponent(
            order=self._order,
            revision=self._revision,
            lines=list(self._lines.values()),
            done=self._done,
            data=self._data,
            undone=self._undone,
            revisions=self._revisions,
            cancel=self._cancel,
            suspended=self._suspended,
            sequence=self._sequence,
            completion_reported=self._completion_reported,
            announcement_due=self._announcement_due,
        )

    def _next_step(self) -> Step | None:
        for step in STEPS:
            if any(step not in self._done.get(line_id, []) for line_id in self._lines):
                return step
        return None

    # --- steps ---------------------------------------------------------------------------------

    async def _execute(
        self,
        step: Step,
        lines: list[SalesOrderLine],
        report: StepReport | None = None,
        announcement: ProvisioningOrderMessage | None = None,
    ) -> list[LineUpdate]:
        """One call to the provisioning system: this step for all these lines."""
        order = self._order
        return await fulfill(
            order_number=order.order_number,
            revision=self._revision,
            component_id=order.component_id,
            function=FUNCTION,
            target_system=order.target_system,
            run=order.run,
            step=step,
            lines=lines,
            route=order.fulfillment,
            report=report,
            announcement=announcement,
        )

    async def _run_step(self, step: Step) -> None:
        todo = [line for lid, line in self._lines.items() if step not in self._done.get(lid, [])]
        report = self._step_report(step)
        if report is None:  # no reporting call to carry it
            await self._announce_alone()
        results = await self._call(step, todo, report, self._announcement())
        self._announcement_due = False
        if results is None:
            return
        for line in todo:
            self._done.setdefault(line.id, []).append(step)
        changed = [result for result in results if result.data]
        for result in changed:
            self._data.setdefault(result.line_id, {}).update(result.data)
        self._completion_reported = report is not None and report.known is not None
        if step is not STEPS[-1] and report is None:
            await self._report(
                ComponentUpdate(
                    component_id=self._order.component_id,
                    state=ComponentState.IN_PROGRESS,
                    milestone=MILESTONES[step],
                    step=step,
                    line_updates=changed,
                ),
                notify_parent=True,
            )

    def _step_report(self, step: Step) -> StepReport | None:
        """The report an inline step's call sends once the system has answered (the last
        step's: the component completed); None: the workflow sends it, if any."""
        order = self._order
        if order.fulfillment.mode is not RouteMode.INLINE or not self._has(STEP_REPORTS_PATCH):
            return None
        last = step is STEPS[-1]
        self._sequence += 1
        self._show()
        return StepReport(
            message_id=self._message_id(),
            created=workflow.now(),
            milestone=MILESTONES[step],
            parent_workflow_id=None if last else order.parent_workflow_id,
            known=self._line_updates() if last else None,
        )

    async def _call(
        self,
        step: Step,
        todo: list[SalesOrderLine],
        report: StepReport | None,
        announcement: ProvisioningOrderMessage | None,
    ) -> list[LineUpdate] | None:
        """The step's call; None when a revise or cancel superseded it while it waited.

        Inline, a step under way finishes first and the change is applied after it. Over
        the bus a system may take hours, so a change that makes the step's lines stale (or
        a cancel) supersedes it: the step is let go (its late response then finds nothing
        waiting and changes nothing) and taken back with its undo step, in case the system
        did the work anyway (undoing work never done is a no-op for a system); the change
        decides what runs next, under the new revision's request IDs."""
        if self._order.fulfillment.mode is RouteMode.INLINE:
            return await self._execute(step, todo, report, announcement)
        call = asyncio.ensure_future(self._execute(step, todo))
        await workflow.wait_condition(lambda: call.done() or self._supersedes(todo))
        if call.done():
            return call.result()
        call.cancel()
        with contextlib.suppress(ActivityError, asyncio.CancelledError):
            await call
        await self._execute(step.undo(), todo)
        return None

    def _supersedes(self, todo: list[SalesOrderLine]) -> bool:
        if self._cancel:
            return True
        line_ids = [line.id for line in todo]
        return any(_stale(revision, line_ids) for revision in self._revisions)

    async def _undo(self, work: dict[str, tuple[SalesOrderLine, list[Step]]]) -> None:
        """Undo done steps, latest first, each undo step for all its lines in one call."""
        if work:
            await self._announce_alone()
        for step in reversed(STEPS):
            lines = [line for line, done in work.values() if step in done]
            if lines:
                await self._execute(step.undo(), lines)
        if not work:
            return
        self._completion_reported = False
        for line_id in work:
            self._done.pop(line_id, None)
            self._data.pop(line_id, None)
        self._undone.extend(lid for lid in work if lid not in self._undone)
        await self._report(
            ComponentUpdate(
                component_id=self._order.component_id,
                state=ComponentState.IN_PROGRESS,
                milestone=UNDONE_MILESTONE,
                step="undo",
                line_updates=[LineUpdate(line_id=lid) for lid in work],
            ),
            notify_parent=False,
        )

    async def _apply_revisions(self) -> None:
        while self._revisions:
            revision = self._revisions.pop(0)
            new_lines = {line.id: line for line in revision.lines}
            stale = _stale(revision, list(self._lines))
            # The undo takes back work done under the old revision; what follows is the new.
            await self._undo(
                {lid: (self._lines[lid], self._done[lid]) for lid in stale if self._done.get(lid)}
            )
            for lid in stale:
                self._done.pop(lid, None)
            self._lines = new_lines
            self._revision = revision.revision
            self._completion_reported = False
            self._show()

    # --- reporting -----------------------------------------------------------------------------

    def _announcement(self) -> ProvisioningOrderMessage | None:
        """The run's ProvisioningOrderEBM while it is due: its input as COM decided it,
        under COM's message ID for it."""
        if not self._announcement_due:
            return None
        return ProvisioningOrderMessage.of(self._order, workflow.now())

    async def _announce_alone(self) -> None:
        """Sent by an activity of its own before anything else goes out that cannot carry
        it: an undo call, a step over the bus, an update (a rerun with nothing left to do
        reports its completion at once)."""
        announcement = self._announcement()
        if announcement is not None:
            await send_message(MessagingActivities.send_provisioning_order, announcement)
            self._announcement_due = False

    def _line_updates(self) -> list[LineUpdate]:
        return [
            LineUpdate(line_id=lid, data=data)
            for lid, data in self._data.items()
            if data and lid in self._lines
        ]

    def _result(self, state: ComponentState) -> ProvisioningResult:
        self._state = state
        self._show()
        return ProvisioningResult(
            component_id=self._order.component_id,
            state=state,
            line_updates=self._line_updates() if state is ComponentState.COMPLETED else [],
            undone_lines=list(self._undone),
        )

    def _show(self) -> None:
        """The Web UI's current details: the component's state first."""
        state = ComponentState.SUSPENDED if self._suspended else self._state
        done = sum(1 for steps in self._done.values() if len(steps) == len(STEPS))
        workflow.set_current_details(
            f"**{state.value}** · order {self._order.order_number} revision {self._revision}"
            f" · {self._order.target_system} · {done}/{len(self._lines)} lines provisioned"
        )

    async def _report(self, update: ComponentUpdate, notify_parent: bool) -> None:
        """The EBM goes to COM's inbound queue, and the activity that sends it signals the
        parent order with the update too. The final update travels as the child's result
        instead, saving history."""
        await self._announce_alone()
        self._sequence += 1
        self._show()
        order = self._order
        await send_message(
            MessagingActivities.send_fulfillment_update,
            FulfillmentUpdateMessage(
                message_id=self._message_id(),
                created=workflow.now(),
                order_number=order.order_number,
                revision=self._revision,
                update=update,
                parent_workflow_id=order.parent_workflow_id if notify_parent else None,
            ),
        )

    def _message_id(self) -> str:
        order = self._order
        return ids.fulfillment_update_message_id(
            order.order_number, self._revision, order.component_id, self._sequence, order.run
        )


def _stale(revision: ProvisioningRevision, line_ids: list[str]) -> list[str]:
    """The lines whose work so far the revision takes back (changed or dropped), in the
    order given, never as a set: the undo calls are commands, and their order must be the
    same in every worker process (str hashing is randomised)."""
    kept = {line.id for line in revision.lines}
    return [lid for lid in line_ids if lid in revision.undo_lines or lid not in kept]
