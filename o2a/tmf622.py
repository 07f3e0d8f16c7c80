"""TM Forum TMF622 Product Ordering v5 terms for o2a's orders (DESIGN.md §3 "HTTP API").

The state mapping is shared by the productOrder resource and the events sent to hub
listeners, so both always say the same thing of an order. The rest is the pure mapping
between TMF622 documents and o2a's models, so the HTTP door (o2a/api/product_order.py)
only parses and answers.

A productOrder create body → CustomerOrder:

| TMF622 | CustomerOrder |
|---|---|
| first ``externalId[].id``, else ``PO-`` + 12 hex digits | ``order_number`` (= ``id``) |
| ``priority`` "0".."9" | ``priority`` (default 5) |
| ``requestedCompletionDate`` | ``requested_delivery_date`` |
| ``relatedParty[]`` of role customer (``partyOrPartyRole.id``, v4 ``id``) | ``customer_account`` |
| when the door received it | ``order_date`` (the ``creationDate``) |
| ``productOrderItem[]`` | ``lines``, in order |
| item ``id`` | line ``id`` |
| item ``action`` add / modify / delete / noChange | ADD / UPDATE / DELETE / ``-`` |
| characteristic ``productClass``, else ``productOffering.name`` | ``item.product_class`` |
| characteristic ``typeCode`` (OFFER, BUNDLE, SERVICE BUNDLE, PRODUCT) | ``item.type_code`` |
| ``product.name``, else ``productOffering.name`` | ``item.name`` |
| the other ``product.productCharacteristic[]`` ``{name, value}`` | ``item.specifications`` |
| ``product.place[]`` of role serviceAddress (or the first) | ``service_address`` |
| ``productOrderItemRelationship[]`` ``{id: P, relationshipType: isContainedIn}`` | parent P |
| (the topmost ``isContainedIn`` ancestor) | ``root_id`` |

An item is structural (an offer or bundle, no provisioning work, DESIGN.md §3 "The shipped
catalog") by its ``typeCode`` characteristic, as an AIA line is by ItemReference/TypeCode;
its ``productOffering.name`` is then its name, never a product class. A revision has no
TMF622 form: revisions come through the AIA endpoint; a TMF client cancels with
cancelProductOrder.

OrderStatus → productOrder: ``state`` by ``TMF_STATES``; each line a productOrderItem whose
``action`` is the line's (SUSPEND, RESUME → modify; MOVE-ADD → add; MOVE-DELETE → delete) and
whose ``state`` is:

| AIA line status | productOrderItem state |
|---|---|
| OPEN, PENDING | acknowledged |
| IN PROGRESS | inProgress |
| COMPLETE | completed |
| FAILED | held (fallout: an operator resolves it, as the order is held) |
| CANCELLED | cancelled |
| ABORTED | failed |

Milestones are ``productOrderMilestone`` (one per milestone name, ``status`` reached, with
the items that reached it), jeopardies ``productOrderJeopardyAlert`` (the component's items),
open fallouts ``productOrderErrorMessage``.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from o2a import ids
from o2a.errors import InputError
from o2a.models import (
    Address,
    CustomerOrder,
    FulfillmentStatus,
    ItemReference,
    LineView,
    OrderDateTime,
    OrderState,
    OrderStatus,
    RevisionView,
    SalesOrderLine,
    ServiceActionCode,
    Specification,
)

API_ROOT = "/tmf-api/productOrderingManagement/v5"

TMF_STATES: dict[OrderState, str] = {
    OrderState.NOT_STARTED: "acknowledged",
    OrderState.IN_PROGRESS: "inProgress",
    OrderState.AMENDING: "inProgress",
    OrderState.WAITING: "pending",
    OrderState.SUSPENDED: "held",
    OrderState.FAILED: "held",
    OrderState.CANCELING: "pendingCancellation",
    OrderState.CANCELLED: "cancelled",
    OrderState.COMPLETED: "completed",
    OrderState.ABORTED: "failed",
}


def tmf_state(state: OrderState) -> str:
    return TMF_STATES[state]


ONLY_THE_ORDER_SAYS = frozenset({OrderState.WAITING, OrderState.SUSPENDED, OrderState.CANCELING})
"""States an order's status does not show (its lines are pending or in progress): an event
takes them from the order's own state."""


def event_state(status: FulfillmentStatus, state: OrderState | None) -> str:
    """The TMF state an event of a CRM update carries: the order's own state where only it
    says it, else the state its status means."""
    return tmf_state(state) if state in ONLY_THE_ORDER_SAYS else ITEM_STATES[status]


def order_states(tmf: str) -> list[OrderState]:
    """The o2a states a TMF state filter means (inProgress is in_progress or amending)."""
    return [state for state, name in TMF_STATES.items() if name == tmf]


ACTIONS: dict[str, ServiceActionCode] = {
    "add": ServiceActionCode.ADD,
    "modify": ServiceActionCode.UPDATE,
    "delete": ServiceActionCode.DELETE,
    "noChange": ServiceActionCode.NO_CHANGE,
}
TMF_ACTIONS: dict[ServiceActionCode, str] = {
    **{code: action for action, code in ACTIONS.items()},
    ServiceActionCode.SUSPEND: "modify",
    ServiceActionCode.RESUME: "modify",
    ServiceActionCode.MOVE_ADD: "add",
    ServiceActionCode.MOVE_DELETE: "delete",
}
ITEM_STATES: dict[FulfillmentStatus, str] = {
    FulfillmentStatus.OPEN: "acknowledged",
    FulfillmentStatus.PENDING: "acknowledged",
    FulfillmentStatus.IN_PROGRESS: "inProgress",
    FulfillmentStatus.COMPLETE: "completed",
    FulfillmentStatus.FAILED: "held",
    FulfillmentStatus.CANCELLED: "cancelled",
    FulfillmentStatus.ABORTED: "failed",
}
PRODUCT_CLASS = "productClass"
TYPE_CODE = "typeCode"
CONTAINED_IN = "isContainedIn"
CUSTOMER_ROLE = "customer"
SERVICE_ADDRESS_ROLE = "serviceAddress"
FINAL_STATES = frozenset({OrderState.COMPLETED, OrderState.CANCELLED, OrderState.ABORTED})


class TmfModel(BaseModel):
    """camelCase on the wire; unknown TMF attributes (notes, descriptions, ...) are ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, extra="ignore"
    )


# --- the create body --------------------------------------------------------------------------


class ExternalIdentifier(TmfModel):
    id: str
    owner: str | None = None
    external_identifier_type: str | None = None


class Characteristic(TmfModel):
    name: str
    value: str | int | float | bool | None = None
    value_type: str | None = None


class ProductOfferingRef(TmfModel):
    id: str | None = None
    name: str | None = None


class GeographicAddress(TmfModel):
    street_nr: str | None = None
    street_name: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None


class RelatedPlace(TmfModel):
    role: str | None = None
    place: GeographicAddress


class ProductValue(TmfModel):
    name: str | None = None
    product_characteristic: list[Characteristic] = Field(default_factory=list)
    place: list[RelatedPlace] = Field(default_factory=list)


class ItemRelationship(TmfModel):
    id: str
    relationship_type: str


class ProductOrderItemCreate(TmfModel):
    id: str = Field(min_length=1)
    action: Literal["add", "modify", "delete", "noChange"]
    quantity: int = 1
    product_offering: ProductOfferingRef | None = None
    product: ProductValue = Field(default_factory=ProductValue)
    product_order_item_relationship: list[ItemRelationship] = Field(default_factory=list)


class PartyRef(TmfModel):
    id: str | None = None
    name: str | None = None


class RelatedParty(TmfModel):
    role: str | None = None
    party_or_party_role: PartyRef | None = None
    id: str | None = None
    """TMF622 v4 put the party's id here."""


class ProductOrderCreate(TmfModel):
    """The body of ``POST /productOrder``."""

    external_id: list[ExternalIdentifier] = Field(default_factory=list)
    priority: str | None = None
    requested_completion_date: OrderDateTime | None = None
    related_party: list[RelatedParty] = Field(default_factory=list)
    product_order_item: list[ProductOrderItemCreate] = Field(min_length=1)


def read_product_order(raw: dict[str, Any]) -> ProductOrderCreate:
    """A decoded JSON object as a create body; InputError of one line naming the item."""
    try:
        return ProductOrderCreate.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"productOrder {_where(raw, err['loc'])}: {err['msg']}") from None


def _where(raw: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    """``productOrderItem 1.2: action`` rather than ``productOrderItem.3.action``."""
    items = raw.get("productOrderItem")
    if len(loc) >= 2 and loc[0] == "productOrderItem" and isinstance(loc[1], int):
        item = items[loc[1]] if isinstance(items, list) else None
        named = item.get("id") if isinstance(item, dict) else None
        rest = ".".join(str(p) for p in loc[2:]) or "item"
        return f"item {named if isinstance(named, str) else f'#{loc[1] + 1}'}: {rest}"
    return ".".join(str(p) for p in loc) or "body"


def new_order_number() -> str:
    return f"PO-{uuid.uuid4().hex[:12].upper()}"


def to_customer_order(create: ProductOrderCreate, created: datetime) -> CustomerOrder:
    """The order o2a runs for a create body; InputError naming the item for what does not fit."""
    order_number = create.external_id[0].id if create.external_id else new_order_number()
    parents = {item.id: _parent(item) for item in create.product_order_item}
    try:
        return CustomerOrder(
            order_number=order_number,
            order_date=created,
            requested_delivery_date=create.requested_completion_date,
            priority=_priority(create.priority),
            customer_account=_customer(create.related_party),
            lines=[_line(item, parents) for item in create.product_order_item],
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InputError(f"productOrder {order_number}: {where}: {err['msg']}") from None


def _priority(priority: str | None) -> int:
    if priority is None:
        return 5
    if priority not in {str(n) for n in range(10)}:
        raise InputError(f"priority {priority!r}: must be one of 0 to 9 (9 highest)")
    return int(priority)


def _customer(parties: list[RelatedParty]) -> str | None:
    for party in parties:
        if (party.role or "").lower() == CUSTOMER_ROLE:
            return party.party_or_party_role.id if party.party_or_party_role else party.id
    return None


def _parent(item: ProductOrderItemCreate) -> str | None:
    containers = [
        r.id for r in item.product_order_item_relationship if r.relationship_type == CONTAINED_IN
    ]
    if len(containers) > 1:
        raise InputError(f"productOrderItem {item.id}: contained in {len(containers)} items")
    return containers[0] if containers else None


def _root(item_id: str, parents: dict[str, str | None]) -> str | None:
    """The topmost ancestor; a cycle or an unknown parent is left to order validation."""
    seen = {item_id}
    current = parents.get(item_id)
    root = None
    while current is not None and current not in seen:
        seen.add(current)
        root = current
        current = parents.get(current)
    return root


def _line(item: ProductOrderItemCreate, parents: dict[str, str | None]) -> SalesOrderLine:
    characteristics = {c.name: _text(c.value) for c in item.product.product_characteristic}
    type_code = characteristics.get(TYPE_CODE, "").upper()
    offering = item.product_offering.name if item.product_offering else None
    structural = type_code in {"OFFER", "BUNDLE", "SERVICE BUNDLE"}
    return SalesOrderLine(
        id=item.id,
        parent_id=parents[item.id],
        root_id=_root(item.id, parents),
        action=ACTIONS[item.action],
        service_address=_address(item.product.place),
        item=ItemReference(
            name=item.product.name or offering or "",
            type_code=type_code,
            product_class=characteristics.get(PRODUCT_CLASS) or (None if structural else offering),
            specifications=[
                Specification(name=c.name, value=_text(c.value))
                for c in item.product.product_characteristic
                if c.name not in (PRODUCT_CLASS, TYPE_CODE)
            ],
        ),
    )


def _text(value: str | int | float | bool | None) -> str:
    """Specifications are text: a typed characteristic value keeps its JSON spelling."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _address(places: list[RelatedPlace]) -> Address | None:
    if not places:
        return None
    chosen = next((p for p in places if p.role == SERVICE_ADDRESS_ROLE), places[0]).place
    street = " ".join(p for p in (chosen.street_name, chosen.street_nr) if p)
    return Address(
        line_one=street or None,
        city=chosen.city,
        postal_code=chosen.postcode,
        country=chosen.country,
    )


# --- the representation -----------------------------------------------------------------------


class ItemRef(TmfModel):
    product_order_item_id: str


class ProductOrderItem(TmfModel):
    id: str
    action: str
    state: str
    quantity: int = 1
    type: str = Field("ProductOrderItem", alias="@type")


class Milestone(TmfModel):
    id: str
    name: str
    status: str = "reached"
    product_order_item: list[ItemRef]
    type: str = Field("ProductOrderMilestone", alias="@type")


class JeopardyAlert(TmfModel):
    id: str
    name: str
    jeopardy_type: str
    """Low, Medium, High or Critical."""
    alert_date: datetime
    message: str
    product_order_item: list[ItemRef]
    type: str = Field("ProductOrderJeopardyAlert", alias="@type")


class ErrorMessage(TmfModel):
    code: str
    reason: str
    message: str
    status: str
    timestamp: datetime | None = None
    product_order_item: list[ItemRef] = Field(default_factory=list)
    type: str = Field("ProductOrderErrorMessage", alias="@type")


class CustomerRef(TmfModel):
    role: str = CUSTOMER_ROLE
    party_or_party_role: PartyRef


class ProductOrder(TmfModel):
    """A productOrder as o2a answers it."""

    id: str
    href: str
    type: str = Field("ProductOrder", alias="@type")
    external_id: list[ExternalIdentifier]
    state: str
    creation_date: datetime | None = None
    completion_date: datetime | None = None
    related_party: list[CustomerRef] = Field(default_factory=list)
    product_order_item: list[ProductOrderItem]
    product_order_milestone: list[Milestone] = Field(default_factory=list)
    product_order_jeopardy_alert: list[JeopardyAlert] = Field(default_factory=list)
    product_order_error_message: list[ErrorMessage] = Field(default_factory=list)


def order_href(order_number: str) -> str:
    return f"{API_ROOT}/productOrder/{_quote(order_number)}"


def _quote(text: str) -> str:
    return quote(text, safe="")


def _header(order_number: str, customer: str | None) -> dict[str, Any]:
    return {
        "id": order_number,
        "href": order_href(order_number),
        "external_id": [ExternalIdentifier(id=order_number)],
        "related_party": [CustomerRef(party_or_party_role=PartyRef(id=customer))]
        if customer
        else [],
    }


def acknowledged(order: CustomerOrder) -> ProductOrder:
    """The answer to a create: the order as received, before its workflow has said anything."""
    return ProductOrder(
        **_header(order.order_number, order.customer_account),
        state=tmf_state(OrderState.NOT_STARTED),
        creation_date=order.order_date,
        product_order_item=[
            ProductOrderItem(
                id=line.id,
                action=TMF_ACTIONS[line.action],
                state=ITEM_STATES[FulfillmentStatus.OPEN],
            )
            for line in order.lines
        ],
    )


def product_order(status: OrderStatus, created: datetime | None) -> ProductOrder:
    """The live representation of an order from its status."""
    component_lines = {c.id: c.lines for c in status.components}
    completed = [c.completed_at for c in status.components if c.completed_at]
    return ProductOrder(
        **_header(status.order_number, status.customer_account),
        state=tmf_state(status.state),
        creation_date=created,
        completion_date=max(completed)
        if status.state is OrderState.COMPLETED and completed
        else None,
        product_order_item=[_item(line) for line in status.lines],
        product_order_milestone=_milestones(status.lines),
        product_order_jeopardy_alert=[
            JeopardyAlert(
                id=f"{j.component}.{j.severity}",
                name=f"{j.component} runs late",
                jeopardy_type=j.severity,
                alert_date=j.raised_at,
                message=f"expected by {j.expected_by.isoformat()}",
                product_order_item=_refs(component_lines.get(j.component, [])),
            )
            for j in status.jeopardies
        ],
        product_order_error_message=[
            ErrorMessage(
                code=f.code,
                reason=f"fallout {f.id}" + (f" at {f.step} of {f.component}" if f.step else ""),
                message=f.message,
                status=f.state,
                timestamp=f.raised_at,
                product_order_item=_refs(f.lines),
            )
            for f in status.fallouts
            if f.state == "open"
        ],
    )


def _item(line: LineView) -> ProductOrderItem:
    return ProductOrderItem(
        id=line.id, action=TMF_ACTIONS[line.action], state=ITEM_STATES[line.status]
    )


def _milestones(lines: list[LineView]) -> list[Milestone]:
    """One per milestone, in the order lines first reached them, with every item that did."""
    reached: dict[str, list[str]] = {}
    for line in lines:
        for name in line.milestones:
            reached.setdefault(name, []).append(line.id)
    return [
        Milestone(id=name, name=name, product_order_item=_refs(items))
        for name, items in reached.items()
    ]


def _refs(line_ids: list[str]) -> list[ItemRef]:
    return [ItemRef(product_order_item_id=line_id) for line_id in line_ids]


# --- attribute selection ----------------------------------------------------------------------

ALWAYS_SELECTED = ("id", "href", "@type")


def select_fields(document: dict[str, Any], fields: str) -> dict[str, Any]:
    """TMF630 attribute selection: ``fields=state,productOrderItem.id`` keeps ``state`` and
    the ``id`` of each item, besides ``id``, ``href`` and ``@type``."""
    tree: dict[str, Any] = {}
    for path in filter(None, (f.strip() for f in fields.split(","))):
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    selected = _select(document, tree)
    return {**{k: document[k] for k in ALWAYS_SELECTED if k in document}, **selected}


def _select(value: Any, tree: dict[str, Any]) -> Any:
    if not tree:
        return value
    if isinstance(value, list):
        return [_select(v, tree) for v in value]
    if isinstance(value, dict):
        return {k: _select(value[k], sub) for k, sub in tree.items() if k in value}
    return value


# --- cancelProductOrder -----------------------------------------------------------------------


class ProductOrderRef(TmfModel):
    id: str
    href: str
    referred_type: str = Field("ProductOrder", alias="@referredType")


class OrderId(TmfModel):
    id: str = Field(min_length=1)


class CancelProductOrderCreate(TmfModel):
    """The body of ``POST /cancelProductOrder``."""

    product_order: OrderId
    cancellation_reason: str | None = None


TaskState = Literal["acknowledged", "inProgress", "done", "terminatedWithError"]


class CancelProductOrder(TmfModel):
    """A cancel task. Its ``id`` names the order and the cancel request, so its state is read
    back from the order's recorded outcomes with no store of its own."""

    id: str
    href: str
    type: str = Field("CancelProductOrder", alias="@type")
    state: TaskState
    product_order: ProductOrderRef
    cancellation_reason: str | None = None
    creation_date: datetime | None = None
    error_message: list[ErrorMessage] = Field(default_factory=list)


def cancel_task_id(order_number: str, request_id: str) -> str:
    """Injective: an escaped order number has no ``.`` (o2a.ids.escape)."""
    return f"{ids.escape(order_number)}.{request_id}"


def parse_cancel_task_id(task_id: str) -> tuple[str, str] | None:
    """(order number, request ID), or None for an ID no cancel task has."""
    escaped, dot, request_id = task_id.partition(".")
    order_number = _unescape(escaped)
    if not dot or not request_id or order_number is None or ids.escape(order_number) != escaped:
        return None
    return order_number, request_id


def _unescape(escaped: str) -> str | None:
    data = bytearray()
    i = 0
    while i < len(escaped):
        if escaped[i] == ids.ESCAPE:
            try:
                data.append(int(escaped[i + 1 : i + 3], 16))
            except ValueError:
                return None
            i += 3
        else:
            data += escaped[i].encode()
            i += 1
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None


def cancel_task(
    order_number: str,
    request_id: str,
    status: OrderStatus | None,
    reason: str | None = None,
    created: datetime | None = None,
    refused: str | None = None,
) -> CancelProductOrder:
    """The task's state: ``terminatedWithError`` if the order ``refused`` it at once, or
    rejected it, or ended without answering it; ``done`` once the order recorded it
    cancelled; ``inProgress`` until then (``acknowledged`` when just sent)."""
    outcome = next(
        (r for r in (status.revisions if status else []) if r.request_id == request_id), None
    )
    if refused is None and outcome is None and status is not None and status.state in FINAL_STATES:
        refused = (
            f"order {order_number} is {status.state.value}: only a running order can be cancelled"
        )
    return _cancel_task(
        order_number,
        request_id,
        outcome,
        "acknowledged" if status is None else "inProgress",
        reason,
        created,
        refused,
    )


def answered_cancel_task(order_number: str, outcome: RevisionView) -> CancelProductOrder:
    """The task once the order has recorded the cancel's ``outcome``: as GET shows it from
    then on (``done`` or ``terminatedWithError``)."""
    if outcome.request_id is None:
        raise ValueError(f"order {order_number}: an outcome without a request ID has no task")
    return _cancel_task(order_number, outcome.request_id, outcome, "inProgress")


def _cancel_task(
    order_number: str,
    request_id: str,
    outcome: RevisionView | None,
    unanswered: TaskState,
    reason: str | None = None,
    created: datetime | None = None,
    refused: str | None = None,
) -> CancelProductOrder:
    task_id = cancel_task_id(order_number, request_id)
    if refused is None and outcome is not None and outcome.outcome != "cancelled":
        refused = outcome.reason or f"order {order_number} refused the cancel"
    state: TaskState
    if refused is not None:
        state = "terminatedWithError"
    elif outcome is not None:
        state, reason = "done", outcome.reason
    else:
        state = unanswered
    return CancelProductOrder(
        id=task_id,
        href=f"{API_ROOT}/cancelProductOrder/{_quote(task_id)}",
        state=state,
        product_order=ProductOrderRef(id=order_number, href=order_href(order_number)),
        cancellation_reason=reason,
        creation_date=created,
        error_message=[]
        if refused is None
        else [
            ErrorMessage(
                code="cancelRefused", reason="Cancel refused", message=refused, status="409"
            )
        ],
    )
