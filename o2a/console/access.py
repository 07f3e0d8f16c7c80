"""Who is asking, and may they: the console's dependencies.

The same keys and roles as the API. A request with ``Authorization: Bearer KEY`` is served
directly (no cookie, so no CSRF token is needed: a browser never adds that header on its
own); a browser carries the session cookie it got at sign-in, and every POST it makes must
carry the CSRF token of that session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData, UploadFile

from o2a.api.auth import GRANTS, ApiKeys, Permission, Role
from o2a.console.session import (
    COOKIE,
    LIFETIME_SECONDS,
    Session,
    SessionSigner,
    configured_secret,
)
from o2a.console.web import PREFIX, ConsoleError, SignInRequired, app_singleton
from o2a.service import OrderService

MAX_FORM_FIELDS = 1000
"""Enough for a bulk action over a page of incidents."""


@dataclass(frozen=True)
class Visitor:
    role: Role
    session: Session | None
    """None when the request brought its key (Bearer)."""
    csrf: str
    """The token its forms carry ("" for a Bearer request, which needs none)."""

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    @property
    def name(self) -> str:
        """Who is recorded with an operator action: the role, as the API records it."""
        return self.role.value


def signer(request: Request) -> SessionSigner:
    return app_singleton(request, "console_sessions", lambda: SessionSigner(configured_secret()))


def session_of(request: Request) -> Session | None:
    value = request.cookies.get(COOKIE)
    return signer(request).load(value) if value else None


CODEC_COOKIE_PATH = "/codec"
"""The codec server (o2a/api/codec_server.py) takes the console's sign-in too: the Temporal
Web UI's fetch carries the browser's cookies, never an API key."""
COOKIE_PATHS = (PREFIX, CODEC_COOKIE_PATH)


def set_session(request: Request, response: Response, session: Session) -> None:
    for path in COOKIE_PATHS:
        response.set_cookie(
            COOKIE,
            signer(request).dump(session),
            max_age=LIFETIME_SECONDS,
            path=path,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


def clear_session(request: Request, response: Response) -> None:
    for path in COOKIE_PATHS:
        response.delete_cookie(
            COOKIE,
            path=path,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


async def visitor(request: Request) -> Visitor:
    """The key of the request, else the signed-in session; a browser with neither is sent
    to sign in. A wrong key is refused outright (a client of the API, not a browser)."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        keys: ApiKeys = request.app.state.keys
        role = keys.role_of(token.strip()) if scheme.lower() == "bearer" and token else None
        if role is None:
            raise ConsoleError(401, "Not signed in", "a valid API key is required (Bearer)")
        found = Visitor(role, None, "")
    else:
        session = session_of(request)
        if session is None or session.role is None:
            raise SignInRequired
        found = Visitor(session.role, session, signer(request).csrf_token(session))
    request.state.console_visitor = found
    return found


def allowed(permission: Permission) -> object:
    """A dependency: the visitor, if their role grants ``permission`` (else 403)."""

    async def check(found: Annotated[Visitor, Depends(visitor)]) -> Visitor:
        if not found.may(permission):
            raise ConsoleError(
                403, "Not allowed", f"role {found.role.value} may not {permission.value}"
            )
        return found

    return Depends(check)


Reader = Annotated[Visitor, allowed(Permission.READ)]
Operator = Annotated[Visitor, allowed(Permission.OPERATE)]


async def read_form(request: Request) -> FormData:
    """The posted form (urlencoded; the console's forms post nothing else)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ConsoleError(415, "Unsupported form", "forms are posted urlencoded")
    try:
        fields: list[tuple[str, str | UploadFile]] = []
        fields += parse_qsl(
            (await request.body()).decode(),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise ConsoleError(400, "Bad form", "the form could not be read") from None
    return FormData(fields)


def check_csrf(request: Request, session: Session | None, form: FormData) -> None:
    """A POST from a session must carry that session's token; anything else is a forgery
    (another site's form, a replayed token of another session)."""
    if session is None:
        return
    token = form.get("csrf")
    if not isinstance(token, str) or not signer(request).csrf_valid(session, token):
        raise ConsoleError(403, "Form refused", "the form's CSRF token is missing or invalid")


async def posted(request: Request, found: Annotated[Visitor, Depends(visitor)]) -> FormData:
    form = await read_form(request)
    check_csrf(request, found.session, form)
    return form


Posted = Annotated[FormData, Depends(posted)]
"""A POSTed form of a signed-in visitor, its CSRF token checked."""


async def service(request: Request) -> OrderService:
    """The application's service; Temporal is connected on first need (503 page until it
    answers), as for the API."""
    await request.app.state.temporal.connect(request.app)
    found: OrderService = request.app.state.service
    return found


Service = Annotated[OrderService, Depends(service)]
