"""What every console page shares: the templates and their filters, the navigation, one way
to render a page (with the security headers every page gets), the error pages, the static
files, and the route class that turns domain errors into pages instead of JSON bodies.

A page family (orders, one order, fallout, dashboard) is a module with an ``APIRouter`` made
by ``page_router()``; it renders templates that extend ``base.html`` and adds itself to the
navigation with ``NAV``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from temporalio.service import RPCError

from o2a.api.auth import Permission
from o2a.client import ConnectionFailed
from o2a.errors import InputError, NoWorkerError, UnknownOrderError

PREFIX = "/console"
STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    # Scripts and styles from the console itself only: no inline script, no eval.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages show customer data: no cache keeps them.
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    permission: Permission = Permission.READ


NAV: list[NavItem] = [NavItem("Orders", f"{PREFIX}/orders")]
"""The header's links, in order; a page family appends its own when it is imported."""


class ConsoleError(Exception):
    """An answer other than the page asked for, shown as a page of its own."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class SignInRequired(Exception):
    """No session and no key: a browser is sent to the sign-in page."""


# --- templates ------------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _moment(value: datetime | None) -> Markup:
    """A compact time for tables (month-day and clock, UTC), the full one on hover."""
    if value is None:
        return Markup("—")
    moment = value.astimezone(UTC)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        moment.isoformat(), _when(moment), moment.strftime("%m-%d %H:%M:%S")
    )


def _label(value: object) -> str:
    """``in_progress`` → ``in progress``: states and kinds as people read them."""
    text = getattr(value, "value", value)
    return str(text).replace("_", " ")


def _css(value: object) -> str:
    """A state or status as a CSS class suffix: ``IN PROGRESS`` → ``in-progress``."""
    text = str(getattr(value, "value", value)).lower()
    return "".join(c if c.isalnum() else "-" for c in text)


def _order_path(number: str) -> str:
    return f"{PREFIX}/orders/{quote(number, safe='')}"


def _static_versions() -> dict[str, str]:
    """Content hashes, so a changed asset gets a new URL and the old one may be cached."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in STATIC.iterdir()
        if path.is_file()
    }


VERSIONS = _static_versions()

templates = Environment(
    loader=PackageLoader("o2a.console", "templates"),
    autoescape=select_autoescape(["html", "svg"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(when=_when, moment=_moment, label=_label, css=_css, order_path=_order_path)
templates.globals.update(
    Permission=Permission,
    prefix=PREFIX,
    static=lambda name: f"{PREFIX}/static/{name}?v={VERSIONS[name]}",
)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page or fragment with the visitor (if known), the navigation and the CSRF token
    every form needs; partial templates (``_*.html``) render the same way."""
    visitor = getattr(request.state, "console_visitor", None)
    nav = [item for item in NAV if visitor is not None and visitor.may(item.permission)]
    html = templates.get_template(template).render(
        request_path=request.url.path,
        visitor=visitor,
        csrf=visitor.csrf if visitor is not None else "",
        nav=nav,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def is_htmx(request: Request) -> bool:
    """htmx asked for a fragment (the page itself works without JavaScript too)."""
    return request.headers.get("hx-request") == "true"


# --- errors as pages ------------------------------------------------------------------------

_DOMAIN_PAGES: tuple[tuple[type[Exception], int, str], ...] = (
    (UnknownOrderError, 404, "No such order"),
    (InputError, 400, "Cannot search for that"),
    (NoWorkerError, 503, "No worker answers"),
    (ConnectionFailed, 503, "Temporal is not reachable"),
    (RPCError, 503, "Temporal refused the request"),
)


def sign_in_redirect(request: Request) -> Response:
    """Back to the page asked for after sign-in; its path only (a query may name a
    customer). htmx follows HX-Redirect, a browser the 303."""
    target = f"{PREFIX}/login?next={quote(request.url.path, safe='/')}"
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    """A page of its own, or for htmx the message alone, shown where the answer goes."""
    template = "_error.html" if is_htmx(request) else "error.html"
    return render(request, template, status_code=status, title=title, message=message)


class ConsoleRoute(APIRoute):
    """Console routes answer errors with a page (or, for htmx, a fragment), never with the
    API's JSON body: dependencies run inside this handler, so sign-in and CSRF refusals
    come out here too."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return sign_in_redirect(request)
            except ConsoleError as exc:
                return error_page(request, exc.status, exc.title, exc.message)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                message = f"{where}: {first.get('msg', 'invalid')}"
                return error_page(request, 400, "Bad request", message)
            except Exception as exc:
                for kind, status, title in _DOMAIN_PAGES:
                    if isinstance(exc, kind):
                        message = exc.message if isinstance(exc, RPCError) else str(exc)
                        return error_page(request, status, title, message)
                raise

        return guarded


def page_router() -> APIRouter:
    """The router of one page family: console routes, out of the API's OpenAPI document."""
    return APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)


# --- static files ---------------------------------------------------------------------------

static_router = page_router()

_MEDIA = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@static_router.get("/static/{name}")
async def static_file(name: str) -> Response:
    """Only the files shipped in the package, by name: no path reaches anything else."""
    if name not in VERSIONS:
        raise ConsoleError(404, "Not found", f"no console file {name}")
    path = STATIC / name
    return FileResponse(
        path,
        media_type=_MEDIA.get(path.suffix, "text/plain"),
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


T = TypeVar("T")


def app_singleton(request: Request, name: str, make: Callable[[], T]) -> T:
    """One object per application (its session secret, its plan cache), made on first use:
    the console adds nothing to the app but its router."""
    found: T | None = getattr(request.app.state, name, None)
    if found is None:
        found = make()
        setattr(request.app.state, name, found)
    return found
