"""Outbound messages: render the EBM and deliver it to the sink under its deterministic ID."""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel
from temporalio import activity

from o2a import ids
from o2a.models import (
    ComponentUpdate,
    FalloutView,
    FulfillmentStatus,
    JeopardyView,
    LineView,
    ProvisioningOrder,
    RevisionView,
)
from o2a.outbound import (
    MessageSink,
    render_fault,
    render_fulfillment_update,
    render_jeopardy,
    render_provisioning_order,
    render_sales_order_update,
    render_trouble_ticket,
)


class ProvisioningOrderMessage(BaseModel):
    message_id: str
    created: datetime
    order: ProvisioningOrder


class FulfillmentUpdateMessage(BaseModel):
    message_id: str
    created: datetime
    order_number: str
    revision: int
    update: ComponentUpdate


class SalesOrderUpdateMessage(BaseModel):
    message_id: str
    created: datetime
    order_number: str
    revision: int
    order_status: FulfillmentStatus
    lines: list[LineView]
    revision_outcome: RevisionView | None = None


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


class MessagingActivities:
    def __init__(self, sink: MessageSink) -> None:
        self._sink = sink

    async def _deliver(self, message_id: str, document: bytes) -> None:
        await asyncio.to_thread(self._sink.deliver, message_id, document)

    @activity.defn(name="send_provisioning_order")
    async def send_provisioning_order(self, msg: ProvisioningOrderMessage) -> None:
        await self._deliver(
            msg.message_id, render_provisioning_order(msg.message_id, msg.order, msg.created)
        )

    @activity.defn(name="send_fulfillment_update")
    async def send_fulfillment_update(self, msg: FulfillmentUpdateMessage) -> None:
        document = render_fulfillment_update(
            msg.message_id, msg.order_number, msg.revision, msg.update, msg.created
        )
        await self._deliver(msg.message_id, document)

    @activity.defn(name="send_sales_order_update")
    async def send_sales_order_update(self, msg: SalesOrderUpdateMessage) -> None:
        document = render_sales_order_update(
            msg.message_id,
            msg.order_number,
            msg.revision,
            msg.order_status,
            msg.lines,
            msg.created,
            msg.revision_outcome,
        )
        await self._deliver(msg.message_id, document)

    @activity.defn(name="send_fallout")
    async def send_fallout(self, msg: FalloutMessage) -> None:
        """The Fault to error handling and the trouble ticket to CRM, both under IDs derived
        from the incident, so a retry rewrites the same two files."""
        fault_id = ids.fault_message_id(msg.fallout.id)
        await self._deliver(
            fault_id,
            render_fault(
                fault_id, msg.order_number, msg.fallout, msg.failed_message_id, msg.created
            ),
        )
        ticket_id = ids.trouble_ticket_message_id(msg.fallout.id)
        await self._deliver(
            ticket_id, render_trouble_ticket(ticket_id, msg.order_number, msg.fallout, msg.created)
        )

    @activity.defn(name="send_jeopardy")
    async def send_jeopardy(self, msg: JeopardyMessage) -> None:
        document = render_jeopardy(
            msg.message_id, msg.order_number, msg.revision, msg.jeopardy, msg.lines, msg.created
        )
        await self._deliver(msg.message_id, document)
