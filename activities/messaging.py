"""Outbound messages: render the EBM and publish it through the MessageBus port, to the
destination of the party that reads it, under its deterministic ID.

A message the bus can never take fails for good (OUTBOUND_MESSAGE_REJECTED_TYPE); a bus an
operator must fix first is retried, with one warning line per attempt saying what to fix.
Once a CRM update, jeopardy or fallout message is out, its TMF events go to the Notifier
(hub listeners); a worker without one sends none. A CRM update that reports a cancel's
outcome also carries the cancelProductOrder task's last state change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, field_serializer
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.service import RPCError, RPCStatusCode

from o2a import ids
from o2a.errors import MessageBusUnavailable, MessageRejected
from o2a.models import (
    ComponentUpdate,
    FalloutView,
    FulfillmentStatus,
    HeardUpdate,
    JeopardyView,
    LineView,
    OrderState,
    ProvisioningOrder,
    RevisionView,
)
from o2a.notifications import (
    Notifier,
    fallout_events,
    jeopardy_events,
    sales_order_update_events,
)
from o2a.outbound import (
    read_sales_order_update,
    render_fault,
    render_fulfillment_update,
    render_jeopardy,
    render_provisioning_order,
    render_sales_order_update,
    render_trouble_ticket,
    same_message,
)
from o2a.ports import Destination, MessageBus
from workflows.contracts.listener_delivery import TmfEvent
from workflows.contracts.provisioning_order import COMPONENT_UPDATE_SIGNAL

OUTBOUND_MESSAGE_REJECTED_TYPE = "OutboundMessageRejected"
"""The bus can never take the message (a name too long, an outbox path that is a file):
non-retryable; the error's message names the message ID and why."""
MESSAGE_BUS_UNAVAILABLE_TYPE = "MessageBusUnavailable"
"""A cause an operator can fix (permissions, a full disk): retried by the retry policy."""


CHILD_FLAGS = {"som_announces", "som_patched"}
"""ProvisioningOrder fields for the SOM child's workflow, not for its message."""


class ProvisioningOrderMessage(BaseModel):
    message_id: str
    created: datetime
    order: ProvisioningOrder

    @field_serializer("order")
    def _as_rendered(self, order: ProvisioningOrder) -> dict[str, Any]:
        """The order as its EBM renders it, without the flags that steer the SOM child
        (``som_announces``, ``som_patched``): a worker of an earlier build, which does not
        know them (``extra="forbid"``), still reads the message in a mixed fleet, instead
        of failing the step's call on every attempt it takes."""
        return order.model_dump(mode="json", exclude=CHILD_FLAGS)

    @classmethod
    def of(cls, order: ProvisioningOrder, created: datetime) -> ProvisioningOrderMessage:
        """The EBM of one run of a component, under its ID: the same whether COM or the
        SOM child sends it."""
        return cls(
            message_id=ids.provisioning_order_message_id(
                order.order_number, order.revision, order.component_id, order.run
            ),
            created=created,
            order=order,
        )


class FulfillmentUpdateMessage(BaseModel):
    message_id: str
    created: datetime
    order_number: str
    revision: int
    update: ComponentUpdate
    parent_workflow_id: str | None = None
    """The COM order that hears the update as a signal once the EBM is out; None for an
    update that reaches it otherwise (the child's result)."""


class SalesOrderUpdateMessage(BaseModel):
    message_id: str
    created: datetime
    order_number: str
    revision: int
    order_status: FulfillmentStatus
    lines: list[LineView]
    revision_outcome: RevisionView | None = None
    order_state: OrderState | None = None
    """The order's own state when it was sent (None in messages of older histories): its
    listeners hear an order held, pending or pending cancellation, which the status cannot
    say."""


class UpdateDelivery(BaseModel):
    sent: bool
    """The ID holds this update, sent now or by an earlier try of the same decision."""
    heard: HeardUpdate | None = None
    """Not sent: what the update the ID holds told CRM (None when it cannot be read)."""


class FalloutMessage(BaseModel):
    order_number: str
    created: datetime
    fallout: FalloutView
    failed_message_id: str


class JeopardyMessage(BaseModel):
    message_id: str
    created: datetime
    order_number: str
    revision: int
    jeopardy: JeopardyView
    lines: list[str]


async def _deliver_to_order(workflow_id: str, message_id: str, update: ComponentUpdate) -> None:
    """The update as a signal to the COM order; an order that has ended (aborted, its
    children closing) needs it no more."""
    order = activity.client().get_workflow_handle(workflow_id)
    try:
        await order.signal(
            COMPONENT_UPDATE_SIGNAL, update.model_copy(update={"message_id": message_id})
        )
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        activity.logger.info("order %s has ended: update %s not delivered", workflow_id, message_id)


class MessagingActivities:
    def __init__(self, bus: MessageBus, notifier: Notifier | None = None) -> None:
        self._bus = bus
        self._notifier = notifier

    async def _publish(
        self,
        destination: Destination,
        message_id: str,
        document: bytes,
        component: str | None = None,
    ) -> bytes | None:
        """An unavailable bus is BENIGN, so the SDK logs no traceback on every attempt; the
        one warning line below is what an operator watching the worker sees. ``component``:
        the one the message is about, for the log lines. Returns the body the ID already
        held when it is another message (the bus keeps the first), so this one was not sent;
        a body differing only in its header is this message, decided again by a retried
        workflow task."""
        about = {"component": component} if component else {}
        try:
            held = await self._bus.publish(destination, message_id, document)
            if same_message(held, document):
                activity.logger.info("sent %s to %s", message_id, destination.value, extra=about)
                return None
            activity.logger.warning(
                "%s already holds another message: this one not sent", message_id, extra=about
            )
            return held
        except MessageRejected as exc:
            raise ApplicationError(
                str(exc), type=OUTBOUND_MESSAGE_REJECTED_TYPE, non_retryable=True
            ) from None
        except MessageBusUnavailable as exc:
            activity.logger.warning(
                "message %s not sent on attempt %d, will retry: %s",
                message_id,
                activity.info().attempt,
                exc,
                extra=about,
            )
            raise ApplicationError(
                str(exc),
                type=MESSAGE_BUS_UNAVAILABLE_TYPE,
                category=ApplicationErrorCategory.BENIGN,
            ) from None

    async def _notify(self, events: list[TmfEvent]) -> None:
        """After the message is out: a retry publishes it again, then notifies again (the
        listeners drop eventIds they already had)."""
        if self._notifier is not None:
            await self._notifier.notify(events)

    @activity.defn(name="send_provisioning_order")
    async def send_provisioning_order(self, msg: ProvisioningOrderMessage) -> None:
        await self._publish(
            Destination.SOM_PROVISIONING_ORDER,
            msg.message_id,
            render_provisioning_order(msg.message_id, msg.order, msg.created),
            msg.order.component_id,
        )

    @activity.defn(name="send_fulfillment_update")
    async def send_fulfillment_update(self, msg: FulfillmentUpdateMessage) -> None:
        document = render_fulfillment_update(
            msg.message_id, msg.order_number, msg.revision, msg.update, msg.created
        )
        await self._publish(Destination.COM_FULFILLMENT_UPDATE, msg.message_id, document)
        if msg.parent_workflow_id is not None:
            await _deliver_to_order(msg.parent_workflow_id, msg.message_id, msg.update)

    @activity.defn(name="send_sales_order_update")
    async def send_sales_order_update(self, msg: SalesOrderUpdateMessage) -> None:
        """A CRM update as a regular activity: its body is fixed by the command that
        scheduled it, so a retry sends the same one."""
        await self._update_crm(msg, self._render_update(msg))

    @activity.defn(name="deliver_sales_order_update")
    async def deliver_sales_order_update(self, msg: SalesOrderUpdateMessage) -> UpdateDelivery:
        """A CRM update the order decided in a workflow task that may be a retry: an
        earlier try, deciding from events in another order, may have sent another update
        under this ID. Then this one is not sent, and the order hears what CRM was told."""
        held = await self._update_crm(msg, self._render_update(msg))
        if held is None:
            return UpdateDelivery(sent=True)
        return UpdateDelivery(sent=False, heard=read_sales_order_update(held))

    def _render_update(self, msg: SalesOrderUpdateMessage) -> bytes:
        return render_sales_order_update(
            msg.message_id,
            msg.order_number,
            msg.revision,
            msg.order_status,
            msg.lines,
            msg.created,
            msg.revision_outcome,
        )

    async def _update_crm(self, msg: SalesOrderUpdateMessage, document: bytes) -> bytes | None:
        """Published, then heard by the listeners; the other body the ID holds, if any."""
        held = await self._publish(Destination.CRM_ORDER_UPDATE, msg.message_id, document)
        if held is not None:
            return held
        await self._notify_update(msg)
        return None

    async def _notify_update(self, msg: SalesOrderUpdateMessage) -> None:
        await self._notify(
            sales_order_update_events(
                msg.message_id,
                msg.created,
                msg.order_number,
                msg.revision,
                msg.order_status,
                msg.lines,
                msg.revision_outcome,
                msg.order_state,
            )
        )

    @activity.defn(name="send_fallout")
    async def send_fallout(self, msg: FalloutMessage) -> None:
        """The Fault to error handling and the trouble ticket to CRM, both under IDs derived
        from the incident, so a retry republishes the same two messages."""
        fault_id = ids.fault_message_id(msg.fallout.id)
        await self._publish(
            Destination.ERROR_HANDLING,
            fault_id,
            render_fault(
                fault_id, msg.order_number, msg.fallout, msg.failed_message_id, msg.created
            ),
            msg.fallout.component or None,
        )
        ticket_id = ids.trouble_ticket_message_id(msg.fallout.id)
        await self._publish(
            Destination.CRM_TROUBLE_TICKET,
            ticket_id,
            render_trouble_ticket(ticket_id, msg.order_number, msg.fallout, msg.created),
            msg.fallout.component or None,
        )
        await self._notify(fallout_events(fault_id, msg.created, msg.order_number, msg.fallout))

    @activity.defn(name="send_jeopardy")
    async def send_jeopardy(self, msg: JeopardyMessage) -> None:
        document = render_jeopardy(
            msg.message_id, msg.order_number, msg.revision, msg.jeopardy, msg.lines, msg.created
        )
        await self._publish(
            Destination.CRM_ORDER_UPDATE, msg.message_id, document, msg.jeopardy.component
        )
        await self._notify(
            jeopardy_events(msg.message_id, msg.created, msg.order_number, msg.jeopardy, msg.lines)
        )
