"""Every business key, workflow ID and message ID, defined once.

IDs are derived from workflow state only, so a replayed or retried step produces the same
ID and a delivery overwrites instead of duplicating. The mapping from order numbers, line
and component IDs to workflow IDs, message IDs and file names is injective: two orders never
share an ID, and no order's workflow ID equals a child's (docs/architecture.md §2).
"""

from __future__ import annotations

import hashlib
import re
import string
from urllib.parse import quote

from o2a.errors import InputError

_SAFE = frozenset(string.ascii_letters + string.digits + "_-")
_COMPONENT_SAFE = frozenset(string.ascii_letters + string.digits + ".-")
ESCAPE = "~"

MAX_ORDER_NUMBER = 80
"""Bytes an order number may take once escaped (``escape``)."""
MAX_LINE_ID = 64
"""Bytes a line ID may take once escaped inside a component ID (``escape_component``)."""
MAX_FILE_NAME = 255
"""Bytes of a file name (ext4 and most others): the longest message ID plus ``.xml`` must
fit. The limits above leave the rest of it (FR, JEOP, PFOU of a run again) 56 bytes of the
catalog's ``function.target``, 10 digits of revision, 6 of run and 13 for the last part (a
step, a severity, ``uNNN``); tests/test_ids.py proves the sum fits. Workflow IDs are far
within Temporal's 1000."""


def escape(text: str) -> str:
    """Injective and safe in a file name, a workflow ID and a NATS Msg-Id: ``[A-Za-z0-9_-]``
    stay (so recorded order numbers keep their IDs); every other character, ``~`` and ``.``
    included, becomes ``~XX`` per UTF-8 byte. The result has no ``.`` and no ``/``, which
    separate the parts of the IDs below."""
    return "".join(
        c if c in _SAFE else "".join(f"{ESCAPE}{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        for c in text
    )


def unescape(text: str) -> str:
    """The inverse of ``escape``: an order number back from its workflow ID."""
    return re.sub(
        f"(?:{re.escape(ESCAPE)}[0-9A-F]{{2}})+",
        lambda m: bytes.fromhex(m.group().replace(ESCAPE, "")).decode("utf-8", "surrogatepass"),
        text,
    )


def escape_component(text: str) -> str:
    """The older escape of component IDs, kept because recorded histories hold child IDs
    made with it: ``[A-Za-z0-9.-]`` stay, a BMP character becomes ``_XXXX`` (``_`` included,
    so ``_`` is always followed by a hex digit), one beyond U+FFFF ``__XXXXXX``."""
    return "".join(
        c if c in _COMPONENT_SAFE else f"_{ord(c):04X}" if ord(c) <= 0xFFFF else f"__{ord(c):06X}"
        for c in text
    )


def check_business_keys(order_number: str, line_ids: list[str]) -> None:
    """Refuse keys no ID can be derived from: empty, non-printable (a newline would split a
    command's output) or so long that a message's file name would not fit."""
    _check_key("order number", order_number, len(escape(order_number)), MAX_ORDER_NUMBER)
    for line_id in line_ids:
        _check_key("line ID", line_id, len(escape_component(line_id)), MAX_LINE_ID)


def _check_key(what: str, value: str, escaped: int, limit: int) -> None:
    if not value:
        raise InputError(f"{what} is empty")
    shown = repr(value) if len(value) <= 40 else f"{value[:40]!r}..."
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        raise InputError(f"{what} {shown}: non-printable character {bad!r}")
    if escaped > limit:
        raise InputError(
            f"{what} {shown}: too long, {escaped} bytes once escaped for IDs (at most {limit})"
        )


def order_workflow_id(order_number: str) -> str:
    return f"order-{escape(order_number)}"


def provisioning_workflow_id(order_number: str, component_id: str) -> str:
    """A child's ID: the ``/`` cannot occur in an escaped order number, so it is no order's."""
    return f"{order_workflow_id(order_number)}/{component_id}"


def order_of_workflow(workflow_id: str) -> tuple[str, str | None] | None:
    """(order number, component ID or None) of an order's or a child's workflow ID; None
    for any other workflow (the event hub, a listener's deliveries)."""
    order, slash, component = workflow_id.partition("/")
    if not order.startswith("order-"):
        return None
    return unescape(order.removeprefix("order-")), component if slash else None


def _message_id(kind: str, order_number: str, revision: int, run: int, *parts: object) -> str:
    """``kind.order.rN[-nR].parts``: the parts before the last have no ``.`` of their own,
    so a component ID (dots and all) between them and a dotless last part is unambiguous.
    A component run again (after fallout, to undo or to redo) numbers its messages afresh."""
    attempt = f"r{revision}" + (f"-n{run}" if run > 1 else "")
    return ".".join([kind, escape(order_number), attempt, *(str(p) for p in parts)])


def provisioning_order_message_id(
    order_number: str, revision: int, component_id: str, run: int = 1
) -> str:
    return _message_id("PPO", order_number, revision, run, component_id)


def fulfillment_update_message_id(
    order_number: str, revision: int, component_id: str, sequence: int, run: int = 1
) -> str:
    return _message_id("PFOU", order_number, revision, run, component_id, f"u{sequence:03d}")


def fulfillment_request_id(
    order_number: str, revision: int, component_id: str, run: int, step: str
) -> str:
    """The correlation ID of one fulfillment call, which the system deduplicates on."""
    return _message_id("FR", order_number, revision, run, component_id, step)


def sales_order_update_message_id(order_number: str, revision: int, sequence: int) -> str:
    return _message_id("USO", order_number, revision, 1, f"u{sequence:03d}")


def fallout_id(order_number: str, sequence: int) -> str:
    """Shown to people as it is; injective because the sequence is all digits."""
    return f"{order_number}-F{sequence}"


def fault_message_id(fallout: str) -> str:
    """The incident ID already names the order."""
    return f"FAULT.{escape(fallout)}"


def trouble_ticket_message_id(fallout: str) -> str:
    return f"TT.{escape(fallout)}"


def jeopardy_message_id(
    order_number: str, revision: int, component_id: str, severity: str, run: int = 1
) -> str:
    return _message_id("JEOP", order_number, revision, run, component_id, severity)


def dead_letter_message_id(order_number: str | None, sequence: int, document: bytes) -> str:
    """The dead letter of an inbound message: the same for every redelivery of that stored
    message (its stream sequence and content), so it is dead-lettered once. An order number
    that could not be read is ``~``, which no escaped order number is."""
    digest = hashlib.sha256(document).hexdigest()[:16]
    order = ESCAPE if order_number is None else escape(order_number)
    return f"DL.{order}.s{sequence}.{digest}"


def names_order(message_id: str, order_number: str) -> bool:
    """Whether one of o2a's message IDs is about that order: ``KIND.<order>.…``, or for a
    fault and a trouble ticket ``KIND.<order>-F<n>`` (the incident ID)."""
    parts = message_id.split(".")
    if len(parts) < 2:
        return False
    order, incident = escape(order_number), parts[1]
    return incident == order or re.fullmatch(re.escape(order) + r"-F[0-9]+", incident) is not None


def web_ui_link(ui_url: str, namespace: str, workflow_id: str) -> str:
    return f"{ui_url}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}"
