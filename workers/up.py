"""`o2a up`: the embedded servers (Temporal, NATS), a worker, the HTTP API and the bus
services in one command and one event loop; Ctrl-C or SIGTERM stops the worker, the API
(requests in flight finish) and the bus services, then the servers they need."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from o2a import metrics
from o2a.api.auth import ApiKeys, Role, local_keys
from o2a.api.codec_server import PREFIX as CODEC_PREFIX
from o2a.api.server import api_server
from o2a.config import Settings
from o2a.encryption import local_key_ring
from o2a.listener import run_listener
from o2a.nats_server import NatsServer
from o2a.server import DevServer, ServerError, ensure_ports_free
from workers.simulate import run_simulator
from workers.worker import run_worker

BusService = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]
BUS_SERVICES: list[BusService] = []
"""What else runs on the bus (the inbound listener, the simulated fulfillment systems),
each until the event is set."""
BUS_SERVICES.append(run_listener)
BUS_SERVICES.append(run_simulator)


@dataclass(frozen=True)
class Stack:
    db: Path
    port: int
    ui_port: int
    api_port: int
    nats: NatsServer | None
    """The embedded NATS server; None: none, or O2A_NATS_URL names the bus."""


async def run_up(settings: Settings, stack: Stack, keys_text: str | None) -> int:
    """``keys_text`` is ``O2A_API_KEYS``; without it, local keys kept beside the database."""
    keys = ApiKeys.parse(keys_text) if keys_text else None
    check_api_port(stack.api_port, "--api-port")
    if settings.metrics_port is not None:  # a port in use: one line, before anything starts
        metrics.serve(settings.metrics_port)
    ring, ring_source = local_key_ring()  # a malformed one: one line, nothing started
    var = stack.db.parent
    log_file = var / "temporal.log"
    server = DevServer(
        db=stack.db,
        port=stack.port,
        ui_port=stack.ui_port,
        log_file=log_file,
        ui_codec_endpoint=f"http://localhost:{stack.api_port}{CODEC_PREFIX}",
    )
    nats = stack.nats
    if nats is not None:
        nats.log_file = var / "nats.log"
    server.start()
    try:
        if nats is not None:
            nats.start()
            await nats.wait_ready()
            # `up` means these servers, whatever the shell's variables say.
            os.environ["O2A_NATS_URL"] = nats.url
        await server.wait_ready()
        os.environ["TEMPORAL_ADDRESS"] = server.address
        if "O2A_UI_URL" not in os.environ:  # links to this server's Web UI
            os.environ["O2A_UI_URL"] = f"http://localhost:{stack.ui_port}"
        settings = dataclasses.replace(Settings.from_env(), metrics_port=settings.metrics_port)
        print(
            f"Temporal dev server on {server.address} (db {stack.db}, log {log_file})\n"
            f"Web UI  http://localhost:{stack.ui_port}\n"
            + (
                f"NATS    {nats.url} (JetStream, store {nats.store}, log {nats.log_file})\n"
                if nats is not None
                else ""
            )
            + f"API     http://localhost:{stack.api_port} (docs /docs, console /console)\n"
            f"Payloads encrypted with key {ring.active!r} of {ring_source}; the Web UI "
            f"decodes them at http://localhost:{stack.api_port}{CODEC_PREFIX}\n"
            f"{_metrics_urls(settings, stack)}"
            "Submit an order in another terminal: .venv/bin/o2a submit samples/triple_play.xml",
            flush=True,
        )
        if keys is None:
            keys = _local_keys(var, stack.api_port)
        stop = asyncio.Event()
        api = api_server(settings, keys, "127.0.0.1", stack.api_port)
        async with asyncio.TaskGroup() as tasks:  # one failing stops the others
            tasks.create_task(serve_api(api, stop))
            tasks.create_task(run_worker(settings, stop))
            if settings.nats_url is not None:
                for service in BUS_SERVICES:
                    tasks.create_task(service(settings, stop))
    finally:
        server.stop()
        print("Temporal dev server stopped", flush=True)
        if nats is not None:
            nats.stop()
            print("NATS server stopped", flush=True)
    return 0


def _metrics_urls(settings: Settings, stack: Stack) -> str:
    worker = (
        f"http://localhost:{settings.metrics_port}/metrics (worker), "
        if settings.metrics_port is not None
        else ""
    )
    return f"Metrics {worker}http://localhost:{stack.api_port}/metrics (API)\n"


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
