"""Operator actions on a running order, sent as signals after checking the order allows them."""

from __future__ import annotations

from temporalio.client import Client

from o2a import ids
from o2a.errors import OrderConflictError
from o2a.models import OrderState
from starters.inspect import order_status
from workflows.customer_order import CustomerOrderWorkflow


async def resolve_order(client: Client, order_number: str) -> None:
    status = await order_status(client, order_number)
    if status.state is not OrderState.FAILED:
        raise OrderConflictError(
            f"order {order_number} is {status.state.value}: only a failed order can be resolved"
        )
    handle = client.get_workflow_handle_for(
        CustomerOrderWorkflow.run, ids.order_workflow_id(order_number)
    )
    await handle.signal(CustomerOrderWorkflow.resolve)
