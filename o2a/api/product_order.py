"""TMF622 Product Ordering v5: ``productOrder`` and ``cancelProductOrder`` under API_ROOT.

The door parses JSON and answers; the mapping is o2a/tmf622.py, the use cases
o2a/service.py. A cancel task is no stored record: its id names the order and the cancel
request, and its state is read from what the order recorded for that request.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from o2a import tmf622
from o2a.api.auth import Permission, Role, require
from o2a.api.errors import TmfError
from o2a.api.operator import order_service
from o2a.errors import InputError, OrderConflictError, UnknownOrderError
from o2a.models import OrderState
from o2a.service import OrderService
from o2a.tmf622 import API_ROOT, CancelProductOrder, ProductOrder

router = APIRouter(prefix=API_ROOT, tags=["TMF622 Product Ordering"])

MAX_LIMIT = 1000

Reader = Annotated[Role, Depends(require(Permission.READ))]
Orderer = Annotated[Role, Depends(require(Permission.ORDER))]


def _body_of(model: type[BaseModel], path: str) -> dict[str, Any]:
    """OpenAPI for a body the route reads itself (to answer 400 and 415 its own way); the
    schema keeps its definitions, referred to by their place in the document."""
    pointer = "/".join(
        part.replace("~", "~0").replace("/", "~1")
        for part in ("#", "paths", API_ROOT + path, "post", "requestBody", "content")
    )
    template = pointer + "/application~1json/schema/$defs/{model}"
    schema = model.model_json_schema(by_alias=True, ref_template=template)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _json_object(request: Request) -> dict[str, Any]:
    """415 for another media type, 400 for a body that is not a JSON object."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json":
        raise TmfError(415, "Unsupported media type", "the body must be application/json")
    try:
        raw = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:
        raise TmfError(400, "Bad request", f"malformed JSON: {str(exc)[:200]}") from None
    if not isinstance(raw, dict):
        raise TmfError(
            400, "Bad request", f"the body must be a JSON object, not {type(raw).__name__}"
        )
    return raw


def _answer(model: BaseModel, status: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", exclude_none=True), status, headers)


@router.post(
    "/productOrder",
    status_code=201,
    response_model=ProductOrder,
    openapi_extra=_body_of(tmf622.ProductOrderCreate, "/productOrder"),
)
async def create_product_order(request: Request, _: Orderer) -> Response:
    """Start the order; its ``id`` is the first ``externalId`` (409 if that order exists)."""
    create = tmf622.read_product_order(await _json_object(request))
    service = order_service(request)
    order = service.validated(tmf622.to_customer_order(create, datetime.now(UTC)))
    request.state.order_number = order.order_number
    await service.submit(order)
    created = tmf622.acknowledged(order)
    return _answer(created, 201, Location=created.href)


@router.get("/productOrder", response_model=list[ProductOrder])
async def list_product_orders(
    request: Request,
    _: Reader,
    state: Annotated[str | None, Query(description="TMF states, comma-separated")] = None,
    external_id: Annotated[
        str | None, Query(alias="externalId", description="order numbers, comma-separated")
    ] = None,
    fields: Annotated[str | None, Query(description="e.g. state,productOrderItem.id")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> Response:
    """The newest orders first; ``X-Total-Count`` counts every match."""
    states = [s for name in _values(state) for s in _known_state(name)]
    numbers = _values(external_id)
    service = order_service(request)
    total = await service.count_orders(states, numbers)
    page = await service.list_orders(
        states=states, order_numbers=numbers, offset=offset, limit=limit
    )
    documents = [await _document(service, summary.order_number, fields) for summary in page]
    headers = {"X-Total-Count": str(total), "X-Result-Count": str(len(documents))}
    return JSONResponse(documents, headers=headers)


def _values(text: str | None) -> list[str]:
    return [v.strip() for v in (text or "").split(",") if v.strip()]


def _known_state(name: str) -> list[OrderState]:
    states = tmf622.order_states(name)
    if not states:
        known = ", ".join(sorted(set(tmf622.TMF_STATES.values())))
        raise TmfError(400, "Bad request", f"state {name!r} is not one of {known}")
    return states


@router.get("/productOrder/{order_id}", response_model=ProductOrder)
async def get_product_order(
    request: Request, order_id: str, _: Reader, fields: str | None = None
) -> Response:
    request.state.order_number = order_id
    return JSONResponse(await _document(order_service(request), order_id, fields))


async def _document(service: OrderService, order_number: str, fields: str | None) -> Any:
    status = await service.status(order_number)
    document = tmf622.product_order(status, await service.started(order_number)).model_dump(
        mode="json", exclude_none=True
    )
    return tmf622.select_fields(document, fields) if fields else document


@router.post(
    "/cancelProductOrder",
    status_code=201,
    response_model=CancelProductOrder,
    openapi_extra=_body_of(tmf622.CancelProductOrderCreate, "/cancelProductOrder"),
)
async def cancel_product_order(request: Request, _: Orderer) -> Response:
    """Signal the cancel; the task ends ``done`` once the order is cancelled, or
    ``terminatedWithError`` with the reason it was refused."""
    raw = await _json_object(request)
    try:
        create = tmf622.CancelProductOrderCreate.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InputError(f"cancelProductOrder {where}: {err['msg']}") from None
    order_number = create.product_order.id
    request.state.order_number = order_number
    request_id = uuid.uuid4().hex
    refused = None
    try:
        await order_service(request).cancel(
            order_number, create.cancellation_reason, None, request_id
        )
    except UnknownOrderError as exc:
        raise InputError(str(exc)) from None
    except OrderConflictError as exc:
        refused = str(exc)
    task = tmf622.cancel_task(
        order_number,
        request_id,
        None,
        reason=create.cancellation_reason,
        created=datetime.now(UTC),
        refused=refused,
    )
    return _answer(task, 201, Location=task.href)


@router.get("/cancelProductOrder/{task_id}", response_model=CancelProductOrder)
async def get_cancel_product_order(request: Request, task_id: str, _: Reader) -> Response:
    parsed = tmf622.parse_cancel_task_id(task_id)
    if parsed is None:
        raise TmfError(404, "Not found", f"no cancelProductOrder {task_id}")
    order_number, request_id = parsed
    request.state.order_number = order_number
    status = await order_service(request).status(order_number)
    return _answer(tmf622.cancel_task(order_number, request_id, status))
