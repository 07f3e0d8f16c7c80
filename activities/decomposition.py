"""The decomposition activity: reads the catalog so the plan lands in workflow history.

Replay then never depends on today's catalog, and a catalog change affects new orders only.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from temporalio import activity

from o2a.catalog import Catalog, load_catalog
from o2a.decomposition import decompose
from o2a.models import CustomerOrder, OrderPlan


class DecompositionActivities:
    def __init__(self, catalog_path: Path | None) -> None:
        self._catalog_path = catalog_path

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self._catalog_path)

    @activity.defn(name="decompose_order")
    async def decompose_order(self, order: CustomerOrder) -> OrderPlan:
        return decompose(order, self.catalog)
