"""The fulfillment activities: a step of one component, for all its lines, through the
FulfillmentSystem port. The request ID is deterministic (order, revision, component, run,
step), so a retried call never provisions twice.

``fulfill`` calls an inline system and returns its answer, heartbeating while it works.
``request_fulfillment`` hands the request to a system on the bus and completes later, when
the response arrives (workers/fulfillment_responses.py completes it by its task token).
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from o2a.models import FaultDetail, LineUpdate, Step
from o2a.ports import (
    FulfillmentFault,
    FulfillmentRequest,
    FulfillmentRequester,
    FulfillmentSystem,
    FulfillmentUnavailable,
)

FULFILLMENT_FAULT_TYPE = "FulfillmentFault"
"""A business refusal: non-retryable, details[0] is a FaultDetail; the component falls out."""
FULFILLMENT_UNAVAILABLE_TYPE = "FulfillmentUnavailable"
"""A passing cause: retried with backoff by the activity's retry policy."""
NO_ROUTE = "NO_FULFILLMENT_ROUTE"
"""The order was planned to reach its systems one way (inline, over the bus) and this worker
reaches them only the other way: fallout an operator sees, never a step that waits for ever."""
HEARTBEAT_EVERY = 2.0
"""Seconds; well inside the workflows' heartbeat timeout, so a killed worker is noticed."""


def fault_error(fault: FaultDetail) -> ApplicationError:
    """A fault as the workflows read it (``order_work.fault_of``): BENIGN, so the SDK logs
    it at DEBUG without a traceback."""
    return ApplicationError(
        fault.message,
        fault.model_copy(update={"message": ""}),
        type=FULFILLMENT_FAULT_TYPE,
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )


def unavailable_error(reason: str) -> ApplicationError:
    return ApplicationError(
        reason, type=FULFILLMENT_UNAVAILABLE_TYPE, category=ApplicationErrorCategory.BENIGN
    )


class FulfillmentActivities:
    """``system`` answers inline, ``requester`` over the bus; a worker has the one its
    settings name (tests may give either)."""

    def __init__(
        self, system: FulfillmentSystem | None, requester: FulfillmentRequester | None = None
    ) -> None:
        self._system = system
        self._requester = requester

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
        """Run the call, heartbeating while it works; cancelling the activity cancels it."""
        call = asyncio.create_task(system.execute(request))
        try:
            while not call.done():
                activity.heartbeat()
                await asyncio.wait({call}, timeout=HEARTBEAT_EVERY)
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
