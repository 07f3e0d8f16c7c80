"""Telling the world about one order: CRM updates, fallout and jeopardy messages, and what
Temporal shows (search attributes, current details). Each only when something changed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.messaging import (
        FalloutMessage,
        JeopardyMessage,
        MessagingActivities,
        SalesOrderUpdateMessage,
    )
    from o2a import ids, visibility
    from o2a.models import (
        ComponentKind,
        FulfillmentStatus,
        JeopardyView,
        LineView,
        OrderComponent,
        OrderState,
        RevisionView,
    )
    from workflows import order_metrics
    from workflows.messages import Send, send_local, send_message
    from workflows.order_context import OrderContext
    from workflows.order_work import fault_of

JEOPARDY_LEVELS = (("Low", 1.0), ("Medium", 1.5), ("High", 2.0), ("Critical", 3.0))
UNSEEN_STATES = frozenset({OrderState.WAITING, OrderState.SUSPENDED, OrderState.CANCELING})
"""States the lines do not show (they stay pending or in progress): CRM hears the order
enter and leave them even when no line changed (TMF: pending, held, pendingCancellation)."""
STATE_UPDATES_PATCH = "crm-hears-unseen-states"
"""workflow.patched: histories from before it sent no update for these states."""

M = TypeVar("M")


class OrderReporter:
    def __init__(self, ctx: OrderContext) -> None:
        self._ctx = ctx
        self.crm_updates = 0
        self.published: tuple[OrderState, FulfillmentStatus] | None = None
        self.fallouts_reported = 0
        self.told_state: OrderState | None = None
        """The order's state as of CRM's last update."""
        self._undelivered: list[Callable[[], Awaitable[None]]] = []
        """Messages that could not be delivered, each as its send, for the next resolve."""
        self._watches: dict[str, _Watch] = {}
        """Components running now, each with its jeopardy levels raised so far."""
        self._outcomes: list[RevisionView] = []
        """Outcomes recorded but not yet reported: several can pile up (revisions rejected
        behind a cancel) before the next report, and CRM hears every one."""

    @property
    def idle(self) -> bool:
        """Nothing owed: no message waiting for a resolve, no outcome untold, no run
        watched."""
        return not (self._undelivered or self._outcomes or self._watches)

    def record_outcome(self, outcome: RevisionView) -> None:
        """Recorded at once (callers waiting on it see it); CRM hears it with the next
        update."""
        self._ctx.tracker.record_outcome(outcome)
        self._outcomes.append(outcome)
        order_metrics.revision_answered(outcome)

    async def publish(self) -> None:
        """Search attributes and UI details, then CRM, each only when something changed."""
        self._show()
        await self._tell()

    async def complete(self) -> bool:
        """Everything is done: CRM hears the last changes, then the order is completed,
        shown once (not first as in progress with a complete status). False when CRM could
        not be told: that is fallout, and the order is not completed."""
        await self._tell()
        if self._ctx.tracker.has_failed():
            return False
        self._ctx.state = OrderState.COMPLETED
        self._show()
        return True

    def _show(self) -> None:
        ctx = self._ctx
        tracker = ctx.tracker
        status = tracker.order_status()
        workflow.set_current_details(tracker.details_markdown(ctx.state))
        if self.published != (ctx.state, status):
            before = self.published[0] if self.published else None
            order_metrics.state_shown(before, ctx.state, ctx.started)
            self.published = (ctx.state, status)
            workflow.upsert_search_attributes(
                [
                    visibility.ORDER_STATE.value_set(ctx.state.value),
                    visibility.ORDER_STATUS.value_set(status.value),
                ]
            )

    async def _tell(self) -> None:
        """New fallout, then the CRM update of what changed and each revision outcome."""
        await self._report_fallouts()
        status = self._ctx.tracker.order_status()
        changes = self._ctx.tracker.take_changes()
        outcomes, self._outcomes = self._outcomes, []
        if changes is None and not outcomes and self._state_untold():
            changes = []
        await self._update_crm(status, changes, outcomes[0] if outcomes else None)
        for outcome in outcomes[1:]:  # one UpdateSalesOrderEBM per revision outcome
            await self._update_crm(status, None, outcome)

    def _state_untold(self) -> bool:
        """The order entered or left a state its lines do not show, and CRM has not heard."""
        state, told = self._ctx.state, self.told_state
        return (
            state != told
            and (state in UNSEEN_STATES or told in UNSEEN_STATES)
            and self._ctx.patches.has(STATE_UPDATES_PATCH)
        )

    async def _update_crm(
        self,
        status: FulfillmentStatus,
        changes: list[LineView] | None,
        outcome: RevisionView | None,
    ) -> None:
        """An UpdateSalesOrderEBM, unless there is nothing CRM has not heard."""
        if changes is None and outcome is None:
            return
        self.crm_updates += 1
        self.told_state = self._ctx.state
        order = self._ctx.order
        message = SalesOrderUpdateMessage(
            message_id=self._update_id(),
            created=workflow.now(),
            order_number=order.order_number,
            revision=order.revision,
            order_status=status,
            lines=changes or [],
            revision_outcome=outcome,
            order_state=self._ctx.state,
        )
        if self._ctx.patches.local_crm_updates:
            await self._deliver(partial(self._send_update, _Update(message)), message.message_id)
        else:
            await self._send(
                MessagingActivities.send_sales_order_update, message, message.message_id
            )

    def _update_id(self) -> str:
        order = self._ctx.order
        return ids.sales_order_update_message_id(
            order.order_number, order.revision, self.crm_updates
        )

    async def _send_update(self, update: _Update) -> None:
        """Sent until its ID holds it. An earlier try of a workflow task (a worker killed
        mid-task) may have sent another update under the ID, deciding from events taken in
        another order: CRM's copy is taken as told, and what it does not already say goes
        under the order's next ID. Resent after an incident, it goes on from where it was."""
        while True:
            delivery = await send_local(
                MessagingActivities.deliver_sales_order_update, update.message
            )
            if delivery.sent:
                return
            message = update.message
            if delivery.heard is not None:
                rest = self._ctx.tracker.heard_elsewhere(
                    delivery.heard, message.lines, message.order_status
                )
                if rest is None and message.lines and message.revision_outcome is None:
                    return  # CRM's copy says all of it
                message = message.model_copy(update={"lines": rest or []})
            self.crm_updates += 1
            update.message = message.model_copy(update={"message_id": self._update_id()})

    async def _send(self, send: Send[M], message: M, message_id: str) -> None:
        """One of the order's own messages, as a regular activity."""
        await self._deliver(partial(send_message, send, message), message_id)

    async def _deliver(self, deliver: Callable[[], Awaitable[None]], message_id: str) -> None:
        """One that cannot be delivered (refused for good, or still failing past the
        deadline) does not fail the order: it becomes an incident, the order waits in
        `failed`, and resolve sends it again."""
        try:
            await deliver()
        except ActivityError as err:
            self._undelivered.append(partial(self._deliver, deliver, message_id))
            self._ctx.tracker.raise_undelivered(message_id, fault_of(err), workflow.now())

    async def redeliver(self) -> None:
        """An operator resolved the order: messages not delivered go out again, in order."""
        pending, self._undelivered = self._undelivered, []
        self._ctx.tracker.resolve_undelivered()
        for again in pending:
            await again()

    async def _report_fallouts(self) -> None:
        """Each new incident: an AIA Fault to error handling and a trouble ticket to CRM."""
        ctx = self._ctx
        order = ctx.order
        for fallout in ctx.tracker.fallouts[self.fallouts_reported :]:
            self.fallouts_reported += 1
            order_metrics.fallout_raised(fallout, ctx.tracker.plan)
            if fallout.message_id is not None:
                continue  # a message not delivered: its Fault would take the same way
            component = ctx.tracker.plan.find(fallout.component)
            failed = (
                ids.provisioning_order_message_id(
                    order.order_number,
                    order.revision,
                    fallout.component,
                    ctx.runs.get(fallout.component, 1),
                )
                if component is not None and component.kind is ComponentKind.PROVISION
                else order.revision_id or order.order_number
            )
            await self._send(
                MessagingActivities.send_fallout,
                FalloutMessage(
                    order_number=order.order_number,
                    created=workflow.now(),
                    fallout=fallout,
                    failed_message_id=failed,
                ),
                ids.fault_message_id(fallout.id),
            )

    # --- jeopardy: one watch for the whole order ---------------------------------------------

    def watch(self, component: OrderComponent) -> None:
        """A component's run has begun: it is in jeopardy once it runs late."""
        self._watches[component.id] = _Watch(component, workflow.now())

    def unwatch(self, component_id: str) -> None:
        watch = self._watches.pop(component_id, None)
        if watch is not None:
            order_metrics.component_ran(watch.component, watch.started)

    async def watch_jeopardies(self) -> None:
        """Raise Low, Medium, High, Critical as a component runs 1x, 1.5x, 2x, 3x late.

        One timer for the order, at the earliest level due, instead of a timer per
        component started and cancelled with it. A timer overtaken by an earlier one, or
        whose component finished, is left to run out rather than cancelled (a cancel is an
        event; a timer pending when the order ends costs nothing): when it fires, nothing
        is due and the watch arms the next one."""
        timer: asyncio.Task[None] | None = None
        armed: datetime | None = None
        while True:
            due = self._next_due()
            if due is not None and due <= workflow.now():
                await self._raise_due()
                continue
            if due is not None and (armed is None or due < armed):
                timer = asyncio.create_task(workflow.sleep(due - workflow.now()))
                armed = due
            await workflow.wait_condition(partial(self._wakes, timer, armed))
            if _ran_out(timer):
                timer, armed = None, None

    def _wakes(self, timer: asyncio.Task[None] | None, armed: datetime | None) -> bool:
        """The armed timer ran out, or a level is due before it."""
        due = self._next_due()
        return _ran_out(timer) or (due is not None and (armed is None or due < armed))

    def _next_due(self) -> datetime | None:
        return min((w.due for w in self._watches.values() if w.due is not None), default=None)

    async def _raise_due(self) -> None:
        ctx = self._ctx
        order = ctx.order
        for watch in [w for w in self._watches.values() if w.due and w.due <= workflow.now()]:
            severity = JEOPARDY_LEVELS[watch.raised][0]
            watch.raised += 1
            order_metrics.jeopardy_raised(severity)
            component = watch.component
            jeopardy = JeopardyView(
                component=component.id,
                severity=severity,
                raised_at=workflow.now(),
                expected_by=watch.expected_by,
            )
            ctx.tracker.record_jeopardy(jeopardy)
            message_id = ids.jeopardy_message_id(
                order.order_number,
                order.revision,
                component.id,
                severity,
                ctx.runs.get(component.id, 1),
            )
            await self._send(
                MessagingActivities.send_jeopardy,
                JeopardyMessage(
                    message_id=message_id,
                    created=workflow.now(),
                    order_number=order.order_number,
                    revision=order.revision,
                    jeopardy=jeopardy,
                    lines=component.lines,
                ),
                message_id,
            )


@dataclass
class _Update:
    """A CRM update on its way: the message it goes as now."""

    message: SalesOrderUpdateMessage


@dataclass
class _Watch:
    component: OrderComponent
    started: datetime
    raised: int = 0
    """Levels raised so far."""

    @property
    def expected_by(self) -> datetime:
        return self.started + timedelta(seconds=self.component.expected_duration_seconds)

    @property
    def due(self) -> datetime | None:
        """When the next level is due; None once Critical is raised."""
        if self.raised == len(JEOPARDY_LEVELS):
            return None
        factor = JEOPARDY_LEVELS[self.raised][1]
        return self.started + timedelta(seconds=self.component.expected_duration_seconds * factor)


def _ran_out(timer: asyncio.Task[None] | None) -> bool:
    return timer is not None and timer.done()
