"""The fulfillment activities: a step of one component, for all its lines, through the
FulfillmentSystem port. The request ID is deterministic (order, revision, component, run,
step), so a retried call never provisions twice.

``fulfill`` calls an inline system and returns its answer, heartbeating while it works;
``fulfill_and_report`` does the same, then sends the step's report to COM itself (one
activity where a SOM step took two). ``request_fulfillment`` hands the request to a system
on the bus and completes later, when the response arrives (workers/fulfillment_responses.py
completes it by its task token).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.messaging import (
    MESSAGE_BUS_UNAVAILABLE_TYPE,
    FulfillmentUpdateMessage,
    MessagingActivities,
    ProvisioningOrderMessage,
)
from o2a.faults import fault_error
from o2a.models import ComponentState, ComponentUpdate, FaultDetail, LineUpdate, Step
from o2a.ports import (
    FulfillmentFault,
    FulfillmentRequest,
    FulfillmentRequester,
    FulfillmentSystem,
    FulfillmentUnavailable,
)

FULFILLMENT_UNAVAILABLE_TYPE = "FulfillmentUnavailable"
"""A passing cause: retried with backoff by the activity's retry policy."""
NO_ROUTE = "NO_FULFILLMENT_ROUTE"
"""The order was planned to reach its systems one way (inline, over the bus) and this worker
reaches them only the other way: fallout an operator sees, never a step that waits for ever."""
REPORT_UNSENT_TYPE = "StepReportUnsent"
"""The step is done and its report could not be sent (the bus down): non-retryable, so the
system is not called again; details[0] is the step's result, and the workflow sends the
report by an activity of its own, retried up to the messages' deadline."""
ANNOUNCEMENT_UNSENT_TYPE = "AnnouncementUnsent"
"""The component's ProvisioningOrderEBM could not be sent (the bus down), so nothing was
called: non-retryable, and the workflow sends it by an activity of its own, retried up to
the messages' deadline, before the step. A message is not held to a step's retry budget."""
HEARTBEAT_EVERY = 2.0
"""Seconds; well inside the workflows' heartbeat timeout, so a killed worker is noticed."""


def unavailable_error(reason: str) -> ApplicationError:
    return ApplicationError(
        reason, type=FULFILLMENT_UNAVAILABLE_TYPE, category=ApplicationErrorCategory.BENIGN
    )


def _unsent(err: ApplicationError, kind: str, what: str, *details: object) -> ApplicationError:
    """A message the bus cannot take now, as the workflow sends it instead; any other
    failure as it was."""
    if err.type != MESSAGE_BUS_UNAVAILABLE_TYPE:
        return err
    return ApplicationError(
        f"{what} not sent: {err.message}",
        *details,
        type=kind,
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )


class StepReport(BaseModel):
    """What the SOM workflow decided of a step's report before calling the system: the
    ProcessFulfillmentOrderUpdateEBM's ID and creation time (so every attempt sends the same
    message) and the milestone the step reaches."""

    message_id: str
    created: datetime
    milestone: str
    parent_workflow_id: str | None
    """The COM order that hears the report as a signal; None for the last step's, which
    reaches COM as the component's result."""
    known: list[LineUpdate] | None = None
    """For the last step: every line's data so far. Its report is the component completed,
    with every line's data, the new included."""


class ReportedStep(BaseModel):
    request: FulfillmentRequest
    report: StepReport
    announcement: ProvisioningOrderMessage | None = None
    """The component's ProcessProvisioningOrderEBM, sent before its first call."""

    def message(self, updates: list[LineUpdate]) -> FulfillmentUpdateMessage:
        """The report of the step done: the lines' new data with the component going on,
        or after the last step every line's data with the component completed."""
        request, report = self.request, self.report
        changed = [update for update in updates if update.data]
        if report.known is None:
            state, lines = ComponentState.IN_PROGRESS, changed
        else:
            state, lines = ComponentState.COMPLETED, _merged(report.known, changed)
        return FulfillmentUpdateMessage(
            message_id=report.message_id,
            created=report.created,
            order_number=request.order_number,
            revision=request.revision,
            update=ComponentUpdate(
                component_id=request.component_id,
                state=state,
                milestone=report.milestone,
                step=request.step,
                line_updates=lines,
            ),
            parent_workflow_id=report.parent_workflow_id,
        )


def _merged(known: list[LineUpdate], changed: list[LineUpdate]) -> list[LineUpdate]:
    """Each line's data, the changes merged into what was known, lines in first-seen order."""
    data = {update.line_id: dict(update.data) for update in known}
    for update in changed:
        data.setdefault(update.line_id, {}).update(update.data)
    return [LineUpdate(line_id=line_id, data=values) for line_id, values in data.items()]


class FulfillmentActivities:
    """``system`` answers inline, ``requester`` over the bus; a worker has the one its
    settings name (tests may give either). ``messaging`` sends the reports of
    ``fulfill_and_report``."""

    def __init__(
        self,
        system: FulfillmentSystem | None,
        requester: FulfillmentRequester | None = None,
        messaging: MessagingActivities | None = None,
    ) -> None:
        self._system = system
        self._requester = requester
        self._messaging = messaging

    @activity.defn(name="fulfill")
    async def fulfill(self, request: FulfillmentRequest) -> list[LineUpdate]:
        """Both failure kinds are BENIGN, so the SDK logs them at DEBUG without a traceback;
        the one warning line below is what an operator watching the worker sees."""
        info = activity.info()
        request = request.model_copy(update={"attempt": info.attempt})
        if self._system is None:
            raise _no_route(
                request, "inline", "over the bus", "a worker with O2A_FULFILLMENT=simulator"
            )
        try:
            updates = await self._heartbeating(self._system, request)
        except FulfillmentFault as fault:
            _log_fault(request, fault.code, fault.line_id, fault.step)
            raise fault_error(
                FaultDetail(
                    code=fault.code, message=fault.message, line_id=fault.line_id, step=fault.step
                )
            ) from None
        except FulfillmentUnavailable as exc:
            _log_unavailable(request, exc)
            raise unavailable_error(str(exc)) from None
        activity.logger.info(
            "%s step %s done for lines %s",
            _where(request),
            request.step,
            ",".join(line.id for line in request.lines),
            extra=_about(request),
        )
        return updates

    @activity.defn(name="fulfill_and_report")
    async def fulfill_and_report(self, step: ReportedStep) -> list[LineUpdate]:
        """The step, then its report. A report the bus cannot take now is left to the
        workflow with the step's result (``REPORT_UNSENT_TYPE``); one that fails otherwise
        (the order unreachable) fails the attempt, and the retry calls the system again
        under the same request ID (the same call, done once) before sending it again."""
        messaging = self._messaging_for("fulfill_and_report")
        updates = await self.fulfill(step.request)
        try:
            await messaging.send_fulfillment_update(step.message(updates))
        except ApplicationError as err:
            raise _unsent(err, REPORT_UNSENT_TYPE, "its report", updates) from None
        return updates

    @activity.defn(name="announce_fulfill_and_report")
    async def announce_fulfill_and_report(self, step: ReportedStep) -> list[LineUpdate]:
        """A component's first step: its ProcessProvisioningOrderEBM, then the step and its
        report. A name of its own, so that a worker of an older build, whose
        ``fulfill_and_report`` would drop the announcement unread, never takes it."""
        if step.announcement is None:
            raise RuntimeError("announce_fulfill_and_report needs the announcement")
        messaging = self._messaging_for("announce_fulfill_and_report")
        try:
            await messaging.send_provisioning_order(step.announcement)
        except ApplicationError as err:
            raise _unsent(err, ANNOUNCEMENT_UNSENT_TYPE, "its ProvisioningOrderEBM") from None
        return await self.fulfill_and_report(step)

    def _messaging_for(self, call: str) -> MessagingActivities:
        if self._messaging is None:
            raise RuntimeError(f"{call} needs the worker's messaging activities")
        return self._messaging

    @activity.defn(name="request_fulfillment")
    async def request_fulfillment(self, request: FulfillmentRequest) -> list[LineUpdate]:
        """Send the request with this attempt's task token and return without a result:
        the step stays open on the server (no worker slot, no connection held) until the
        response completes or fails it, or its deadline passes."""
        info = activity.info()
        request = request.model_copy(update={"attempt": info.attempt})
        if self._requester is None:
            raise _no_route(request, "over the bus", "inline", "a worker on the bus (O2A_NATS_URL)")
        try:
            await self._requester.send(request, info.task_token)
        except FulfillmentUnavailable as exc:
            _log_unavailable(request, exc)
            raise unavailable_error(str(exc)) from None
        activity.raise_complete_async()

    @staticmethod
    async def _heartbeating(
        system: FulfillmentSystem, request: FulfillmentRequest
    ) -> list[LineUpdate]:
        """Run the call, heartbeating while it works; cancelling the activity cancels it.
        A call that answers within HEARTBEAT_EVERY sends none: each heartbeat is an RPC and
        a write of the workflow's state on the server."""
        call = asyncio.create_task(system.execute(request))
        try:
            while not (await asyncio.wait({call}, timeout=HEARTBEAT_EVERY))[0]:
                activity.heartbeat()
            return call.result()
        finally:
            call.cancel()


def _where(request: FulfillmentRequest) -> str:
    return f"order {request.order_number} component {request.component_id}"


def _about(request: FulfillmentRequest) -> dict[str, str]:
    """The log line's component, also for a step the COM order runs itself."""
    return {"component": request.component_id}


def _log_fault(request: FulfillmentRequest, code: str, line_id: str | None, step: Step) -> None:
    activity.logger.warning(
        "%s step %s line %s: fault %s",
        _where(request),
        step,
        line_id,
        code,
        extra=_about(request),
    )


def _log_unavailable(request: FulfillmentRequest, exc: Exception) -> None:
    activity.logger.warning(
        "%s step %s: unavailable on attempt %d, will retry: %s",
        _where(request),
        request.step,
        request.attempt,
        exc,
        extra=_about(request),
    )


def _no_route(
    request: FulfillmentRequest, planned: str, here: str, remedy: str
) -> ApplicationError:
    message = (
        f"order {request.order_number} was planned to reach {request.target_system} {planned}, "
        f"but this worker reaches fulfillment systems {here}: run {remedy}, then resolve"
    )
    activity.logger.warning(
        "%s step %s: %s", _where(request), request.step, message, extra=_about(request)
    )
    return fault_error(FaultDetail(code=NO_ROUTE, message=message, step=request.step))
