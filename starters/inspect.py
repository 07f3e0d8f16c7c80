"""`o2a status` and `o2a list`: reading an order's state without disturbing it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from o2a import ids, visibility
from o2a.errors import NoWorkerError, UnknownOrderError
from o2a.models import OrderState, OrderStatus
from workflows.customer_order import CustomerOrderWorkflow

QUERY_TIMEOUT = timedelta(seconds=10)


OrderHandle = WorkflowHandle[CustomerOrderWorkflow, OrderStatus]


async def describe_order(
    client: Client, order_number: str
) -> tuple[OrderHandle, WorkflowExecutionDescription]:
    """The order's handle and description; an unknown order number is UnknownOrderError."""
    handle = client.get_workflow_handle_for(
        CustomerOrderWorkflow.run, ids.order_workflow_id(order_number)
    )
    try:
        return handle, await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise UnknownOrderError(f"no order {order_number} (workflow {handle.id})") from None
        raise


async def order_status(client: Client, order_number: str) -> OrderStatus:
    """A finished order answers from its result (no worker needed); a running one by query."""
    handle, description = await describe_order(client, order_number)
    if description.status is WorkflowExecutionStatus.COMPLETED:
        return await handle.result()
    try:
        return await handle.query(CustomerOrderWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as exc:
        if exc.status is not RPCStatusCode.DEADLINE_EXCEEDED:
            raise
        raise NoWorkerError(
            f"order {order_number} is running but no worker answered "
            f"within {QUERY_TIMEOUT.seconds}s: is `o2a worker` running on its task queue?"
        ) from None


def format_status(status: OrderStatus) -> str:
    out = [
        f"Order {status.order_number}  revision {status.revision}  "
        f"state {status.state.value}  status {status.status.value}",
        "",
        f"{'LINE':<8} {'ACTION':<7} {'STATUS':<12} {'MILESTONE':<22} NAME",
    ]
    for line in status.lines:
        out.append(
            f"{line.id:<8} {line.action.value:<7} {line.status.value:<12} "
            f"{line.milestone or '-':<22} {line.name}"
        )
    out += ["", f"{'COMPONENT':<52} {'STATE':<12} LINES"]
    for c in status.components:
        out.append(f"{c.id:<52} {c.state.value:<12} {len(c.lines)}")
    if status.fallouts:
        out += ["", "FALLOUT"]
        out += [f"{f.id} {f.component} {f.code} {f.state}: {f.message}" for f in status.fallouts]
    if status.revisions:
        out += ["", "REVISIONS"]
        out += [f"{r.number} {r.outcome} {r.reason or ''}" for r in status.revisions]
    return "\n".join(out)


@dataclass(frozen=True)
class OrderSummary:
    order_number: str
    state: str
    status: str
    customer: str
    workflow_id: str
    started: datetime


async def list_orders(client: Client, state: OrderState | None, limit: int) -> list[OrderSummary]:
    query = "WorkflowType = 'CustomerOrderWorkflow'"
    if state is not None:
        query += f" AND {visibility.ORDER_STATE.name} = '{state.value}'"
    found: list[OrderSummary] = []
    async for wf in client.list_workflows(query, limit=limit):
        attrs = wf.typed_search_attributes
        found.append(
            OrderSummary(
                order_number=attrs.get(visibility.ORDER_NUMBER) or wf.id,
                state=attrs.get(visibility.ORDER_STATE) or "",
                status=attrs.get(visibility.ORDER_STATUS) or "",
                customer=attrs.get(visibility.CUSTOMER_ID) or "",
                workflow_id=wf.id,
                started=wf.start_time,
            )
        )
    return found


def format_orders(orders: list[OrderSummary]) -> str:
    out = [f"{'ORDER':<24} {'STATE':<12} {'STATUS':<12} {'CUSTOMER':<14} STARTED"]
    for o in orders:
        out.append(
            f"{o.order_number:<24} {o.state:<12} {o.status:<12} {o.customer:<14} "
            f"{o.started:%Y-%m-%d %H:%M:%S}"
        )
    return "\n".join(out)
