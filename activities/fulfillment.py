"""The one fulfillment activity: a step of one component, for all its lines, through the
FulfillmentSystem port. The request ID is deterministic (order, revision, component, run,
step), so a retried call never provisions twice.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from o2a.models import FaultDetail, LineUpdate
from o2a.ports import (
    FulfillmentFault,
    FulfillmentRequest,
    FulfillmentSystem,
    FulfillmentUnavailable,
)

FULFILLMENT_FAULT_TYPE = "FulfillmentFault"
"""A business refusal: non-retryable, details[0] is a FaultDetail; the component falls out."""
FULFILLMENT_UNAVAILABLE_TYPE = "FulfillmentUnavailable"
"""A passing cause: retried with backoff by the activity's retry policy."""
HEARTBEAT_EVERY = 2.0
"""Seconds; well inside the workflows' heartbeat timeout, so a killed worker is noticed."""


class FulfillmentActivities:
    def __init__(self, system: FulfillmentSystem) -> None:
        self._system = system

    @activity.defn(name="fulfill")
    async def fulfill(self, request: FulfillmentRequest) -> list[LineUpdate]:
        """Both failure kinds are BENIGN, so the SDK logs them at DEBUG without a traceback;
        the one warning line below is what an operator watching the worker sees."""
        info = activity.info()
        request = request.model_copy(update={"attempt": info.attempt})
        where = f"order {request.order_number} component {request.component_id}"
        try:
            return await self._heartbeating(request)
        except FulfillmentFault as fault:
            activity.logger.warning(
                "%s step %s line %s: fault %s", where, fault.step, fault.line_id, fault.code
            )
            raise ApplicationError(
                fault.message,
                FaultDetail(code=fault.code, line_id=fault.line_id, step=fault.step),
                type=FULFILLMENT_FAULT_TYPE,
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            ) from None
        except FulfillmentUnavailable as exc:
            activity.logger.warning(
                "%s step %s: unavailable on attempt %d, will retry: %s",
                where,
                request.step,
                info.attempt,
                exc,
            )
            raise ApplicationError(
                str(exc),
                type=FULFILLMENT_UNAVAILABLE_TYPE,
                category=ApplicationErrorCategory.BENIGN,
            ) from None

    async def _heartbeating(self, request: FulfillmentRequest) -> list[LineUpdate]:
        """Run the call, heartbeating while it works; cancelling the activity cancels it."""
        call = asyncio.create_task(self._system.execute(request))
        try:
            while not call.done():
                activity.heartbeat()
                await asyncio.wait({call}, timeout=HEARTBEAT_EVERY)
            return call.result()
        finally:
            call.cancel()
