"""Contract of CustomerOrderWorkflow (COM): what doors and the service may send and ask.

Revisions and cancels are signals (queued, taken one at a time, never dropped); a caller
that wants the outcome asks with the ``request_outcome`` update, which waits for it.
Operator actions are updates whose validators refuse, with the reason, what the order's
state does not allow, so a refusal needs no worker round trip and has no race.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field
from typing_extensions import TypeAliasType

from o2a.models import (
    ComponentState,
    CustomerOrder,
    FulfillmentStatus,
    Model,
    OperatorActionView,
    OrderPlan,
    OrderState,
    OrderStatus,
    RevisionView,
    SalesOrderLine,
)
from o2a.tracking import CarriedTracker

WORKFLOW_TYPE = "CustomerOrderWorkflow"

STATUS_QUERY = "status"
"""→ OrderStatus (docs/architecture.md §3 status document)."""
REVISION_BASIS_QUERY = "revision_basis"
"""→ RevisionBasis: what a revision would be planned against (``o2a revise --dry-run``)."""

REVISE_SIGNAL = "revise"
"""RevisionRequest: the whole order at a higher revision (CANCEL mode: a cancel)."""
CANCEL_SIGNAL = "cancel"
"""CancelRequest."""

REQUEST_OUTCOME_UPDATE = "request_outcome"
"""OutcomeRequest → RevisionView: waits until the revise or cancel is answered."""
RESOLVE_UPDATE = "resolve"
SUSPEND_UPDATE = "suspend"
RESUME_UPDATE = "resume"
ABORT_UPDATE = "abort"
"""OperatorRequest → OperatorActionView, or rejected with the reason by the validator."""

AWAIT_ATTENTION_UPDATE = "await_attention"
"""→ OrderStatus once the order needs someone (failed, suspended) or has ended."""

OPERATOR_UPDATES = (RESOLVE_UPDATE, SUSPEND_UPDATE, RESUME_UPDATE, ABORT_UPDATE)


class RevisionRequest(Model):
    order: CustomerOrder
    request_id: str
    """The caller's ID of this request; its outcome carries it."""


class CancelRequest(Model):
    """An explicit cancel (a revision with FulfillmentModeCode CANCEL arrives as a
    RevisionRequest and is turned into one by the workflow)."""

    request_id: str
    reason: str | None = None
    operator: str | None = None
    revision: int | None = None
    """The CANCEL-mode revision that asked for it, if one did: its outcome is numbered so."""


class OutcomeRequest(Model):
    request_id: str


class OperatorRequest(Model):
    """An operator action's details: who and why (recorded), and for resolve optionally
    the one failed component to retry."""

    operator: str | None = None
    reason: str | None = None
    component: str | None = None


class RevisionBasis(Model):
    """The order in force, its plan and each component's progress, as a revision would be
    planned against them now."""

    order: CustomerOrder
    plan: OrderPlan
    progress: dict[str, ComponentState]
    ponr_passed: list[str]
    state: OrderState


__all__ = [
    "ABORT_UPDATE",
    "AWAIT_ATTENTION_UPDATE",
    "CANCEL_SIGNAL",
    "OPERATOR_UPDATES",
    "REQUEST_OUTCOME_UPDATE",
    "RESOLVE_UPDATE",
    "RESUME_UPDATE",
    "REVISE_SIGNAL",
    "REVISION_BASIS_QUERY",
    "STATUS_QUERY",
    "SUSPEND_UPDATE",
    "WORKFLOW_TYPE",
    "CancelRequest",
    "OperatorActionView",
    "OperatorRequest",
    "OrderStatus",
    "OutcomeRequest",
    "RevisionBasis",
    "RevisionRequest",
    "RevisionView",
]


class CarriedOrder(Model):
    """What one run of an order hands the next when it continues as new: all the order
    knows and every number its message IDs count on, so the next run neither repeats a
    message nor forgets a request. Only carried while nothing is in flight. The next run's
    input, in place of the order."""

    submitted: CustomerOrder
    """The order as first submitted (its revisions are in the tracker)."""
    tracker: CarriedTracker
    state: OrderState
    suspended: bool
    received: list[str]
    """Request IDs of every revise and cancel received: a repeat is still known."""
    updates_taken: list[str]
    runs: dict[str, int]
    crm_updates: int
    told_state: OrderState | None
    published: tuple[OrderState, FulfillmentStatus] | None
    fallouts_reported: int
    fulfilled: dict[str, list[SalesOrderLine]]
    """Completed work a revision left standing, for its rerun."""
    runs_before: int
    """Runs of this order before the one it starts: the count of continue-as-new."""
    started: datetime | None = None
    """When the order's first run started, so its cycle time spans every run (None from
    runs that did not carry it)."""


OrderStart = TypeAliasType(
    "OrderStart", Annotated[CustomerOrder | CarriedOrder, Field(union_mode="left_to_right")]
)
"""The workflow's one parameter: the order, or what its previous run carried. Tried in
that order: a smart union would validate a 5,000-line order three times over."""
