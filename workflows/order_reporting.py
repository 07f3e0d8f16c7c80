"""Telling the world about one order: CRM updates, fallout and jeopardy messages, and what
Temporal shows (search attributes, current details). Each only when something changed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

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
    from workflows.order_context import OrderContext
    from workflows.order_work import fault_of
    from workflows.policies import MESSAGE_DEADLINE, MESSAGE_RETRY, MESSAGE_TIMEOUT

JEOPARDY_LEVELS = (("Low", 1.0), ("Medium", 1.5), ("High", 2.0), ("Critical", 3.0))

M = TypeVar("M")
Send = Callable[[MessagingActivities, M], Coroutine[Any, Any, None]]


class OrderReporter:
    def __init__(self, ctx: OrderContext) -> None:
        self._ctx = ctx
        self.crm_updates = 0
        self._published: tuple[OrderState, FulfillmentStatus] | None = None
        self._fallouts_reported = 0
        self._undelivered: list[Callable[[], Awaitable[None]]] = []
        """Messages that could not be delivered, each as its send, for the next resolve."""
        self._outcomes: list[RevisionView] = []
        """Outcomes recorded but not yet reported: several can pile up (revisions rejected
        behind a cancel) before the next report, and CRM hears every one."""

    def record_outcome(self, outcome: RevisionView) -> None:
        """Recorded at once (callers waiting on it see it); CRM hears it with the next
        update."""
        self._ctx.tracker.record_outcome(outcome)
        self._outcomes.append(outcome)

    async def publish(self) -> None:
        """CRM, search attributes and UI details, each only when something changed."""
        ctx = self._ctx
        tracker = ctx.tracker
        status = tracker.order_status()
        workflow.set_current_details(tracker.details_markdown(ctx.state))
        if self._published != (ctx.state, status):
            self._published = (ctx.state, status)
            workflow.upsert_search_attributes(
                [
                    visibility.ORDER_STATE.value_set(ctx.state.value),
                    visibility.ORDER_STATUS.value_set(status.value),
                ]
            )
        await self._report_fallouts()
        changes = tracker.take_changes()
        outcomes, self._outcomes = self._outcomes, []
        await self._update_crm(status, changes, outcomes[0] if outcomes else None)
        for outcome in outcomes[1:]:  # one UpdateSalesOrderEBM per revision outcome
            await self._update_crm(status, None, outcome)

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
        order = self._ctx.order
        message_id = ids.sales_order_update_message_id(
            order.order_number, order.revision, self.crm_updates
        )
        await self._send(
            MessagingActivities.send_sales_order_update,
            SalesOrderUpdateMessage(
                message_id=message_id,
                created=workflow.now(),
                order_number=order.order_number,
                revision=order.revision,
                order_status=status,
                lines=changes or [],
                revision_outcome=outcome,
            ),
            message_id,
        )

    async def _send(self, send: Send[M], message: M, message_id: str) -> None:
        """One of the order's own messages. One that cannot be delivered (refused for good,
        or still failing past the deadline) does not fail the order: it becomes an incident,
        the order waits in `failed`, and resolve sends it again."""
        try:
            await workflow.execute_activity_method(
                send,
                message,
                start_to_close_timeout=MESSAGE_TIMEOUT,
                schedule_to_close_timeout=MESSAGE_DEADLINE,
                retry_policy=MESSAGE_RETRY,
            )
        except ActivityError as err:
            if is_cancelled_exception(err):  # a jeopardy watch whose component finished
                raise
            self._undelivered.append(lambda: self._send(send, message, message_id))
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
        for fallout in ctx.tracker.fallouts[self._fallouts_reported :]:
            self._fallouts_reported += 1
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

    async def watch_jeopardy(self, component: OrderComponent) -> None:
        """Raise Low, Medium, High, Critical as the component runs 1x, 1.5x, 2x, 3x late."""
        ctx = self._ctx
        started = workflow.now()
        expected = component.expected_duration_seconds
        expected_by = started + timedelta(seconds=expected)
        for severity, factor in JEOPARDY_LEVELS:
            due = started + timedelta(seconds=expected * factor)
            await workflow.sleep(max((due - workflow.now()).total_seconds(), 0.001))
            jeopardy = JeopardyView(
                component=component.id,
                severity=severity,
                raised_at=workflow.now(),
                expected_by=expected_by,
            )
            ctx.tracker.record_jeopardy(jeopardy)
            order = ctx.order
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
