"""Every business key, workflow ID and message ID, defined once.

IDs are derived from workflow state only, so a replayed or retried step produces the same
ID and a delivery overwrites instead of duplicating.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def order_workflow_id(order_number: str) -> str:
    return f"order-{order_number}"


def provisioning_workflow_id(order_number: str, component_id: str) -> str:
    return f"order-{order_number}/{component_id}"


def _message_id(kind: str, order_number: str, *parts: object) -> str:
    return _UNSAFE.sub("_", ".".join([kind, order_number, *(str(p) for p in parts)]))


def _run_part(run: int) -> list[str]:
    """A component run again (after fallout, to undo or to redo) numbers its messages afresh."""
    return [f"n{run}"] if run > 1 else []


def provisioning_order_message_id(
    order_number: str, revision: int, component_id: str, run: int = 1
) -> str:
    return _message_id("PPO", order_number, f"r{revision}", component_id, *_run_part(run))


def fulfillment_update_message_id(
    order_number: str, revision: int, component_id: str, sequence: int, run: int = 1
) -> str:
    return _message_id(
        "PFOU", order_number, f"r{revision}", component_id, *_run_part(run), f"u{sequence:03d}"
    )


def fulfillment_request_id(
    order_number: str, revision: int, component_id: str, run: int, step: str
) -> str:
    """The correlation ID of one fulfillment call, which the system deduplicates on."""
    return _message_id("FR", order_number, f"r{revision}", component_id, *_run_part(run), step)


def sales_order_update_message_id(order_number: str, revision: int, sequence: int) -> str:
    return _message_id("USO", order_number, f"r{revision}", f"u{sequence:03d}")


def fallout_id(order_number: str, sequence: int) -> str:
    return f"{order_number}-F{sequence}"


def fault_message_id(fallout: str) -> str:
    """The incident ID already names the order."""
    return _message_id("FAULT", fallout)


def trouble_ticket_message_id(fallout: str) -> str:
    return _message_id("TT", fallout)


def jeopardy_message_id(
    order_number: str, revision: int, component_id: str, severity: str, run: int = 1
) -> str:
    return _message_id(
        "JEOP", order_number, f"r{revision}", component_id, *_run_part(run), severity
    )


def web_ui_link(ui_url: str, namespace: str, workflow_id: str) -> str:
    return f"{ui_url}/namespaces/{namespace}/workflows/{workflow_id.replace('/', '%2F')}"
