"""The dashboard, the console's first page: orders by state, open fallout by code,
jeopardies by severity, cycle-time percentiles and the last hour's throughput, as SVG bar
charts drawn in Python.

Kept cheap on 10,000 orders: states are visibility counts; incidents and jeopardies come
from the statuses of the newest ``ACTIVE_SAMPLE`` unfinished orders, cycle times and
throughput from the start and close times visibility lists for the newest
``COMPLETED_SAMPLE`` completed orders (no worker is asked for those). The page says so."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Query, Request, Response

from o2a.console.access import Reader, Service
from o2a.console.charts import Bar, bar_chart
from o2a.console.fallout import open_incidents, statuses
from o2a.console.web import NAV, PREFIX, NavItem, page_router, render
from o2a.models import OrderState
from o2a.service import OrderSummary

ACTIVE_SAMPLE = 100
COMPLETED_SAMPLE = 200
PERCENTILES = (50, 90, 95, 99)
SEVERITIES = ("Low", "Medium", "High", "Critical")
BUCKET = timedelta(minutes=5)
HOUR = timedelta(hours=1)
ACTIVE = [
    s
    for s in OrderState
    if s
    not in (OrderState.COMPLETED, OrderState.CANCELLED, OrderState.ABORTED, OrderState.NOT_STARTED)
]

router = page_router()
NAV.insert(0, NavItem("Dashboard", PREFIX))


def percentile(sorted_values: list[float], p: int) -> float:
    """Nearest rank: a value some order really took."""
    return sorted_values[max(math.ceil(p / 100 * len(sorted_values)) - 1, 0)]


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def cycle_times(completed: list[OrderSummary]) -> list[Bar]:
    took = sorted((o.closed - o.started).total_seconds() for o in completed if o.closed)
    if not took:
        return []
    values = [(p, percentile(took, p)) for p in PERCENTILES]
    return [Bar(f"p{p}", v, _seconds(v)) for p, v in values]


def throughput(completed: list[OrderSummary], now: datetime) -> list[Bar]:
    """Orders completed in each five minutes of the last hour, oldest first."""
    starts = [now - HOUR + i * BUCKET for i in range(int(HOUR / BUCKET))]
    counts = Counter(
        int((o.closed - starts[0]) / BUCKET)
        for o in completed
        if o.closed and o.closed >= starts[0]
    )
    return [
        Bar(f"{start:%H:%M}-{start + BUCKET:%H:%M}", counts[i], str(counts[i]))
        for i, start in enumerate(starts)
    ]


@router.get("")
async def dashboard(
    request: Request,
    service: Service,
    _: Reader,
    number: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    """``number`` narrows every chart to orders whose number starts with it (a batch)."""
    prefix = number.strip() or None
    now = datetime.now(UTC)
    counts = await service.count_by_state(number_prefix=prefix)
    active = await service.list_orders(states=ACTIVE, limit=ACTIVE_SAMPLE, number_prefix=prefix)
    completed = await service.list_orders(
        OrderState.COMPLETED, COMPLETED_SAMPLE, number_prefix=prefix
    )
    found = await statuses(service, [o.order_number for o in active])
    codes = Counter(i.fallout.code for s in found for i in open_incidents(s))
    severities = Counter(j.severity for s in found for j in s.jeopardies)
    charts = {
        "states": bar_chart(
            "by-state",
            "chart-states",
            "Orders by state",
            [
                Bar(s.value.replace("_", " "), counts[s], str(counts[s]), f"state-{s.value}")
                for s in OrderState
            ],
        ),
        "fallout": bar_chart(
            "by-code",
            "chart-fallout",
            "Open fallout by fault code",
            [Bar(code, n, str(n)) for code, n in codes.most_common()],
        ),
        "jeopardies": bar_chart(
            "by-severity",
            "chart-jeopardies",
            "Jeopardies by severity",
            [Bar(s, severities[s], str(severities[s]), f"sev-{s.lower()}") for s in SEVERITIES],
        ),
        "cycle": bar_chart(
            "cycle-times", "chart-cycle", "Cycle time percentiles", cycle_times(completed)
        ),
        "throughput": bar_chart(
            "throughput",
            "chart-throughput",
            "Orders completed per five minutes, last hour",
            throughput(completed, now),
        ),
    }
    return render(
        request,
        "dashboard.html",
        charts=charts,
        number=number.strip(),
        total=sum(counts.values()),
        active=len(found),
        active_total=sum(counts[s] for s in ACTIVE),
        completed=len(completed),
        any_fallout=bool(codes),
        drawn_at=now,
    )
