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
    from activities.fulfillment import (
        FulfillmentActivities,
        ReportedStep,
        StepReport,
        fault_error,
    )
    from activities.messaging import ProvisioningOrderMessage
    from o2a import ids
    from o2a.models import (
        FaultDetail,
        FulfillmentRoute,
        LineUpdate,
        RouteMode,
        SalesOrderLine,
        Step,
    )
    from o2a.ports import FulfillmentRequest
    from workflows.policies import FULFILLMENT_HEARTBEAT, FULFILLMENT_RETRY, FULFILLMENT_TIMEOUT

A = TypeVar("A")
InlineCall = Callable[[FulfillmentActivities, A], Coroutine[Any, Any, list[LineUpdate]]]

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
        reported = ReportedStep(request=request, report=report, announcement=announcement)
        if announcement is not None:
            return await _inline(FulfillmentActivities.announce_fulfill_and_report, reported)
        return await _inline(FulfillmentActivities.fulfill_and_report, reported)
    return await _inline(FulfillmentActivities.fulfill, request)


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
