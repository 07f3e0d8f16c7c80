"""The decomposition activity: reads the catalog so the plan lands in workflow history.

Replay then never depends on today's catalog, and a catalog change affects new orders only.
The plan also records how this worker reaches the fulfillment systems (inline or over the
bus, and the bus's step deadline): workflow code cannot read settings, and an order keeps
the route it was planned with on replay.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from o2a.catalog import Catalog, load_catalog
from o2a.decomposition import decompose
from o2a.errors import InputError
from o2a.models import CustomerOrder, FulfillmentRoute, OrderPlan

INVALID_ORDER = "InvalidOrder"


class DecompositionActivities:
    def __init__(self, catalog_path: Path | None, route: FulfillmentRoute | None = None) -> None:
        self._catalog_path = catalog_path
        self._route = route or FulfillmentRoute()

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self._catalog_path)

    @activity.defn(name="decompose_order")
    async def decompose_order(self, order: CustomerOrder) -> OrderPlan:
        try:
            plan = decompose(order, self.catalog)
        except InputError as exc:
            # A revision the catalog cannot fulfil is rejected, not retried.
            raise ApplicationError(str(exc), type=INVALID_ORDER, non_retryable=True) from exc
        plan.fulfillment = self._route
        return plan
