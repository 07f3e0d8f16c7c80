"""The one test-support module: sample orders, gates that hold simulated steps until a test
releases them, and small helpers every workflow and command test uses.

Tests make "mid-flight" deterministic with gates, never with wall-clock sleeps: a
``GatedFulfillment`` is the simulator behind the FulfillmentSystem port, except that a call
matching a hold waits until the test releases it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from o2a.adapters.simulator import SimulatedFulfillment
from o2a.inbound import read_order_file
from o2a.models import CustomerOrder, LineUpdate, OrderState, OrderStatus, Specification, Step
from o2a.ports import FulfillmentRequest, FulfillmentSystem
from workflows.contracts.customer_order import STATUS_QUERY

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
WAIT = 30.0
"""Seconds any helper waits for something that must happen, before the test fails."""

# Component IDs of samples/triple_play.xml.
SYNC = "SyncCustomer.BillingSystem.order"
PROV_FIXED = "Provision.FixedProvisioningSystem.bundle-1.1"
PROV_MOBILE = "Provision.MobileProvisioningSystem.bundle-1.2"
PROV_BB = "Provision.BroadbandProvisioningSystem.bundle-1.3"
SHIP = "Ship.ShippingSystem.order"
INIT_BILL = "InitiateBilling.BillingSystem.order"
FULFIL_BILL = "FulfillBilling.BillingSystem.order"


# --- orders ---------------------------------------------------------------------------------


def sample(name: str, order_number: str) -> CustomerOrder:
    order = read_order_file(SAMPLES / name)
    return order.model_copy(update={"order_number": order_number})


def revision(order: CustomerOrder, number: int) -> CustomerOrder:
    return order.model_copy(deep=True, update={"revision": number})


def set_spec(order: CustomerOrder, line_id: str, name: str, value: str) -> CustomerOrder:
    line = next(line for line in order.lines if line.id == line_id)
    line.item.specifications = [s for s in line.item.specifications if s.name != name]
    line.item.specifications.append(Specification(name=name, value=value))
    return order


def request_id() -> str:
    return uuid.uuid4().hex


# --- gates ----------------------------------------------------------------------------------


@dataclass
class Gate:
    """Holds matching fulfillment calls: ``reached`` once one arrives, until ``release()``."""

    step: Step
    component: str | None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    held: list[FulfillmentRequest] = field(default_factory=list)

    def matches(self, request: FulfillmentRequest) -> bool:
        return request.step is self.step and self.component in (None, request.component_id)

    async def wait_reached(self, timeout: float = WAIT) -> FulfillmentRequest:
        await asyncio.wait_for(self.reached.wait(), timeout)
        return self.held[0]

    def release(self) -> None:
        self.opened.set()


class GatedFulfillment:
    """The simulator, with the test in charge of when held steps may finish."""

    def __init__(self, inner: FulfillmentSystem | None = None) -> None:
        self._inner = inner or SimulatedFulfillment()
        self._gates: list[Gate] = []
        self.calls: list[FulfillmentRequest] = []

    def hold(self, step: Step, component: str | None = None) -> Gate:
        gate = Gate(step, component)
        self._gates.append(gate)
        return gate

    def release_all(self) -> None:
        for gate in self._gates:
            gate.release()

    async def execute(self, request: FulfillmentRequest) -> list[LineUpdate]:
        self.calls.append(request)
        for gate in self._gates:
            if gate.matches(request) and not gate.opened.is_set():
                gate.held.append(request)
                gate.reached.set()
                await gate.opened.wait()
        return await self._inner.execute(request)

    def steps(self, component: str | None = None) -> list[tuple[str, Step, list[str]]]:
        """(component, step, line IDs) of every call so far, in arrival order."""
        return [
            (c.component_id, c.step, [line.id for line in c.lines])
            for c in self.calls
            if component in (None, c.component_id)
        ]


# --- waiting on an order --------------------------------------------------------------------


async def until(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """Poll a condition on a real server (state changes arrive asynchronously)."""

    async def loop() -> None:
        while not await check():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), timeout)


async def query(handle: WorkflowHandle) -> OrderStatus:  # type: ignore[type-arg]
    status: OrderStatus = await handle.query(STATUS_QUERY, result_type=OrderStatus)
    return status


async def wait_for_state(
    handle: WorkflowHandle,  # type: ignore[type-arg]
    state: OrderState,
    timeout: float = WAIT,
) -> OrderStatus:
    async def reached() -> bool:
        return (await query(handle)).state is state

    await until(reached, timeout)
    return await query(handle)


# --- what happened --------------------------------------------------------------------------


def messages(outbox: Path, prefix: str) -> list[tuple[Path, etree._Element]]:
    """Messages in sequence order (the ID ends in a zero-padded ``uNNN``), with their files."""
    files = sorted(outbox.glob(f"{prefix}.u*.xml"))
    return [(f, etree.parse(str(f)).getroot()) for f in files]


def text_of(root: etree._Element, local: str) -> list[str]:
    return [el.text or "" for el in root.iter() if etree.QName(el).localname == local]


async def fulfillment_calls(client: Client, workflow_id: str) -> list[dict[str, object]]:
    """The fulfillment requests of every run of a workflow, in order, from its history."""
    calls = []
    async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(workflow_id, run_id=run.run_id).fetch_history()
        for event in history.events:
            if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                continue
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "fulfill":
                calls.append(json.loads(attrs.input.payloads[0].data))
    return calls
