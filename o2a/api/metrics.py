"""``GET /metrics`` of the API: its requests, and the state across orders, for Prometheus.

Requests are counted by route template (``/tmf-api/.../productOrder/{id}``, never a raw
path, so no order number becomes a label value) and status, with their durations. Gauges
that are state across every order are read from Temporal visibility when scraped, not
counted here: open orders by state (a visibility count per state, as the console's
dashboard counts them) and open fallout by fault code and target system (from the
statuses of the newest ``FALLOUT_SAMPLE`` failed orders, as the console's fallout page
reads them). Events that happen once (orders started, fallout raised, ...) come from the
workflows, on the worker's endpoint (o2a/metrics.py).

Open like ``/healthz``: it holds counts, route templates, states and fault codes, no
customer data and no order numbers, and Prometheus scrapes without a key; keep the port
off the internet as every metrics port.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import Scope
from temporalio.service import RPCError

from o2a.client import ConnectionFailed
from o2a.console.fallout import open_incidents, statuses
from o2a.models import OrderState
from o2a.service import OrderService
from workflows.order_context import FINAL_STATES

log = logging.getLogger("o2a.api")

FALLOUT_SAMPLE = 100
"""Failed orders whose open fallout a scrape reads (the newest)."""
OPEN_STATES = [s for s in OrderState if s not in FINAL_STATES]

disable_created_metrics()  # type: ignore[no-untyped-call]  # no ``_created`` series
REQUESTS = Counter(
    "o2a_api_requests",
    "API requests, by method, route template and status",
    ["method", "route", "status"],
)
DURATION = Histogram(
    "o2a_api_request_duration_seconds",
    "API request durations, by method and route template",
    ["method", "route"],
)

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format: the API's requests, then open orders and fallout (left out
    while Temporal is not reachable)."""
    body = generate_latest(REGISTRY)
    try:
        await request.app.state.temporal.connect(request.app)
        body += generate_latest(await _visibility(request.app.state.service))
    except (ConnectionFailed, RPCError) as exc:
        log.warning("metrics without visibility gauges: %s", exc)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def _visibility(service: OrderService) -> CollectorRegistry:
    counts = await service.count_by_state()
    failed = await service.list_orders(OrderState.FAILED, FALLOUT_SAMPLE)
    found = await statuses(service, [o.order_number for o in failed])
    fallout = Tally(
        (i.fallout.code, i.target_system or "none") for s in found for i in open_incidents(s)
    )
    orders = GaugeMetricFamily("o2a_orders_open", "Orders not ended, by state", labels=["state"])
    for state in OPEN_STATES:
        orders.add_metric([state.value], counts[state])
    incidents = GaugeMetricFamily(
        "o2a_fallouts_open",
        f"Open fallout by fault code and target system (newest {FALLOUT_SAMPLE} failed orders)",
        labels=["code", "target_system"],
    )
    for (code, system), n in sorted(fallout.items()):
        incidents.add_metric([code, system], n)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([orders, incidents]))
    return registry


class _Fixed(Collector):
    """Metrics already read, for one scrape."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self._families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self._families


def observe(scope: Scope, status: int, seconds: float) -> None:
    """One request answered: counted by the route it matched (``unmatched`` for none)."""
    route = getattr(scope.get("route"), "path", None) or "unmatched"
    method = scope["method"]
    REQUESTS.labels(method, route, str(status)).inc()
    DURATION.labels(method, route).observe(seconds)
