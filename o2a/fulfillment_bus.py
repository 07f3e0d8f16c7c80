"""The fulfillment-system protocol on the bus: what a request and a response look like.

A request is the JSON of a FulfillmentRequest on ``<prefix>.fulfillment.<Target>.request``;
the system answers on ``<prefix>.fulfillment.<Target>.response``. Like JMSCorrelationID and
WS-Addressing ReplyTo, two headers travel with the request and the system echoes both back:
the correlation ID (the step's deterministic request ID, which a real system deduplicates
on) and an opaque reply token (which o2a uses to find the waiting step). ``Nats-Msg-Id``
makes a republished request or response a duplicate the broker drops.

The worker's side (o2a/adapters/bus_fulfillment.py, workers/fulfillment_responses.py) and
the systems' side (o2a/bus_responder.py) both speak it through this module only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import Field, ValidationError

from o2a.bus import MSG_ID, Subjects
from o2a.models import FaultDetail, LineUpdate, Model
from o2a.ports import FulfillmentRequest

CORRELATION_ID = "O2a-Correlation-Id"
REPLY_TOKEN = "O2a-Reply-Token"
"""Base64 of the token the response must carry back; opaque to the system."""


class Outcome(StrEnum):
    COMPLETED = "completed"
    """Done: ``updates`` holds the data each line got (service IDs, numbers)."""
    FAULT = "fault"
    """Refused for a business reason: ``fault`` says why; the component falls out."""
    UNAVAILABLE = "unavailable"
    """Refused for a passing cause (``reason``): the step is retried and asks again."""


class FulfillmentResponse(Model):
    request_id: str
    outcome: Outcome
    updates: list[LineUpdate] = Field(default_factory=list)
    fault: FaultDetail | None = None
    reason: str = ""


class ProtocolError(ValueError):
    """A message that does not follow this protocol: nothing can be done with it."""


@dataclass(frozen=True)
class BusMessage:
    subject: str
    body: bytes
    headers: dict[str, str]


def request_message(
    subjects: Subjects, request: FulfillmentRequest, reply_token: bytes
) -> BusMessage:
    """One per attempt: a retried publish of the same attempt is stored once."""
    return BusMessage(
        subject=subjects.fulfillment_request(request.target_system),
        body=request.model_dump_json().encode(),
        headers={
            MSG_ID: f"{request.request_id}.{request.attempt}",
            CORRELATION_ID: request.request_id,
            REPLY_TOKEN: base64.b64encode(reply_token).decode(),
        },
    )


def read_request(body: bytes) -> FulfillmentRequest:
    try:
        return FulfillmentRequest.model_validate_json(body)
    except ValidationError as exc:
        raise ProtocolError(f"not a fulfillment request: {_first_error(exc)}") from None


def reply_headers(request_headers: Mapping[str, str] | None) -> dict[str, str]:
    """What the response to a request message carries back: its correlation ID and reply
    token, and a message ID that follows from the request's, so answering twice stores
    one response."""
    headers = request_headers or {}
    try:
        echoed = {name: headers[name] for name in (MSG_ID, CORRELATION_ID, REPLY_TOKEN)}
    except KeyError as missing:
        raise ProtocolError(f"the request has no {missing.args[0]} header") from None
    return {**echoed, MSG_ID: f"{echoed[MSG_ID]}.response"}


def response_message(
    subjects: Subjects,
    request: FulfillmentRequest,
    headers: dict[str, str],
    response: FulfillmentResponse,
) -> BusMessage:
    """``headers``: the request's ``reply_headers``."""
    return BusMessage(
        subject=subjects.fulfillment_response(request.target_system),
        body=response.model_dump_json().encode(),
        headers=headers,
    )


def read_response(body: bytes, headers: dict[str, str] | None) -> tuple[FulfillmentResponse, bytes]:
    """The response and the reply token it carries back."""
    try:
        response = FulfillmentResponse.model_validate_json(body)
    except ValidationError as exc:
        raise ProtocolError(f"not a fulfillment response: {_first_error(exc)}") from None
    if response.outcome is Outcome.FAULT and response.fault is None:
        raise ProtocolError(f"fault response to {response.request_id} says no fault")
    token = (headers or {}).get(REPLY_TOKEN)
    if not token:
        raise ProtocolError(f"response to {response.request_id} has no {REPLY_TOKEN} header")
    try:
        return response, base64.b64decode(token, validate=True)
    except binascii.Error:
        raise ProtocolError(f"response to {response.request_id}: malformed {REPLY_TOKEN}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
