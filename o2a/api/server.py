"""`o2a api`: the ASGI application on uvicorn. uvicorn stops gracefully on SIGINT/SIGTERM:
it stops accepting, lets requests in flight finish, then runs the app's shutdown."""

from __future__ import annotations

import uvicorn

from o2a.api.app import create_app
from o2a.api.auth import ApiKeys
from o2a.config import Settings
from o2a.console.session import configured_secret

DEFAULT_PORT = 8000


def api_server(settings: Settings, keys: ApiKeys, host: str, port: int) -> uvicorn.Server:
    configured_secret()  # a weak console secret stops the start, not a request
    config = uvicorn.Config(
        create_app(settings, keys),
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # uvicorn's lines through o2a/logs.py too (JSON when asked)
        access_log=False,  # the app logs one line per request, with the order it named
        server_header=False,
    )
    return uvicorn.Server(config)
