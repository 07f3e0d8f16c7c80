"""The orders page: search by order number, customer account, state, status and start date,
counts per state as filter chips, and paging, all from Temporal visibility (search
attributes; no worker is asked and no workflow is read).

The customer account is customer data, so it only travels in a POSTed form, never in a
URL; a GET takes the other filters (``/console/orders?state=failed`` links here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from fastapi import Request, Response

from o2a.console.access import Posted, Reader, Service
from o2a.console.web import is_htmx, page_router, render
from o2a.models import FulfillmentStatus, OrderState
from o2a.service import OrderFilters, OrderService

PAGE_SIZE = 25
MAX_TEXT = 80

router = page_router()

E = TypeVar("E", OrderState, FulfillmentStatus)


@dataclass(frozen=True)
class Search:
    number: str = ""
    customer: str = ""
    state: OrderState | None = None
    status: FulfillmentStatus | None = None
    since: date | None = None
    until: date | None = None
    """Inclusive: orders started on that day are found."""
    page: int = 1

    @classmethod
    def read(cls, fields: Mapping[str, object]) -> tuple[Search, list[str]]:
        """The search a form or query asks for, and what in it could not be read (each
        such field is left out, the rest still searched)."""
        problems: list[str] = []

        def text(name: str) -> str:
            value = str(fields.get(name) or "").strip()
            if len(value) > MAX_TEXT or not value.isprintable():
                problems.append(f"{name}: at most {MAX_TEXT} printable characters")
                return ""
            return value

        def choice(name: str, kind: type[E]) -> E | None:
            value = str(fields.get(name) or "")
            try:
                return kind(value) if value else None
            except ValueError:
                problems.append(f"{name}: unknown value {value!r}")
                return None

        def day(name: str) -> date | None:
            value = str(fields.get(name) or "")
            try:
                return date.fromisoformat(value) if value else None
            except ValueError:
                problems.append(f"{name}: not a date (YYYY-MM-DD)")
                return None

        page = str(fields.get("page") or "1")
        chip = str(fields.get("chip") or "")
        search = cls(
            number=text("number"),
            customer=text("customer"),
            state=choice("state", OrderState),
            status=choice("status", FulfillmentStatus),
            since=day("since"),
            until=day("until"),
            page=int(page) if page.isdigit() and 0 < int(page) < 100_000 else 1,
        )
        if chip:  # a state chip was pressed: that state (or all), from the first page
            search = replace(search, state=choice("chip", OrderState) if chip != "all" else None)
            search = replace(search, page=1)
        return search, problems

    def filters(self) -> OrderFilters:
        return OrderFilters(
            status=self.status,
            customer=self.customer or None,
            number_prefix=self.number or None,
            started_after=_midnight(self.since),
            started_before=_midnight(self.until + timedelta(days=1) if self.until else None),
        )


def _midnight(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), UTC) if day else None


async def _results(service: OrderService, search: Search) -> dict[str, object]:
    counts = await service.count_by_state(**search.filters())
    total = counts[search.state] if search.state else sum(counts.values())
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    page = min(search.page, pages)
    orders = await service.list_orders(
        search.state, PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, **search.filters()
    )
    return {
        "counts": counts,
        "total": total,
        "orders": orders,
        "page": page,
        "pages": pages,
        "search": replace(search, page=page),
    }


async def _answer(
    request: Request, service: OrderService, search: Search, problems: list[str]
) -> Response:
    context = await _results(service, search)
    template = "_orders_results.html" if is_htmx(request) else "orders.html"
    return render(
        request,
        template,
        status_code=400 if problems else 200,
        problems=problems,
        states=list(OrderState),
        statuses=list(FulfillmentStatus),
        **context,
    )


@router.get("/orders")
async def orders(request: Request, service: Service, _: Reader) -> Response:
    fields = {k: v for k, v in request.query_params.items() if k != "customer"}
    search, problems = Search.read(fields)
    return await _answer(request, service, search, problems)


@router.post("/orders")
async def search_orders(request: Request, service: Service, _: Reader, form: Posted) -> Response:
    search, problems = Search.read(form)
    return await _answer(request, service, search, problems)
