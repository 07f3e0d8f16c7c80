"""One call to a fulfillment system from workflow code, made the same way by COM and SOM."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.fulfillment import FulfillmentActivities
    from o2a import ids
    from o2a.models import LineUpdate, SalesOrderLine, Step
    from o2a.ports import FulfillmentRequest
    from workflows.policies import FULFILLMENT_HEARTBEAT, FULFILLMENT_RETRY, FULFILLMENT_TIMEOUT


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
) -> list[LineUpdate]:
    """One step for these lines of one component, under its deterministic request ID (so a
    retried call is the same call), with the shared timeout, heartbeat and retry budget."""
    return await workflow.execute_activity_method(
        FulfillmentActivities.fulfill,
        FulfillmentRequest(
            request_id=ids.fulfillment_request_id(order_number, revision, component_id, run, step),
            order_number=order_number,
            revision=revision,
            component_id=component_id,
            function=function,
            target_system=target_system,
            step=step,
            lines=lines,
            run=run,
        ),
        start_to_close_timeout=FULFILLMENT_TIMEOUT,
        heartbeat_timeout=FULFILLMENT_HEARTBEAT,
        retry_policy=FULFILLMENT_RETRY,
    )
