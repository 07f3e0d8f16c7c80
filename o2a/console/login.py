"""Signing in and out: the API key is typed once into a form, checked against the API's
keys, and exchanged for a session cookie; it is never stored, echoed or logged."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse

from o2a.api.auth import ApiKeys
from o2a.console.access import (
    check_csrf,
    clear_session,
    read_form,
    session_of,
    set_session,
    signer,
    visitor,
)
from o2a.console.session import Session
from o2a.console.web import NAV, PREFIX, page_router, render

router = page_router()


def _next_page(wanted: str | None) -> str:
    """Only a console path of this site: never another host (``//evil``), never a query."""
    if wanted and wanted.startswith(f"{PREFIX}/") and not wanted.startswith("//"):
        path = wanted.split("?", 1)[0].split("#", 1)[0]
        if "\\" not in path and "/login" not in path:
            return path
    return NAV[0].path


def _login_page(
    request: Request, session: Session, next_page: str, error: str | None = None
) -> Response:
    status = 401 if error else 200
    response = render(
        request,
        "login.html",
        status_code=status,
        login_csrf=signer(request).csrf_token(session),
        next_page=next_page,
        error=error,
    )
    set_session(request, response, session)
    return response


@router.get("/login")
async def login_form(
    request: Request, next: Annotated[str | None, Query(max_length=400)] = None
) -> Response:
    """The sign-in form, with an anonymous session so the form has a CSRF token."""
    session = session_of(request) or signer(request).new(role=None)
    return _login_page(request, session, _next_page(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    session = session_of(request)
    next_page = _next_page(str(form.get("next") or ""))
    if session is None:  # expired, or a process restart since the form was shown
        return _login_page(
            request,
            signer(request).new(role=None),
            next_page,
            "The form expired; please sign in again.",
        )
    check_csrf(request, session, form)
    keys: ApiKeys = request.app.state.keys
    role = keys.role_of(str(form.get("key") or "").strip())
    if role is None:
        return _login_page(request, session, next_page, "That key is not valid.")
    response = RedirectResponse(next_page, status_code=303)
    set_session(request, response, signer(request).new(role))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    found = await visitor(request)
    check_csrf(request, found.session, await read_form(request))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    clear_session(request, response)
    return response
