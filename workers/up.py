"""`o2a up`: the embedded server, a worker and the HTTP API in one command and one event loop;
Ctrl-C or SIGTERM stops the worker and the API (requests in flight finish), then the server
they both need."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import uvicorn

from o2a.api.auth import ApiKeys, Role, local_keys
from o2a.api.server import api_server
from o2a.config import Settings
from o2a.server import DevServer, ServerError, ensure_ports_free
from workers.worker import run_worker


async def run_up(
    settings: Settings, db: Path, port: int, ui_port: int, api_port: int, keys_text: str | None
) -> int:
    """``keys_text`` is ``O2A_API_KEYS``; without it, local keys kept beside the database."""
    keys = ApiKeys.parse(keys_text) if keys_text else None
    check_api_port(api_port, "--api-port")
    log_file = db.parent / "temporal.log"
    server = DevServer(db=db, port=port, ui_port=ui_port, log_file=log_file)
    server.start()
    try:
        await server.wait_ready()
        # `up` means this server, whatever the shell's TEMPORAL_ADDRESS says.
        os.environ["TEMPORAL_ADDRESS"] = server.address
        print(
            f"Temporal dev server on {server.address} (db {db}, log {log_file})\n"
            f"Web UI  http://localhost:{ui_port}\n"
            f"API     http://localhost:{api_port} (docs /docs)\n"
            "Submit an order in another terminal: .venv/bin/o2a submit samples/triple_play.xml",
            flush=True,
        )
        if keys is None:
            keys = _local_keys(db.parent, api_port)
        stop = asyncio.Event()
        api = api_server(settings, keys, "127.0.0.1", api_port)
        async with asyncio.TaskGroup() as tasks:  # one failing stops the other
            tasks.create_task(serve_api(api, stop))
            tasks.create_task(run_worker(settings, stop))
    finally:
        server.stop()
        print("Temporal dev server stopped", flush=True)
    return 0


def _local_keys(var_dir: Path, api_port: int) -> ApiKeys:
    """Shown once per start: the user needs them to call the API."""
    keys, text = local_keys(var_dir)
    integrator = next(
        key
        for key, _, role in (e.rpartition(":") for e in text.split(","))
        if role == Role.INTEGRATOR
    )
    print(
        f"API keys (set O2A_API_KEYS to use your own; these are kept in {var_dir / 'api-keys'}):\n"
        f"  O2A_API_KEYS={text}\n"
        f'  curl -H "Authorization: Bearer {integrator}" http://localhost:{api_port}/api/v1/orders',
        flush=True,
    )
    return keys


def check_api_port(port: int, option: str) -> None:
    """A port in use would only show as uvicorn exiting mid-start: one line naming it."""
    try:
        ensure_ports_free(port)
    except ServerError:
        raise ServerError(
            f"port {port} is already in use: stop what holds it, or choose another with {option}"
        ) from None


async def serve_api(server: uvicorn.Server, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, SIGINT or SIGTERM set it; then requests in flight finish.

    uvicorn's ``serve`` catches SIGINT and SIGTERM itself and, once shut down, raises them
    again into the handlers it found. The loop's handlers are installed first, so it finds
    those and a signal ends in ``stop``: it does not kill the process (SIGTERM's default)
    before the worker and the dev server have stopped."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()  # also when the API ended by itself: the worker beside it stops too
        stopping.cancel()
        server.should_exit = True
        await serving
