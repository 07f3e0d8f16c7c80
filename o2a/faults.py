"""A fulfillment fault as it travels through Temporal: raised by the fulfillment
activities and by the bus's response reader, and by SOM itself for a system that never
answered (``workflows/fulfillment_call.py``), so linted as workflow code. COM reads it
back with ``workflows/order_work.fault_of``."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from o2a.models import FaultDetail

FULFILLMENT_FAULT_TYPE = "FulfillmentFault"
"""A business refusal: non-retryable, details[0] is a FaultDetail; the component falls out."""


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
