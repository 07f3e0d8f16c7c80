"""The operator console: server-rendered pages under ``/console`` on the application
service, with the API's keys and roles (docs/architecture.md, "Console").

One module per page family, each with its router from ``web.page_router()``:
``login`` (sign-in and out), ``dashboard`` (charts), ``orders`` (search), ``order`` (one
order, live), ``fallout`` (open incidents across orders, with actions). A new family
is a module with its router and templates extending ``base.html``; it
adds its link to ``web.NAV`` and its router to ``router`` below. Shared pieces: ``web``
(rendering, errors, navigation, static files), ``access`` (who is asking, CSRF, the
service), ``actions`` (operator actions and their answers), ``plan_graph`` and ``timeline``
(SVG drawn in Python).
"""

from __future__ import annotations

from fastapi import APIRouter

from o2a.console import dashboard, fallout, login, order, orders
from o2a.console.web import static_router

router = APIRouter()
for family in (
    static_router,
    login.router,
    orders.router,
    order.router,
    fallout.router,
    dashboard.router,
):
    router.include_router(family)

__all__ = ["router"]
