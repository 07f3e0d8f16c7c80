"""`o2a submit`: parse, validate and start an order; a second submit never starts another."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from o2a import ids, visibility
from o2a.catalog import load_catalog
from o2a.config import Settings
from o2a.decomposition import validate_order
from o2a.errors import InputError, OrderConflictError
from o2a.inbound import read_order_file
from o2a.models import CustomerOrder, FulfillmentMode, FulfillmentStatus, OrderState, OrderStatus
from o2a.simulator import validate_simulation
from workflows.customer_order import CustomerOrderWorkflow


def load_valid_order(path: str | Path, settings: Settings) -> CustomerOrder:
    """Everything a submit checks before it touches Temporal."""
    order = read_order_file(path)
    validate_order(order, load_catalog(settings.catalog_path))
    validate_simulation(order.lines)
    return order


async def start_order(
    client: Client, order: CustomerOrder, settings: Settings
) -> WorkflowHandle[CustomerOrderWorkflow, OrderStatus]:
    if order.fulfillment_mode is FulfillmentMode.CANCEL:
        raise InputError(
            f"order {order.order_number} has FulfillmentModeCode CANCEL: "
            "a cancel is sent to a running order, not submitted"
        )
    workflow_id = ids.order_workflow_id(order.order_number)
    try:
        return await client.start_workflow(
            CustomerOrderWorkflow.run,
            order,
            id=workflow_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            # Inherited by the order's activities and child workflows.
            priority=Priority(priority_key=order.priority_key()),
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(visibility.ORDER_NUMBER, order.order_number),
                    SearchAttributePair(visibility.ORDER_STATE, OrderState.NOT_STARTED.value),
                    SearchAttributePair(visibility.ORDER_STATUS, FulfillmentStatus.OPEN.value),
                    SearchAttributePair(visibility.ORDER_REVISION, order.revision),
                    *(
                        [SearchAttributePair(visibility.CUSTOMER_ID, order.customer_account)]
                        if order.customer_account
                        else []
                    ),
                ]
            ),
            static_summary=(
                f"Order {order.order_number} rev {order.revision}: {len(order.lines)} lines"
                + (f", customer {order.customer_account}" if order.customer_account else "")
            ),
        )
    except WorkflowAlreadyStartedError:
        raise OrderConflictError(
            f"order {order.order_number} was already submitted (workflow {workflow_id}); "
            f"follow it with `o2a status {order.order_number}`"
        ) from None
