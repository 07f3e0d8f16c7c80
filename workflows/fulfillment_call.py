"""One call to a fulfillment system from workflow code, made the same way by COM and SOM.

The order's plan says how its systems are reached (``FulfillmentRoute``, recorded by the
decomposition activity). Inline: the ``fulfill`` activity calls the system and heartbeats
while it works. Over the bus: the ``request_fulfillment`` activity sends the request and is
completed by the system's response; it cannot heartbeat, so the step's deadline bounds it
instead, and a deadline that passes is fallout with its own code.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from pydantic import TypeAdapter

    from activities.fulfillment import (
        ANNOUNCEMENT_UNSENT_TYPE,
        REPORT_UNSENT_TYPE,
        FulfillmentActivities,
        ReportedStep,
        StepReport,
    )
    from activities.messaging import MessagingActivities, ProvisioningOrderMessage
    from o2a import ids
    from o2a.faults import fault_error
    from o2a.models import (
        FaultDetail,
        FulfillmentRoute,
        LineUpdate,
        RouteMode,
        SalesOrderLine,
        Step,
    )
    from o2a.ports import FulfillmentRequest
    from workflows.messages import send_message
    from workflows.policies import FULFILLMENT_HEARTBEAT, FULFILLMENT_RETRY, FULFILLMENT_TIMEOUT

A = TypeVar("A")
InlineCall = Callable[[FulfillmentActivities, A], Coroutine[Any, Any, list[LineUpdate]]]

LEFT_TO_WORKFLOW = (ANNOUNCEMENT_UNSENT_TYPE, REPORT_UNSENT_TYPE)
STEP_RESULT = TypeAdapter(list[LineUpdate])
"""The step's result, as a REPORT_UNSENT_TYPE error carries it."""

NO_RESPONSE = "NO_RESPONSE"
"""The fault code of a step whose system did not answer within the deadline."""


async def fulfill(
    *,
    order_number: str,
    revision: int,
    component_id: str,
    function: str,
    target_system: str,
    run: int,
    step: Step,
    lines: list[SalesOrderLine],
    route: FulfillmentRoute,
    report: StepReport | None = None,
    announcement: ProvisioningOrderMessage | None = None,
) -> list[LineUpdate]:
    """One step for these lines of one component, under its deterministic request ID (so a
    retried call is the same call), with the shared retry budget. With a ``report`` (inline
    only) the activity sends the step's report to COM once the system has answered, and the
    component's ``announcement`` before it calls."""
    request = FulfillmentRequest(
        request_id=ids.fulfillment_request_id(order_number, revision, component_id, run, step),
        order_number=order_number,
        revision=revision,
        component_id=component_id,
        function=function,
        target_system=target_system,
        step=step,
        lines=lines,
        run=run,
    )
    if route.mode is RouteMode.BUS:
        return await _over_the_bus(request, timedelta(seconds=route.deadline_seconds))
    if report is not None:
        return await _reported(ReportedStep(request=request, report=report), announcement)
    return await _inline(FulfillmentActivities.fulfill, request)


async def _reported(
    step: ReportedStep, announcement: ProvisioningOrderMessage | None
) -> list[LineUpdate]:
    """The step's call sends its messages; one the bus could not take then is sent here,
    by an activity retried up to the messages' deadline, so a bus outage delays the step
    instead of spending its retry budget (and the system is called once either way)."""
    if announcement is None:
        call, argument = FulfillmentActivities.fulfill_and_report, step
    else:
        call = FulfillmentActivities.announce_fulfill_and_report
        argument = step.model_copy(update={"announcement": announcement})
    try:
        return await _inline(call, argument)
    except ActivityError as err:
        left = _left(err)
        if left is None:
            raise
    if announcement is not None and left.type == ANNOUNCEMENT_UNSENT_TYPE:
        await send_message(MessagingActivities.send_provisioning_order, announcement)
        return await _reported(step, None)
    updates = STEP_RESULT.validate_python(left.details[0])
    await send_message(MessagingActivities.send_fulfillment_update, step.message(updates))
    return updates


def _left(err: ActivityError) -> ApplicationError | None:
    """The error by which a step's call left one of its messages to the workflow."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type in LEFT_TO_WORKFLOW:
        return cause
    return None


async def _inline(call: InlineCall[A], argument: A) -> list[LineUpdate]:
    """An inline system's call heartbeats while it works, so a killed worker is noticed."""
    return await workflow.execute_activity_method(
        call,
        argument,
        start_to_close_timeout=FULFILLMENT_TIMEOUT,
        heartbeat_timeout=FULFILLMENT_HEARTBEAT,
        retry_policy=FULFILLMENT_RETRY,
    )


async def _over_the_bus(request: FulfillmentRequest, deadline: timedelta) -> list[LineUpdate]:
    """The deadline is schedule-to-close: it spans the retries of transient refusals too,
    and once it passes nothing is retried (a start-to-close timeout would be, resending the
    request to a system that does not answer, up to the whole retry budget)."""
    try:
        return await workflow.execute_activity_method(
            FulfillmentActivities.request_fulfillment,
            request,
            schedule_to_close_timeout=deadline,
            retry_policy=FULFILLMENT_RETRY,
        )
    except ActivityError as err:
        if not isinstance(err.cause, ActivityTimeout):
            raise
        raise _no_response(request, deadline) from None


def _no_response(request: FulfillmentRequest, deadline: timedelta) -> ApplicationError:
    return fault_error(
        FaultDetail(
            code=NO_RESPONSE,
            message=f"{request.target_system} did not answer {request.step} of component "
            f"{request.component_id} within {deadline.total_seconds():g} s "
            f"(request {request.request_id})",
            step=request.step,
        )
    )
