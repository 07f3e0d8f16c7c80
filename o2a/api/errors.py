"""Every error the API answers with has TM Forum's error shape ``{code, reason, message,
status}``; domain errors from the service map to their status codes here, in one place."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from o2a.client import ConnectionFailed
from o2a.errors import (
    InputError,
    MalformedDocument,
    NoWorkerError,
    OrderConflictError,
    UnknownOrderError,
)

log = logging.getLogger("o2a.api")


class TmfError(Exception):
    """An answer other than success: its status, a short code and the reason, for people."""

    def __init__(self, status: int, reason: str, message: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.message = message or reason


def error_body(status: int, reason: str, message: str | None = None) -> dict[str, str]:
    return {
        "code": str(status),
        "reason": reason,
        "message": message or reason,
        "status": str(status),
    }


def error_response(status: int, reason: str, message: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, reason, message), status_code=status)


DOMAIN_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (MalformedDocument, 400, "Malformed document"),
    (InputError, 422, "Invalid order"),
    (UnknownOrderError, 404, "Not found"),
    (OrderConflictError, 409, "Conflict"),
    (NoWorkerError, 503, "No worker"),
    (ConnectionFailed, 503, "Temporal unavailable"),
)
"""Domain errors and their answers, a subclass before its base: a document that cannot be read
as an order is a 400, a readable order that is not valid a 422."""


def _answer(status: int, reason: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return error_response(status, reason, str(exc))

    return handler


def install(app: FastAPI) -> None:
    """Handlers so that nothing answers with a stack trace or a body of another shape."""

    @app.exception_handler(TmfError)
    async def tmf(_: Request, exc: TmfError) -> JSONResponse:
        return error_response(exc.status, exc.reason, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(400, "Bad request", f"{where}: {first.get('msg', 'invalid')}")

    for kind, status, reason in DOMAIN_STATUS:
        app.add_exception_handler(kind, _answer(status, reason))

    @app.exception_handler(RPCError)
    async def temporal(_: Request, exc: RPCError) -> JSONResponse:
        log.warning("Temporal refused a request: %s", exc.message)
        return error_response(503, "Temporal unavailable", exc.message)

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in the API")
        return error_response(500, "Internal error", "the request failed; see the API's log")
