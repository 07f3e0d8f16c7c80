"""The simulated fulfillment systems: the FulfillmentSystem port driven by the lines' own
SimulatedDelay / SimulatedFault / SimulatedOutage specifications (docs/architecture.md §3)."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from o2a.models import AMEND_PREFIX, LineUpdate, SalesOrderLine, Step
from o2a.ports import FulfillmentFault, FulfillmentRequest, FulfillmentUnavailable
from o2a.simulator import activation_data, line_delay, line_fault, line_outage


class IssuedId(NamedTuple):
    """An identifier a function's system hands back for each line on its do step."""

    step: Step
    name: str
    prefix: str


ISSUED_IDS: dict[str, IssuedId] = {
    "Ship": IssuedId(Step.SHIP, "ShipmentId", "SHP"),
    "InitiateBilling": IssuedId(Step.BILLING, "BillingItemId", "BI"),
}
"""By function name, as the shipped catalog names them."""


class SimulatedFulfillment:
    """Every target system at once, answering from the request alone: the same request
    gets the same answer, so a retry is as idempotent as a real system's dedup by key."""

    async def execute(self, request: FulfillmentRequest) -> list[LineUpdate]:
        await asyncio.sleep(max((line_delay(line) for line in request.lines), default=0.0))
        # A refused connection comes before the system looks at any line.
        for line in request.lines:
            outage = line_outage(line)
            if outage is not None and outage.refuses(request.step, request.attempt):
                raise FulfillmentUnavailable(
                    f"{request.target_system} refused the connection for {request.step}"
                )
        for line in request.lines:
            fault = line_fault(line)
            if fault is not None and fault.fails(request.step, request.run):
                raise FulfillmentFault(
                    fault.code,
                    f"{request.target_system} rejected {request.step} of line {line.id}: "
                    f"{fault.code}",
                    line.id,
                    request.step,
                )
        updates = (LineUpdate(line_id=line.id, data=_data(request, line)) for line in request.lines)
        return [update for update in updates if update.data]


def _data(request: FulfillmentRequest, line: SalesOrderLine) -> dict[str, str]:
    """What the system hands back for one line; an amend step answers as its do step."""
    step = Step(request.step.removeprefix(AMEND_PREFIX))
    if step is Step.ACTIVATE:
        return activation_data(request.order_number, line, request.target_system)
    issued = ISSUED_IDS.get(request.function)
    if issued is None or issued.step is not step:
        return {}
    return {issued.name: f"{issued.prefix}-{request.order_number}-{line.id}"}
