"""The AIA endpoint: CRM posts a ProcessSalesOrderFulfillmentEBM, as it would to OSM's
order queue. The document goes through the same hardened parser and checks as `o2a submit`;
what it is to the order (new, a higher revision, a CANCEL) decides the answer."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import ConfigDict
from pydantic.alias_generators import to_camel
from starlette.concurrency import run_in_threadpool

from o2a import ids
from o2a.api.auth import Permission, Role, require
from o2a.api.errors import TmfError
from o2a.api.operator import Service
from o2a.bus_messages import document_message_id
from o2a.models import CustomerOrder, Model

router = APIRouter(tags=["aia"])

XML_MEDIA_TYPES = frozenset({"application/xml", "text/xml"})


class OrderReceived(Model):
    """Where the order is and how to follow it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    order_number: str
    revision: int
    workflow_id: str
    href: str
    """The order in the operator API."""
    request_id: str | None = None
    """A revision or cancel: its outcome is recorded in the order's revisions under this ID."""


ANSWERS: dict[int | str, dict[str, object]] = {
    202: {"model": OrderReceived, "description": "A revision or cancel, signalled."},
    400: {"description": "Not an order document: not well-formed XML, a DTD, wrong root."},
    409: {"description": "The order exists at this revision or higher, or has ended."},
    413: {"description": "Over the document size limit."},
    415: {"description": "Not application/xml or text/xml."},
    422: {"description": "An order that is not valid (e.g. an unknown product class)."},
}


@router.post(
    "/aia/ProcessSalesOrderFulfillment",
    status_code=status.HTTP_201_CREATED,
    responses=ANSWERS,
    response_model_exclude_none=True,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string"}} for t in sorted(XML_MEDIA_TYPES)},
        }
    },
)
async def process_sales_order_fulfillment(
    request: Request,
    response: Response,
    service: Service,
    _: Annotated[Role, Depends(require(Permission.ORDER))],
) -> OrderReceived:
    """A new order starts (201); a higher revision of a running order, or one with
    FulfillmentModeCode CANCEL, is signalled to it (202)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in XML_MEDIA_TYPES:
        raise TmfError(415, "Unsupported media type", "send the EBM as application/xml or text/xml")
    body = await request.body()
    order = await run_in_threadpool(service.parse_order, body)
    request.state.order_number = order.order_number
    # Named by its EBMID: the same document sent again is the same request, taken once.
    receipt = await service.receive(order, await run_in_threadpool(document_message_id, body))
    if receipt is None:
        return _received(order)
    response.status_code = status.HTTP_202_ACCEPTED
    return _received(order, receipt.request_id)


def _received(order: CustomerOrder, request_id: str | None = None) -> OrderReceived:
    return OrderReceived(
        order_number=order.order_number,
        revision=order.revision,
        workflow_id=ids.order_workflow_id(order.order_number),
        href=f"/api/v1/orders/{quote(order.order_number, safe='')}",
        request_id=request_id,
    )
