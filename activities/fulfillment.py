"""Calls to the (simulated) fulfillment systems: provisioning steps, customer sync, shipping,
billing. Each call is keyed by order, component, line and step, and returns the same data on
a retry, so repeating a call never provisions twice.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from o2a.models import LineUpdate, SalesOrderLine
from o2a.simulator import activation_data, line_delay, line_fault, line_outage

SIMULATED_FAULT_TYPE = "SimulatedFault"


class ProvisioningStep(BaseModel):
    order_number: str
    revision: int
    component_id: str
    target_system: str
    step: str
    line: SalesOrderLine
    run: int = 1
    """How many times the workflow has run this step (the simulator's fault COUNT)."""


class FunctionCall(BaseModel):
    order_number: str
    revision: int
    component_id: str
    function: str
    target_system: str
    step: str
    lines: list[SalesOrderLine]
    run: int = 1


HEARTBEAT_EVERY = 2.0


async def _work(seconds: float) -> None:
    """Heartbeat while the system works, so a dead worker is noticed in seconds, not hours."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        activity.heartbeat()
        await asyncio.sleep(min(left, HEARTBEAT_EVERY))


async def _simulate(step: str, run: int, lines: list[SalesOrderLine], system: str) -> None:
    await _work(max((line_delay(line) for line in lines), default=0.0))
    for line in lines:
        outage = line_outage(line)
        if outage is not None and outage[0] == step and activity.info().attempt <= outage[1]:
            # Transient: the retry policy backs off and tries again; no fallout unless the
            # retry budget runs out.
            raise ConnectionRefusedError(f"{system} refused the connection for {step}")
        fault = line_fault(line)
        if fault is not None and fault.fails(step, run):
            raise ApplicationError(
                f"{system} rejected {step} of line {line.id}: {fault.code}",
                fault.code,
                line.id,
                step,
                type=SIMULATED_FAULT_TYPE,
                non_retryable=True,
            )


@activity.defn(name="run_provisioning_step")
async def run_provisioning_step(call: ProvisioningStep) -> LineUpdate:
    await _simulate(call.step, call.run, [call.line], call.target_system)
    data: dict[str, str] = {}
    if call.step == "activate":
        data = activation_data(call.order_number, call.line, call.target_system)
    return LineUpdate(line_id=call.line.id, data=data)


@activity.defn(name="run_order_function")
async def run_order_function(call: FunctionCall) -> list[LineUpdate]:
    await _simulate(call.step, call.run, call.lines, call.target_system)
    if call.function == "Ship":
        return [
            LineUpdate(line_id=line.id, data={"ShipmentId": f"SHP-{call.order_number}-{line.id}"})
            for line in call.lines
        ]
    if call.function == "InitiateBilling":
        return [
            LineUpdate(line_id=line.id, data={"BillingItemId": f"BI-{call.order_number}-{line.id}"})
            for line in call.lines
        ]
    return []
