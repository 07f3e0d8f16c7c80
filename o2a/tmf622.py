"""TM Forum TMF622 Product Ordering v5 terms for o2a's orders (DESIGN.md §3 "HTTP API").

The state mapping is shared by the productOrder resource and the events sent to hub
listeners, so both always say the same thing of an order.
"""

from __future__ import annotations

from o2a.models import OrderState

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


def order_states(tmf: str) -> list[OrderState]:
    """The o2a states a TMF state filter means (inProgress is in_progress or amending)."""
    return [state for state, name in TMF_STATES.items() if name == tmf]
