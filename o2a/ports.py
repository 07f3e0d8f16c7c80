"""Ports: what the order core needs from the outside world, and nothing of how it is done.

Activities are thin wrappers over these; adapters (``o2a/adapters/``) implement them and the
worker wires the ones its settings name. Tests plug in adapters of their own.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol, runtime_checkable

from o2a.models import LineUpdate, Model, SalesOrderLine, Step


class Destination(StrEnum):
    """Where an outbound message goes, named by the party that reads it (docs/architecture.md
    §2, "Activities and ports")."""

    CRM_ORDER_UPDATE = "crm.salesorder.update"
    """UpdateSalesOrderEBM and jeopardy notifications, COM → CRM."""
    SOM_PROVISIONING_ORDER = "som.provisioningorder"
    """ProcessProvisioningOrderEBM, COM → SOM (AIA_CRTFO_OUT_JMSQ)."""
    COM_FULFILLMENT_UPDATE = "com.fulfillmentupdate"
    """ProcessFulfillmentOrderUpdateEBM, SOM → COM."""
    ERROR_HANDLING = "errorhandling.fault"
    """The AIA Fault, to the error-handling service."""
    CRM_TROUBLE_TICKET = "crm.troubleticket"
    """CreateTroubleTicketEBM, COM → CRM."""


class MessageBus(Protocol):
    async def publish(self, destination: Destination, message_id: str, document: bytes) -> bytes:
        """Deliver ``document`` once under ``message_id``: the first body published under an
        ID is the one kept, never a second message. Returns the body the ID holds: this
        ``document``, or the one an earlier publish gave it (empty when that cannot be
        read back). A sender that decides its body as it goes (a local activity run again
        by a retried workflow task) tells from it a retry of its message from another
        message, which it sends under its next ID."""
        ...


class FulfillmentRequest(Model):
    """One call to a fulfillment system: one step for all the lines of one component."""

    request_id: str
    """Deterministic (order, revision, component, run, step): the correlation ID a real
    system deduplicates on, so a retried call never provisions twice."""
    order_number: str
    revision: int
    component_id: str
    function: str
    target_system: str
    step: Step
    lines: list[SalesOrderLine]
    run: int = 1
    """How many times the order has run this component (a retry after fallout counts)."""
    attempt: int = 1
    """This call's delivery attempt (retries of a transient failure count)."""


class FulfillmentFault(Exception):
    """The system refused the work for a business reason: retrying will not help; the
    component falls out and waits for an operator."""

    def __init__(self, code: str, message: str, line_id: str | None, step: Step) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line_id = line_id
        self.step = step


class FulfillmentUnavailable(Exception):
    """The system could not be reached or refused the connection: a passing cause, retried
    with backoff; fallout only once the retry budget is spent."""


class FulfillmentSystem(Protocol):
    async def execute(self, request: FulfillmentRequest) -> list[LineUpdate]:
        """Do the step for the request's lines; the data each line got back (service IDs,
        numbers). Raises FulfillmentFault or FulfillmentUnavailable."""
        ...


@runtime_checkable
class FulfillmentRequester(Protocol):
    """A fulfillment system that answers later (over the bus): the request is handed over
    now, with a reply token the system echoes back in its response; what completes the
    step is that response, not this call."""

    async def send(self, request: FulfillmentRequest, reply_token: bytes) -> None:
        """Hand the request over once. Raises FulfillmentUnavailable when it could not be."""
        ...
