"""CustomerOrderWorkflow and ProvisioningOrderWorkflow on a real Temporal dev server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from lxml import etree
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from o2a import ids, visibility
from o2a.config import Settings
from o2a.errors import OrderConflictError
from o2a.inbound import read_order_file
from o2a.models import (
    ComponentState,
    CustomerOrder,
    FulfillmentStatus,
    OrderState,
    Specification,
)
from starters.submit import start_order
from tests.conftest import SAMPLES
from workflows.customer_order import CustomerOrderWorkflow


def sample(name: str, order_number: str) -> CustomerOrder:
    order = read_order_file(SAMPLES / name)
    return order.model_copy(update={"order_number": order_number})


def messages(outbox: Path, prefix: str) -> list[tuple[Path, etree._Element]]:
    """Messages in sequence order (the ID ends in a zero-padded ``uNNN``), with their files."""
    files = sorted(outbox.glob(f"{prefix}.u*.xml"))
    return [(f, etree.parse(str(f)).getroot()) for f in files]


def text_of(root: etree._Element, local: str) -> list[str]:
    return [el.text or "" for el in root.iter() if etree.QName(el).localname == local]


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    while not await check():
        await asyncio.sleep(0.2)


async def wait_for_state(handle: WorkflowHandle, state: OrderState, timeout: float = 30.0) -> None:
    async def reached() -> bool:
        return (await handle.query(CustomerOrderWorkflow.status)).state is state

    await asyncio.wait_for(until(reached), timeout)


async def test_triple_play_completes(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
    async with worker():
        handle = await start_order(client, order, settings)
        result = await handle.result()

    assert result.state is OrderState.COMPLETED
    assert result.status is FulfillmentStatus.COMPLETE
    for line in result.lines:
        assert line.status is FulfillmentStatus.COMPLETE, line
        assert line.milestone, line
    provisioning = [c for c in result.components if c.function == "Provision"]
    assert {c.target_system for c in provisioning} == {
        "FixedProvisioningSystem",
        "MobileProvisioningSystem",
        "BroadbandProvisioningSystem",
    }
    assert {c.function for c in result.components} >= {
        "SyncCustomer",
        "Provision",
        "Ship",
        "InitiateBilling",
        "FulfillBilling",
    }
    assert all(c.state is ComponentState.COMPLETED for c in result.components)
    plans = [line for line in result.lines if line.product_class == "Mobile Service Plan Class"]
    assert plans and all("MSISDN" in line.data for line in plans)

    # One ProcessProvisioningOrderEBM per provisioning component, under the child's ID.
    ppo = sorted(settings.outbox_dir.glob(f"PPO.{order_number}.*.xml"))
    assert len(ppo) == len(provisioning)
    for component in provisioning:
        child = client.get_workflow_handle(ids.provisioning_workflow_id(order_number, component.id))
        assert (await child.describe()).status is WorkflowExecutionStatus.COMPLETED

    # CRM heard IN PROGRESS first and COMPLETE last, each message under its own EBMID.
    crm = messages(settings.outbox_dir, f"USO.{order_number}.r1")
    assert len(crm) == result.crm_updates_sent
    order_statuses = [text_of(m, "Code")[0] for _, m in crm]
    assert order_statuses[0] == "IN PROGRESS"
    assert order_statuses[-1] == "COMPLETE"
    for path, message in crm:
        assert etree.QName(message).localname == "UpdateSalesOrderEBM"
        assert text_of(message, "EBMID") == [path.stem]

    description = await handle.describe()
    attrs = description.typed_search_attributes
    assert attrs.get(visibility.ORDER_STATE) == "completed"
    assert attrs.get(visibility.ORDER_STATUS) == "COMPLETE"
    assert attrs.get(visibility.ORDER_NUMBER) == order_number


async def test_second_submit_is_refused(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = sample("broadband_only.xml", order_number)
    async with worker():
        handle = await start_order(client, order, settings)
        try:
            await start_order(client, order, settings)
        except OrderConflictError as exc:
            assert order_number in str(exc)
        else:
            raise AssertionError("second submit was accepted")
        await handle.result()
        try:
            await start_order(client, order, settings)
        except OrderConflictError:
            pass
        else:
            raise AssertionError("submit of a finished order was accepted")
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert len(runs) == 1


async def test_fault_waits_in_failed_state_until_resolved(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = sample("triple_play.xml", order_number)
    voice = next(
        line for line in order.lines if line.item.product_class == "Fixed Service Plan Class"
    )
    voice.item.specifications.append(
        Specification(name="SimulatedFault", value="activate:PORT_UNAVAILABLE:1")
    )
    async with worker():
        handle = await start_order(client, order, settings)
        await wait_for_state(handle, OrderState.FAILED)
        status = await handle.query(CustomerOrderWorkflow.status)
        assert [f.code for f in status.fallouts] == ["PORT_UNAVAILABLE"]
        assert status.fallouts[0].state == "open"
        assert status.fallouts[0].step == "activate"
        by_id = {line.id: line for line in status.lines}
        assert by_id[voice.id].status is FulfillmentStatus.FAILED
        assert status.status is FulfillmentStatus.FAILED

        async def settled() -> bool:
            status = await handle.query(CustomerOrderWorkflow.status)
            return not any(c.state is ComponentState.IN_PROGRESS for c in status.components)

        await asyncio.wait_for(until(settled), 30)
        status = await handle.query(CustomerOrderWorkflow.status)
        assert status.state is OrderState.FAILED
        mobile = [c for c in status.components if c.target_system == "MobileProvisioningSystem"]
        assert mobile and mobile[0].state is ComponentState.COMPLETED
        billing = [c for c in status.components if c.function == "FulfillBilling"]
        assert billing[0].state is ComponentState.PENDING  # waits for the failed provisioning

        await handle.signal(CustomerOrderWorkflow.resolve)
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    assert result.fallouts[0].state == "resolved"


async def test_large_order_keeps_parent_history_small(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = sample("business_200.xml", order_number)
    assert len(order.lines) == 200
    async with worker():
        handle = await start_order(client, order, settings)
        result = await handle.result()
    assert result.state is OrderState.COMPLETED
    history = await handle.fetch_history()
    assert len(history.events) < 2000, len(history.events)
