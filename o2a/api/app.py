"""The ASGI application: one OrderService on one Temporal client for its lifetime (made on
first need, so the API starts and answers /healthz while Temporal is still down), the
routers of each resource family, TMF error bodies, a body-size limit enforced while the body
is read, and one log line per request."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import Depends, FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from o2a.api import aia, codec_server, errors, hub, operator, product_order
from o2a.api.auth import ApiKeys
from o2a.api.errors import error_body
from o2a.api.metrics import observe
from o2a.api.metrics import router as metrics_router
from o2a.api.tracing import TraceRequests
from o2a.client import ConnectionFailed, connect
from o2a.config import Settings
from o2a.console import router as console
from o2a.service import OrderService

log = logging.getLogger("o2a.api")

MAX_BODY_BYTES = 8 * 1024 * 1024
"""The order document limit of the parser (o2a/inbound.py), enforced while reading."""

ClientFactory = Callable[[], Awaitable[Client]]


def create_app(
    settings: Settings,
    keys: ApiKeys,
    client_factory: ClientFactory | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await temporal.connect(app)
        except ConnectionFailed as exc:
            log.warning("%s; the API answers 503 until Temporal is reachable", exc)
        yield

    temporal = TemporalLink(settings, client_factory or _connect)

    app = FastAPI(
        title="o2a",
        summary="Order-to-Activate on Temporal: TMF622 Product Ordering, the AIA endpoint, "
        "event hub and operator actions",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.keys = keys
    app.state.settings = settings
    app.state.temporal = temporal
    errors.install(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> dict[str, str]:
        """Temporal answers (503 with the TMF error body if not)."""
        await temporal.connect(app)
        client: Client = app.state.client
        await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=2)
        )
        return {"status": "ready"}

    # Resource families, one router module each; each needs Temporal:
    connected = [Depends(temporal_connected)]
    app.include_router(product_order.router, dependencies=connected)
    app.include_router(aia.router, dependencies=connected)
    app.include_router(operator.router, dependencies=connected)
    app.include_router(hub.router, dependencies=connected)
    app.include_router(console)  # the operator console: pages, connecting as it needs
    app.include_router(metrics_router)  # open, as /healthz: o2a/api/metrics.py says why
    app.include_router(codec_server.router)  # no Temporal needed: the keys are local
    app.add_middleware(codec_server.CodecCors, ui_url=settings.ui_url)
    app.add_middleware(RequestLog)
    app.add_middleware(TraceRequests)  # around the log line, which so names its trace
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app


async def _connect() -> Client:
    return await connect("o2a-api")


class TemporalLink:
    """Puts the client and the service on the app once Temporal first answers a connect;
    until then each request tries again (ConnectionFailed: 503 with the TMF body). Once
    made, the client reconnects by itself."""

    def __init__(self, settings: Settings, factory: ClientFactory) -> None:
        self._settings = settings
        self._factory = factory
        self._lock = asyncio.Lock()

    async def connect(self, app: FastAPI) -> None:
        if getattr(app.state, "client", None) is not None:
            return
        async with self._lock:
            if getattr(app.state, "client", None) is None:
                client = await self._factory()
                app.state.client = client
                app.state.service = OrderService(client, self._settings)


async def temporal_connected(request: Request) -> None:
    link: TemporalLink = request.app.state.temporal
    await link.connect(request.app)


class BodyLimit:
    """413 for a body over the limit: refused from its Content-Length at once, or as soon as
    the bytes read pass the limit, so a 40 MB upload is never held in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max:
            await self._too_large(send)
            return
        seen = 0
        started = False

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._max:
                    raise _TooLarge
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._app(scope, counting, tracking)
        except _TooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        body = error_body(413, "Payload too large", f"the body is over {self._max} bytes")
        await _send_json(send, 413, body)


class _TooLarge(Exception):
    pass


async def _send_json(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class RequestLog:
    """One line per request: method, path, status, duration, and the order it named."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, noting)
        finally:
            observe(scope, status, time.perf_counter() - started)
            order = scope.get("state", {}).get("order_number")
            log.info(
                "%s %s %d %.1f ms order=%s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                order or "-",
                extra={"order": order},  # o2a/logs.py: the order's fields, as workflows log
            )
