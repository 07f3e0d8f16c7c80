"""Signals to a running order: revise, cancel and the operator's resolve.

Each command checks first that the order exists and is still running, so a mistyped
order number or a finished order gets one clear line instead of a signal that goes nowhere.
The outcome (accepted, rejected and why) shows in `o2a status` and in CRM's next update.
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowExecutionStatus

from o2a.errors import OrderConflictError
from o2a.models import CancelRequest, CustomerOrder, OperatorRequest, OrderState, OrderStatus
from starters.inspect import OrderHandle, describe_order, order_status
from workflows.customer_order import CustomerOrderWorkflow


async def running_order(client: Client, order_number: str, action: str) -> OrderHandle:
    """The order's handle; ``action`` completes "only a running order can be ..." refusals."""
    handle, description = await describe_order(client, order_number)
    if description.status is WorkflowExecutionStatus.COMPLETED:
        state = (await handle.result()).state.value
        raise OrderConflictError(f"order {order_number} is {state}: {action}")
    if description.status is not WorkflowExecutionStatus.RUNNING:
        closed = description.status.name.lower() if description.status else "closed"
        raise OrderConflictError(f"order {order_number} is {closed}: {action}")
    return handle


async def revise_order(client: Client, order: CustomerOrder) -> None:
    handle = await running_order(client, order.order_number, "only a running order can be revised")
    await handle.signal(CustomerOrderWorkflow.revise, order)


async def cancel_order(client: Client, order_number: str, reason: str | None) -> None:
    handle = await running_order(client, order_number, "only a running order can be cancelled")
    await handle.signal(CustomerOrderWorkflow.cancel, CancelRequest(reason=reason))


async def _in_state(
    client: Client, order_number: str, allowed: set[OrderState], needs: str
) -> tuple[OrderHandle, OrderStatus]:
    handle = await running_order(client, order_number, needs)
    status = await order_status(client, order_number)
    if status.state not in allowed:
        raise OrderConflictError(f"order {order_number} is {status.state.value}: {needs}")
    return handle, status


async def resolve_order(client: Client, order_number: str, component: str | None) -> None:
    handle, status = await _in_state(
        client, order_number, {OrderState.FAILED}, "only a failed order can be resolved"
    )
    if component is not None:
        failed = [c.id for c in status.components if c.state.value == "failed"]
        if component not in failed:
            raise OrderConflictError(
                f"component {component} of order {order_number} has not failed; "
                f"failed: {', '.join(failed) or 'none'}"
            )
    await handle.signal(CustomerOrderWorkflow.resolve, OperatorRequest(component=component))


async def suspend_order(client: Client, order_number: str) -> None:
    handle, _ = await _in_state(
        client,
        order_number,
        {OrderState.IN_PROGRESS, OrderState.FAILED, OrderState.WAITING},
        "only an order in progress, failed or waiting can be suspended",
    )
    await handle.signal(CustomerOrderWorkflow.suspend)


async def resume_order(client: Client, order_number: str) -> None:
    handle, _ = await _in_state(
        client, order_number, {OrderState.SUSPENDED}, "only a suspended order can be resumed"
    )
    await handle.signal(CustomerOrderWorkflow.resume)


async def abort_order(client: Client, order_number: str, reason: str | None) -> None:
    handle = await running_order(client, order_number, "only a running order can be aborted")
    await handle.signal(CustomerOrderWorkflow.abort, OperatorRequest(reason=reason))
