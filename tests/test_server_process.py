"""The embedded dev server's life follows the command that started it: a SIGKILLed
`o2a server` or `o2a up` must not leave `temporal server start-dev` holding the ports and the
database, so starting again on the same ports works (issue 9)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from o2a.config import Settings
from tests.conftest import free_port
from tests.support import Background, cli_env, until, wait_until

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the dev server dies with its parent on Linux"
)
READY = 60.0
"""Seconds a dev server may take to answer after its command starts."""


def alive(pid: int) -> bool:
    """Running, not a zombie: a container's init may never reap an orphan that died."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def serving(address: str) -> bool:
    try:
        client = await Client.connect(address)
        await client.workflow_service.get_system_info(GetSystemInfoRequest())
    except Exception:  # not up yet
        return False
    return True


async def start(
    command: str, db: Path, port: int, ui_port: int, settings: Settings, log: str
) -> Background:
    return await Background.start(
        command,
        "--db",
        str(db),
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        *own_ports(command),
        env=cli_env(f"127.0.0.1:{port}", settings),
        log=db.parent / log,
    )


def own_ports(command: str) -> list[str]:
    """NATS (and for `o2a up` the API) on ports of their own, never the defaults."""
    nats = ["--nats-port", str(free_port())]
    return nats + (["--api-port", str(free_port())] if command == "up" else [])


async def sigkill_and_wait_for_children(command: Background) -> None:
    """SIGKILL the command alone (not its process group): its children must follow."""
    command.remember_descendants()
    children = set(command.descendants)
    assert children, f"no child process seen:\n{command.output()}"
    os.kill(command.pid, signal.SIGKILL)
    await command.wait(10)
    await wait_until(
        lambda: not any(map(alive, children)),
        f"children {sorted(children)} of the killed command to die",
        10,
    )


async def test_server_restarts_on_the_same_ports_after_its_command_was_sigkilled(
    tmp_path: Path, settings: Settings
) -> None:
    port, ui_port = free_port(), free_port()
    db = tmp_path / "var" / "temporal.db"
    address = f"127.0.0.1:{port}"
    first = await start("server", db, port, ui_port, settings, "first.log")
    second: Background | None = None
    try:
        await until(lambda: serving(address), READY)
        await sigkill_and_wait_for_children(first)

        second = await start("server", db, port, ui_port, settings, "second.log")
        await until(lambda: serving(address), READY)
        assert second.running(), second.output()
        assert "address already in use" not in second.output(), second.output()
    finally:
        first.kill()
        if second is not None:
            await second.stop()


async def test_up_takes_its_dev_server_with_it_when_sigkilled(
    tmp_path: Path, settings: Settings
) -> None:
    port, ui_port = free_port(), free_port()
    up = await start("up", tmp_path / "var" / "temporal.db", port, ui_port, settings, "up.log")
    try:
        await up.wait_for_output("polling task queue", timeout=90)
        await sigkill_and_wait_for_children(up)
        await wait_until(lambda: not port_open(port), "the server port to close", 10)
    finally:
        up.kill()


@pytest.mark.parametrize("command", ["server", "up"])
def test_a_port_in_use_is_one_line_and_exit_1(
    command: str, tmp_path: Path, settings: Settings
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "o2a",
                command,
                "--db",
                str(tmp_path / "t.db"),
                "--port",
                str(port),
                "--ui-port",
                str(free_port()),
                *own_ports(command),
            ],
            env=cli_env(f"127.0.0.1:{port}", settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"o2a: port {port} is already in use (another `o2a up` or o2a server?): "
        "stop it, or choose other ports with --port / --ui-port / --nats-port"
    ]
