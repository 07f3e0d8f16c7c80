"""The codec server: the Temporal Web UI (and ``temporal --codec-endpoint``) posts the
payloads it shows to ``/codec/decode`` and the ones it sends to ``/codec/encode``, in the
codec-server protocol (``{"payloads": [{"metadata": {k: base64}, "data": base64}]}``, the
JSON form of ``temporal.api.common.v1.Payloads``), so operators read orders in the UI while
Temporal stores them encrypted (o2a/encryption.py).

Who may: the API's keys (``Authorization: Bearer``, any role: all of them read), or the
console's sign-in. The Web UI of a dev server has no access token to pass, but with
"Include cross-origin credentials" set in its codec settings its fetch carries the
browser's cookies; signing in to the console sets a copy of the session cookie scoped to
``/codec`` (o2a/console/access.py), and that is accepted here. Browsers may call it from
the configured UI origin only (``O2A_UI_URL``): ``CodecCors``.

Modelled on samples-python ``encryption/codec_server.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import cast
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from o2a.api.auth import Permission, Role, require
from o2a.api.errors import TmfError
from o2a.client import data_converter
from o2a.console.access import CODEC_COOKIE_PATH, signer
from o2a.console.session import COOKIE

PREFIX = CODEC_COOKIE_PATH
ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Namespace"]
"""What the UI sends: the namespace it shows, and a token where it has one."""

router = APIRouter(prefix=PREFIX, tags=["codec"])
_bearer = require(Permission.READ)


async def reader(request: Request) -> Role:
    """A Bearer key of any role, else the console session the browser carries."""
    if "authorization" not in request.headers:
        value = request.cookies.get(COOKIE)
        session = signer(request).load(value) if value else None
        if session is not None and session.role is not None:
            return session.role
    return await _bearer(request)


async def _payloads(request: Request) -> list[Payload]:
    """The posted payloads; a body of another shape is a 400 with the TMF body."""
    await reader(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":  # so a browser must ask first (CORS preflight)
        raise TmfError(415, "Unsupported media type", "the codec server takes application/json")
    try:
        return list(json_format.Parse(await request.body(), Payloads()).payloads)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise TmfError(400, "Bad request", f"not a Payloads document: {exc}") from None


def _answer(payloads: list[Payload]) -> Response:
    body = json_format.MessageToJson(Payloads(payloads=payloads), indent=None)
    return Response(body, media_type="application/json")


Convert = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


async def _run(convert: Convert, payloads: list[Payload]) -> Response:
    """A payload this key ring cannot open (or a compressed one that would not inflate)
    is a 422 naming why, for the UI to show beside the payload."""
    try:
        return _answer(await convert(payloads))
    except ValueError as exc:  # DecryptionError, an inflation refused
        raise TmfError(422, "Cannot decode", str(exc)) from None


def _codec() -> PayloadCodec:
    """The process's own (o2a.client): compression always, encryption with a key ring."""
    return cast(PayloadCodec, data_converter().payload_codec)


@router.post("/decode", summary="payloads as Temporal stores them → as o2a wrote them")
async def decode(request: Request) -> Response:
    return await _run(_codec().decode, await _payloads(request))


@router.post("/encode", summary="payloads as o2a writes them → as Temporal stores them")
async def encode(request: Request) -> Response:
    return await _run(_codec().encode, await _payloads(request))


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class CodecCors:
    """CORS for the codec routes only, from the UI's origin only, cookies included; every
    other route stays same-origin."""

    def __init__(self, app: ASGIApp, ui_url: str) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=[origin_of(ui_url)],
            allow_methods=["POST"],
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        codec = scope["type"] == "http" and scope["path"].startswith(PREFIX + "/")
        await (self._cors if codec else self._app)(scope, receive, send)
