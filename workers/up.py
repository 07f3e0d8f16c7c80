"""`o2a up`: the embedded server and a worker in one command; Ctrl-C stops both, worker first."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from o2a.config import Settings
from o2a.server import DevServer
from workers.worker import run_worker


async def run_up(settings: Settings, db: Path, port: int, ui_port: int) -> int:
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
            "Submit an order in another terminal: .venv/bin/o2a submit samples/triple_play.xml",
            flush=True,
        )
        await run_worker(settings, asyncio.Event())
    finally:
        server.stop()
        print("Temporal dev server stopped", flush=True)
    return 0
