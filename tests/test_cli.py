"""End-to-end tests of the `o2a` command line, run as subprocesses against real Temporal.

Every command runs in its own process with the environment a user would give it
(TEMPORAL_ADDRESS, O2A_TASK_QUEUE, O2A_OUTBOX_DIR); every wait is bounded, and every
process a test starts is stopped in a ``finally``.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from o2a import ids
from o2a.bus import connect_bus
from o2a.config import Settings
from o2a.inbound import CC_NS, SO_NS
from o2a.models import OrderState
from tests.conftest import free_port
from tests.support import (
    O2A,
    PROV_BB,
    PROV_FIXED,
    ROOT,
    SAMPLES,
    SHIP,
    Background,
    StartWorker,
    acked,
    bus_connection,
    cli_env,
    closed,
    descendants,
    held_mid_flight,
    running_listener,
    same_client,
    sample_document,
    signalled,
    until,
    wait_for_state,
    wait_until,
)

NS = {"so": SO_NS, "cc": CC_NS}
SEARCH_ATTRIBUTES = {"OrderNumber", "OrderState", "OrderStatus", "CustomerId"}


# --- running the command line ---------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"o2a {' '.join(self.args)} -> exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


async def o2a(*args: str, env: Mapping[str, str], timeout: float = 60.0) -> Run:
    """Run one `o2a` command to its end (bounded by ``timeout``) and capture its output."""
    proc = await asyncio.create_subprocess_exec(
        *O2A,
        *args,
        cwd=ROOT,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"o2a {' '.join(args)} did not finish within {timeout}s") from None
    assert proc.returncode is not None
    run = Run(
        tuple(args), proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )
    return run


@pytest.fixture
def env(temporal_address: str, settings: Settings) -> dict[str, str]:
    """What a user's shell gives the commands: the session server, the test's own queue."""
    return cli_env(temporal_address, settings)


@asynccontextmanager
async def cli_worker(env: Mapping[str, str], log: Path) -> AsyncIterator[Background]:
    worker = await Background.start("worker", env=env, log=log)
    try:
        await worker.wait_for_output("polling task queue", timeout=60)
        yield worker
    finally:
        await worker.stop()


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def connect_when_up(address: str, server: Background, timeout: float = 60.0) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        if not server.running():
            raise AssertionError(f"server exited ({server.proc.returncode}):\n{server.output()}")
        try:
            client = await asyncio.wait_for(Client.connect(address), 5)
            await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace="default")
            )
            return client
        except Exception as exc:  # not up yet
            if time.monotonic() > deadline:
                raise AssertionError(f"server not up on {address}: {exc}") from exc
            await asyncio.sleep(0.3)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


async def workflow_exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


# --- sample documents -------------------------------------------------------------------------


def sample_xml(order_number: str) -> etree._ElementTree:
    tree = etree.parse(str(SAMPLES / "triple_play.xml"))
    ident = tree.getroot().find("so:DataArea/so:ProcessSalesOrderFulfillment/cc:Identification", NS)
    assert ident is not None
    number = ident.find("cc:ID", NS)
    assert number is not None
    number.text = order_number
    for key in ident.iterfind("cc:ApplicationObjectKey/cc:ID", NS):
        key.text = order_number
    return tree


def xml_bytes(tree: etree._ElementTree) -> bytes:
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def write_xml_order(directory: Path, order_number: str) -> Path:
    path = directory / f"{order_number}.xml"
    path.write_bytes(xml_bytes(sample_xml(order_number)))
    return path


def sample_json(order_number: str) -> dict[str, object]:
    raw = json.loads((SAMPLES / "triple_play.json").read_text())
    raw["order_number"] = order_number
    return raw


# --- `o2a server` and `o2a up` --------------------------------------------------------------


async def test_server_command_serves_temporal_web_ui_and_nats(tmp_path: Path, settings: Settings):
    port, ui_port, nats_port = free_port(), free_port(), free_port()
    db = tmp_path / "server" / "t.db"
    env = cli_env(f"127.0.0.1:{port}", settings)
    server = await Background.start(
        "server",
        "--db",
        str(db),
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--nats-port",
        str(nats_port),
        env=env,
        log=tmp_path / "server.log",
    )
    try:
        client = await connect_when_up(f"127.0.0.1:{port}", server)
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        assert set(response.custom_attributes) >= SEARCH_ATTRIBUTES, response.custom_attributes

        url = f"http://127.0.0.1:{ui_port}/"
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            status = await asyncio.to_thread(http_status, url)
            if status == 200:
                break
            await asyncio.sleep(0.5)
        assert status == 200, f"GET {url} -> {status}\n{server.output()}"
        assert db.exists()
        nats = await connect_bus(f"nats://127.0.0.1:{nats_port}", "test")
        try:
            await nats.jetstream().account_info()  # JetStream on, its store beside the db
        finally:
            await nats.close()
        assert (db.parent / "nats" / "jetstream").is_dir()

        server.remember_descendants()
        server.signal(signal.SIGINT)
        try:
            await server.wait(20)
        except TimeoutError:
            raise AssertionError(
                f"o2a server still running 20s after SIGINT:\n{server.output()}"
            ) from None
        await wait_until(lambda: not port_open(port), "the server port to close", 10)
        await wait_until(lambda: not port_open(nats_port), "the NATS port to close", 10)
        assert "Traceback" not in server.output()
    finally:
        server.kill()


async def start_up(
    tmp_path: Path, port: int, ui_port: int, env: Mapping[str, str], nats_port: int | None = None
) -> Background:
    """`o2a up` with every port its own (tests run in parallel: none on a default)."""
    return await Background.start(
        "up",
        "--db",
        str(tmp_path / "up" / "t.db"),
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--nats-port",
        str(nats_port or free_port()),
        "--api-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        env=env,
        log=tmp_path / "up.log",
    )


async def test_up_runs_server_and_worker_until_ctrl_c(
    tmp_path: Path, settings: Settings, order_number: str
):
    port, ui_port = free_port(), free_port()
    env = cli_env(f"127.0.0.1:{port}", settings)
    up = await start_up(tmp_path, port, ui_port, env)
    try:
        await up.wait_for_output("polling task queue", timeout=90)
        assert f"Web UI  http://localhost:{ui_port}" in up.output(), up.output()
        up.remember_descendants()

        order = write_xml_order(tmp_path, order_number)
        submitted = await o2a("submit", str(order), "--wait", env=env, timeout=120)
        assert submitted.returncode == 0, submitted
        assert f"workflow order-{order_number}" in submitted.stdout, submitted

        up.signal(signal.SIGINT)
        try:
            await up.wait(30)
        except TimeoutError:
            raise AssertionError(f"o2a up still running 30s after SIGINT:\n{up.output()}") from None
        assert "o2a worker stopped" in up.output(), up.output()
        await wait_until(lambda: not port_open(port), "the server port to close", 15)
        assert "Traceback" not in up.output(), up.output()
    finally:
        up.kill()


async def test_up_worker_polls_its_own_server_when_temporal_address_is_set(
    temporal_address: str, settings: Settings, order_number: str, tmp_path: Path
):
    port, ui_port = free_port(), free_port()
    up_env = cli_env(temporal_address, settings)  # a user's shell pointing elsewhere
    up = await start_up(tmp_path, port, ui_port, up_env)
    try:
        await up.wait_for_output("polling task queue", timeout=90)
        order = write_xml_order(tmp_path, order_number)
        env = cli_env(f"127.0.0.1:{port}", settings)
        submitted = await o2a("submit", str(order), env=env, timeout=60)
        assert submitted.returncode == 0, submitted
        own = await Client.connect(f"127.0.0.1:{port}")
        handle = own.get_workflow_handle(ids.order_workflow_id(order_number))
        deadline = time.monotonic() + 30
        state = None
        while time.monotonic() < deadline and state is not WorkflowExecutionStatus.COMPLETED:
            await asyncio.sleep(1)
            state = (await handle.describe()).status
        assert state is WorkflowExecutionStatus.COMPLETED, f"order {state} after 30s"
    finally:
        await up.stop()


async def test_server_command_stops_its_dev_server_on_sigterm(tmp_path: Path, settings: Settings):
    port, ui_port = free_port(), free_port()
    server = await Background.start(
        "server",
        "--db",
        str(tmp_path / "server" / "t.db"),
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--nats-port",
        str(free_port()),
        env=cli_env(f"127.0.0.1:{port}", settings),
        log=tmp_path / "server.log",
    )
    try:
        await connect_when_up(f"127.0.0.1:{port}", server)
        server.remember_descendants()
        server.signal(signal.SIGTERM)
        try:
            await server.wait(20)
        except TimeoutError:
            raise AssertionError("o2a server still running 20s after SIGTERM") from None
        await wait_until(lambda: not port_open(port), "the server port to close", 15)
    finally:
        server.kill()


# --- submit, status, list, resolve --------------------------------------------------------------


async def test_submit_status_list_and_second_submit(
    client: Client,
    temporal_address: str,
    settings: Settings,
    order_number: str,
    tmp_path: Path,
):
    env = cli_env(temporal_address, settings)
    order = write_xml_order(tmp_path, order_number)
    workflow_id = ids.order_workflow_id(order_number)
    async with cli_worker(env, tmp_path / "worker.log"):
        submitted = await o2a("submit", str(order), "--wait", env=env, timeout=120)
        assert submitted.returncode == 0, submitted
        assert f"workflow {workflow_id}" in submitted.stdout, submitted
        link = ids.web_ui_link(settings.ui_url, "default", workflow_id)
        assert link in submitted.stdout, submitted
        assert "Traceback" not in submitted.stdout + submitted.stderr

        status = await o2a("status", order_number, "--json", env=env)
        assert status.returncode == 0, status
        body = json.loads(status.stdout)
        assert body["order_number"] == order_number
        assert body["revision"] == 1
        assert body["state"] == "completed"
        assert body["status"] == "COMPLETE"
        assert body["lines"], body
        for line in body["lines"]:
            assert {"id", "action", "status", "milestone"} <= set(line), line
            assert line["status"] == "COMPLETE", line
            assert line["milestone"], line
        assert len(body["lines"]) == 12
        assert body["components"], body
        for component in body["components"]:
            assert {"id", "function", "target_system", "state", "lines"} <= set(component)
            assert component["function"] and component["target_system"], component
            assert component["state"] == "completed", component
            assert component["lines"], component
        assert {c["function"] for c in body["components"]} >= {"Provision", "InitiateBilling"}
        assert body["fallouts"] == []
        assert isinstance(body["revisions"], list)

        table = await o2a("status", order_number, env=env)
        assert table.returncode == 0, table
        assert order_number in table.stdout and "completed" in table.stdout, table
        assert "Traceback" not in table.stdout + table.stderr

        later = f"{order_number}-LATER"
        run = await o2a("submit", str(write_xml_order(tmp_path, later)), env=env)
        assert run.returncode == 0, run

        async def listed() -> Run:
            deadline = time.monotonic() + 20
            while True:
                listing = await o2a("list", env=env)
                assert listing.returncode == 0, listing
                found = order_number in listing.stdout and later in listing.stdout
                if found or time.monotonic() > deadline:
                    return listing
                await asyncio.sleep(0.5)

        listing = await listed()
        rows = listing.stdout.splitlines()
        assert rows[0].split()[:3] == ["ORDER", "REVISION", "STATE"], listing
        numbers = [r.split()[0] for r in rows[1:]]
        assert numbers.index(later) < numbers.index(order_number), listing  # newest first
        row = rows[1 + numbers.index(order_number)].split()
        assert row[1:3] == ["1", "completed"], listing

        again = await o2a("submit", str(order), env=env)
        assert again.returncode == 1, again
        assert len(again.stderr_lines) == 1, again
        assert order_number in again.stderr_lines[0], again
        assert "Traceback" not in again.stdout + again.stderr, again

    runs = [wf async for wf in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    assert len(runs) == 1, runs


async def test_status_of_unknown_order_exits_1(temporal_address: str, settings: Settings):
    env = cli_env(temporal_address, settings)
    unknown = f"UNKNOWN-xyz-{uuid.uuid4().hex[:8]}"
    run = await o2a("status", unknown, env=env)
    assert run.returncode == 1, run
    assert len(run.stderr_lines) == 1, run
    assert unknown in run.stderr, run
    assert "Traceback" not in run.stdout + run.stderr, run
    as_json = await o2a("status", unknown, "--json", env=env)
    assert as_json.returncode == 1, as_json
    assert len(as_json.stderr_lines) == 1, as_json


async def test_client_commands_exit_cleanly_every_time(temporal_address: str, settings: Settings):
    """Many short client commands: each exits with its own status and one line, never a crash.

    The crash is intermittent (seen in 4-13% of runs), so this runs up to 80 commands, four
    at a time (a 4% crash shows in 96 runs of 100), and stops at the first bad one.
    """
    env = cli_env(temporal_address, settings)
    runs = 0
    for _ in range(20):
        batch = await asyncio.gather(
            *(o2a("status", f"UNKNOWN-{uuid.uuid4().hex[:8]}", env=env) for _ in range(4))
        )
        runs += len(batch)
        bad = [run for run in batch if run.returncode != 1 or len(run.stderr_lines) != 1]
        assert not bad, f"run {runs - len(batch) + 1}..{runs} went wrong:\n{bad[0]}"


async def test_unreachable_server_is_one_line_and_exit_1(
    settings: Settings, order_number: str, tmp_path: Path
):
    env = cli_env(f"127.0.0.1:{free_port()}", settings)
    order = write_xml_order(tmp_path, order_number)
    for args in (("submit", str(order)), ("status", order_number), ("list",)):
        run = await o2a(*args, env=env)
        assert run.returncode == 1, run
        assert len(run.stderr_lines) == 1, run
        assert "cannot reach Temporal" in run.stderr, run
        assert "Traceback" not in run.stdout + run.stderr, run


async def test_malformed_temporal_address_is_one_line(settings: Settings):
    env = cli_env("127.0.0.1:notaport", settings)
    run = await o2a("status", "ANY-1", env=env)
    assert run.returncode in (1, 2), run
    assert len(run.stderr_lines) == 1, run
    assert "Traceback" not in run.stdout + run.stderr, run


async def o2a_into_closed_pipe(*args: str, env: Mapping[str, str]) -> Run:
    """Run a command whose stdout is a pipe nobody reads any more, as after ``| head -1``
    has taken its line: every write to stdout fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = await asyncio.create_subprocess_exec(
            *O2A,
            *args,
            cwd=ROOT,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(tuple(args), proc.returncode, "", err.decode(errors="replace"))


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
async def test_output_into_a_closed_pipe_exits_1_without_a_traceback(
    settings: Settings, buffered: bool
):
    """Buffered, the write fails at the exit's flush; unbuffered, in the command's print."""
    env = cli_env(f"127.0.0.1:{free_port()}", settings)
    if buffered:
        del env["PYTHONUNBUFFERED"]
    run = await o2a_into_closed_pipe("plan", str(SAMPLES / "triple_play.xml"), env=env)
    assert (run.returncode, run.stderr) == (1, ""), run


async def test_submit_into_a_closed_pipe_starts_the_order_without_a_traceback(
    client: Client, env: dict[str, str], order_number: str, tmp_path: Path
):
    order = write_xml_order(tmp_path, order_number)
    run = await o2a_into_closed_pipe("submit", str(order), env=env)
    assert (run.returncode, run.stderr) == (1, ""), run
    assert await workflow_exists(client, ids.order_workflow_id(order_number))


async def test_resolve_of_completed_order_exits_1(
    temporal_address: str, settings: Settings, order_number: str, tmp_path: Path
):
    env = cli_env(temporal_address, settings)
    path = tmp_path / "order.json"
    path.write_text(json.dumps(sample_json(order_number)))
    async with cli_worker(env, tmp_path / "worker.log"):
        submitted = await o2a("submit", str(path), "--wait", env=env, timeout=120)
        assert submitted.returncode == 0, submitted
        assert "state completed" in submitted.stdout, submitted
    resolved = await o2a("resolve", order_number, env=env)
    assert resolved.returncode == 1, resolved
    assert resolved.stderr_lines == [
        f"o2a: order {order_number} is completed: only a running order can be resolved"
    ], resolved

    unknown = await o2a("resolve", f"UNKNOWN-{uuid.uuid4().hex[:8]}", env=env)
    assert unknown.returncode == 1, unknown
    assert len(unknown.stderr_lines) == 1, unknown


# --- hostile and broken input ------------------------------------------------------------------

XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'
ROOT_TAG = "so:ProcessSalesOrderFulfillmentEBM"


def _with_doctype(order_number: str, doctype: str, entity_ref: str) -> bytes:
    """The sample order with a DOCTYPE prolog and an entity reference in its TypeCode."""
    body = etree.tostring(sample_xml(order_number).getroot()).decode()
    assert "<so:TypeCode>SALES ORDER</so:TypeCode>" in body
    body = body.replace(
        "<so:TypeCode>SALES ORDER</so:TypeCode>", f"<so:TypeCode>{entity_ref}</so:TypeCode>"
    )
    return XML_DECL + f"{doctype}\n{body}".encode()


XXE_DOCTYPE = f'<!DOCTYPE {ROOT_TAG} [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


def xxe(tmp: Path, n: str) -> Path:
    path = tmp / "xxe.xml"
    path.write_bytes(_with_doctype(n, XXE_DOCTYPE, "&xxe;"))
    return path


def xxe_utf16(tmp: Path, n: str) -> Path:
    text = _with_doctype(n, XXE_DOCTYPE, "&xxe;").decode().replace('"UTF-8"', '"UTF-16"')
    path = tmp / "xxe16.xml"
    path.write_bytes(text.encode("utf-16"))
    return path


def xxe_parameter_entity(tmp: Path, n: str) -> Path:
    doctype = f'<!DOCTYPE {ROOT_TAG} [<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;]>'
    path = tmp / "xxe-pe.xml"
    path.write_bytes(_with_doctype(n, doctype, "SALES ORDER"))
    return path


def billion_laughs(tmp: Path, n: str) -> Path:
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    doctype = f"<!DOCTYPE {ROOT_TAG} [{''.join(entities)}]>"
    path = tmp / "laughs.xml"
    path.write_bytes(_with_doctype(n, doctype, "&lol9;"))
    return path


def not_well_formed(tmp: Path, n: str) -> Path:
    data = xml_bytes(sample_xml(n))
    path = tmp / "broken.xml"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def unclosed_tag(tmp: Path, n: str) -> Path:
    data = xml_bytes(sample_xml(n)).replace(b"</so:TypeCode>", b"</so:TypeCod>", 1)
    path = tmp / "mismatch.xml"
    path.write_bytes(data)
    return path


def empty_file(tmp: Path, n: str) -> Path:
    path = tmp / "empty.xml"
    path.write_bytes(b"")
    return path


def whitespace_only(tmp: Path, n: str) -> Path:
    path = tmp / "blank.xml"
    path.write_bytes(b" \n\t\n")
    return path


def wrong_namespace(tmp: Path, n: str) -> Path:
    data = xml_bytes(sample_xml(n)).replace(SO_NS.encode(), SO_NS.replace("V2", "V9").encode())
    path = tmp / "wrong-ns.xml"
    path.write_bytes(data)
    return path


def missing_order_number(tmp: Path, n: str) -> Path:
    tree = sample_xml(n)
    ident = tree.getroot().find("so:DataArea/so:ProcessSalesOrderFulfillment/cc:Identification", NS)
    assert ident is not None
    number = ident.find("cc:ID", NS)
    assert number is not None
    ident.remove(number)
    path = tmp / "no-number.xml"
    path.write_bytes(xml_bytes(tree))
    return path


def non_numeric_revision(tmp: Path, n: str) -> Path:
    tree = sample_xml(n)
    revision = tree.getroot().find(
        "so:DataArea/so:ProcessSalesOrderFulfillment/cc:Identification/cc:Revision/cc:Number", NS
    )
    assert revision is not None
    revision.text = "two"
    path = tmp / "revision.xml"
    path.write_bytes(xml_bytes(tree))
    return path


UNKNOWN_CLASS = "Quantum Entanglement Service Class"


def unknown_product_class(tmp: Path, n: str) -> Path:
    tree = sample_xml(n)
    codes = list(tree.getroot().iter(f"{{{CC_NS}}}PrimaryClassificationCode"))
    assert codes
    codes[0].text = UNKNOWN_CLASS
    path = tmp / "unknown-class.xml"
    path.write_bytes(xml_bytes(tree))
    return path


def unknown_product_class_json(tmp: Path, n: str) -> Path:
    raw = sample_json(n)
    lines = raw["lines"]
    assert isinstance(lines, list)
    product = next(line for line in lines if line["item"].get("product_class"))
    product["item"]["product_class"] = UNKNOWN_CLASS
    path = tmp / "unknown-class.json"
    path.write_text(json.dumps(raw))
    return path


def malformed_json(tmp: Path, n: str) -> Path:
    text = json.dumps(sample_json(n), indent=2)
    path = tmp / "broken.json"
    path.write_text(text.rstrip().rstrip("}") + ',\n  "lines": [\n')
    return path


def json_wrong_type(tmp: Path, n: str) -> Path:
    raw = sample_json(n)
    raw["revision"] = "two"
    path = tmp / "revision.json"
    path.write_text(json.dumps(raw))
    return path


def oversized(tmp: Path, n: str) -> Path:
    path = tmp / "huge.xml"
    with path.open("wb") as out:
        out.write(xml_bytes(sample_xml(n)))
        out.truncate(40 * 1024 * 1024 + 1)
    return path


def missing_file(tmp: Path, n: str) -> Path:
    return tmp / "does-not-exist.xml"


def directory_instead_of_file(tmp: Path, n: str) -> Path:
    path = tmp / "a-directory.xml"
    path.mkdir()
    return path


def _with_spec(tmp: Path, n: str, name: str, value: str) -> Path:
    raw = sample_json(n)
    lines = raw["lines"]
    assert isinstance(lines, list)
    product = next(line for line in lines if line["item"].get("product_class"))
    specs = [s for s in product["item"].get("specifications", []) if s["name"] != name]
    product["item"]["specifications"] = [*specs, {"name": name, "value": value}]
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(raw))
    return path


def fault_unknown_step(tmp: Path, n: str) -> Path:
    return _with_spec(tmp, n, "SimulatedFault", "explode:BOOM")


def fault_bad_count(tmp: Path, n: str) -> Path:
    return _with_spec(tmp, n, "SimulatedFault", "activate:BOOM:many")


def fault_too_many_parts(tmp: Path, n: str) -> Path:
    return _with_spec(tmp, n, "SimulatedFault", "activate:BOOM:1:2")


def delay_not_a_number(tmp: Path, n: str) -> Path:
    return _with_spec(tmp, n, "SimulatedDelay", "soon")


BAD_INPUTS: dict[str, tuple[Callable[[Path, str], Path], str | None]] = {
    "xxe": (xxe, None),
    "xxe-utf16": (xxe_utf16, None),
    "xxe-parameter-entity": (xxe_parameter_entity, None),
    "billion-laughs": (billion_laughs, None),
    "not-well-formed": (not_well_formed, None),
    "mismatched-tag": (unclosed_tag, None),
    "empty-file": (empty_file, None),
    "whitespace-only": (whitespace_only, None),
    "wrong-namespace": (wrong_namespace, None),
    "missing-order-number": (missing_order_number, "order number"),
    "non-numeric-revision": (non_numeric_revision, "two"),
    "unknown-product-class": (unknown_product_class, UNKNOWN_CLASS),
    "unknown-product-class-json": (unknown_product_class_json, UNKNOWN_CLASS),
    "malformed-json": (malformed_json, "JSON"),
    "json-wrong-type": (json_wrong_type, "revision"),
    "40-mb": (oversized, None),
    "missing-file": (missing_file, None),
    "directory": (directory_instead_of_file, None),
    "simulated-fault-unknown-step": (fault_unknown_step, "SimulatedFault"),
    "simulated-fault-bad-count": (fault_bad_count, "SimulatedFault"),
    "simulated-fault-too-many-parts": (fault_too_many_parts, "SimulatedFault"),
    "simulated-delay-not-a-number": (delay_not_a_number, "SimulatedDelay"),
}


@pytest.mark.parametrize("server", ["session-server", "no-server"])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_input_is_refused_with_one_line(
    case: str,
    server: str,
    client: Client,
    temporal_address: str,
    settings: Settings,
    order_number: str,
    tmp_path: Path,
):
    make, expected = BAD_INPUTS[case]
    path = make(tmp_path, order_number)
    # Validation happens before any connection: it must not need a server at all.
    address = temporal_address if server == "session-server" else f"127.0.0.1:{free_port()}"
    env = cli_env(address, settings)
    run = await o2a("submit", str(path), "--wait", env=env, timeout=60)

    assert run.returncode == 2, run
    assert len(run.stderr_lines) == 1, run
    assert run.stderr_lines[0].startswith("o2a: "), run
    assert "Traceback" not in run.stdout + run.stderr, run
    assert "root:" not in run.stdout + run.stderr, run  # nothing of /etc/passwd leaks
    assert len(run.stderr) < 2000, run
    if expected is not None:
        assert expected in run.stderr, run
    assert not await workflow_exists(client, ids.order_workflow_id(order_number)), run


@pytest.mark.parametrize(
    "case",
    ["unknown-product-class", "not-well-formed", "missing-file", "simulated-fault-bad-count"],
)
async def test_plan_of_bad_input_is_one_line_and_exit_2(
    case: str, settings: Settings, order_number: str, tmp_path: Path
):
    make, expected = BAD_INPUTS[case]
    env = cli_env(f"127.0.0.1:{free_port()}", settings)  # nothing listens: plan needs no server
    run = await o2a("plan", str(make(tmp_path, order_number)), env=env)
    assert run.returncode == 2, run
    assert len(run.stderr_lines) == 1 and run.stderr_lines[0].startswith("o2a: "), run
    assert run.stdout == "" and "Traceback" not in run.stderr, run
    if expected is not None:
        assert expected in run.stderr, run


# --- `o2a plan` ---------------------------------------------------------------------------------


async def test_plan_prints_the_orchestration_plan_without_a_server(settings: Settings):
    env = cli_env(f"127.0.0.1:{free_port()}", settings)  # nothing listens: nothing is started
    path = str(SAMPLES / "triple_play.xml")
    run = await o2a("plan", path, env=env)
    assert run.returncode == 0, run
    rows = run.stdout.splitlines()
    assert rows[0] == "Order TP-1001 revision 1: 12 lines, 7 components", run
    assert rows[2].split()[:4] == ["#", "COMPONENT", "FUNCTION", "TARGET"], run
    assert {"DEPENDS", "EXPECTED", "PONR", "LINES"} <= set(rows[2].split()), run
    fixed = next(r for r in rows if PROV_FIXED in r)
    assert "activate (soft)" in fixed and "1.1.1,1.1.2" in fixed, run

    as_json = await o2a("plan", path, "--json", env=env)
    assert as_json.returncode == 0, as_json
    plan = json.loads(as_json.stdout)
    assert (plan["order_number"], plan["revision"]) == ("TP-1001", 1)
    components = {c["id"]: c for c in plan["components"]}
    assert len(components) == 7 and {PROV_FIXED, PROV_BB, SHIP} <= set(components)
    assert components[PROV_FIXED]["point_of_no_return"] == "activate"


# --- `o2a revise` and `o2a cancel` -------------------------------------------------------------


def revision_file(directory: Path, order_number: str, sample: str) -> Path:
    tree = etree.parse(str(SAMPLES / "revisions" / sample))
    ident = tree.getroot().find("so:DataArea/so:ProcessSalesOrderFulfillment/cc:Identification", NS)
    assert ident is not None
    number = ident.find("cc:ID", NS)
    assert number is not None
    number.text = order_number
    path = directory / f"{order_number}-{sample}"
    path.write_bytes(xml_bytes(tree))
    return path


async def status_json(order_number: str, env: Mapping[str, str]) -> dict[str, Any]:
    run = await o2a("status", order_number, "--json", env=env)
    assert run.returncode == 0, run
    status: dict[str, Any] = json.loads(run.stdout)
    return status


async def test_a_cancel_mode_order_cannot_be_submitted(
    client: Client, temporal_address: str, settings: Settings, order_number: str, tmp_path: Path
):
    path = revision_file(tmp_path, order_number, "triple_play_cancel.xml")
    run = await o2a("submit", str(path), env=cli_env(temporal_address, settings))
    assert run.returncode == 2 and len(run.stderr_lines) == 1, run
    assert "FulfillmentModeCode CANCEL" in run.stderr, run
    assert not await workflow_exists(client, ids.order_workflow_id(order_number)), run
    # Refused before connecting: with no server it is still bad input, exit 2.
    no_server = cli_env(f"127.0.0.1:{free_port()}", settings)
    offline = await o2a("submit", str(path), env=no_server)
    assert offline.returncode == 2 and "FulfillmentModeCode CANCEL" in offline.stderr, offline


async def test_revise_and_cancel_wait_for_their_outcomes(
    client: Client,
    worker: StartWorker,
    env: dict[str, str],
    order_number: str,
    tmp_path: Path,
):
    revised, cancelled = f"{order_number}R", f"{order_number}C"
    async with held_mid_flight(worker) as gate:  # both orders stay mid-flight until released
        for number in (revised, cancelled):
            run = await o2a("submit", str(write_xml_order(tmp_path, number)), env=env)
            assert run.returncode == 0, run

        async def both_held() -> bool:
            return len(gate.held) == 2

        await until(both_held)
        combined = revision_file(tmp_path, revised, "triple_play_r2_combined.xml")
        revise = asyncio.create_task(o2a("revise", str(combined), "--wait", env=env))
        cancel = asyncio.create_task(
            o2a("cancel", cancelled, "--reason", "customer moved", "--wait", env=env)
        )
        await signalled(client, ids.order_workflow_id(revised), "revise")
        await signalled(client, ids.order_workflow_id(cancelled), "cancel")
        gate.release()
        revise_run, cancel_run = await revise, await cancel
        after_revision = await closed(client, revised)
        after_cancel = await closed(client, cancelled)

    assert revise_run.returncode == 0, revise_run
    assert revise_run.stdout.splitlines() == [f"revision 2 of order {revised} sent", "accepted"]
    assert cancel_run.returncode == 0, cancel_run
    assert cancel_run.stdout.splitlines() == [
        f"cancel of order {cancelled} sent: customer moved",
        "cancelled",
    ]
    assert after_revision.state is OrderState.COMPLETED and after_revision.revision == 2
    assert [(r.number, r.outcome, r.kind) for r in after_revision.revisions] == [
        (2, "accepted", "revision")
    ]
    lines = {line.id: line.status.value for line in after_revision.lines}
    assert {lines[i] for i in ("1.3", "1.3.1", "1.3.2", "1.3.3")} == {"CANCELLED"}
    assert lines["1.2.3"] == "COMPLETE"
    components = {c.id: c.state.value for c in after_revision.components}
    assert components[PROV_BB] == "cancelled" and components[SHIP] == "cancelled"
    assert after_cancel.state is OrderState.CANCELLED
    assert after_cancel.status.value == "CANCELLED"

    # A finished order takes no more changes: exit 1, one line, and it stays as it was.
    refused = await o2a("cancel", revised, env=env)
    assert refused.returncode == 1 and refused.stderr_lines == [
        f"o2a: order {revised} is completed: only a running order can be cancelled"
    ], refused
    again = await o2a(
        "revise", str(revision_file(tmp_path, cancelled, "triple_play_cancel.xml")), env=env
    )
    assert again.returncode == 1 and again.stderr_lines == [
        f"o2a: order {cancelled} is cancelled: only a running order can be revised"
    ], again
    assert (await status_json(revised, env))["state"] == "completed"


async def test_stale_revision_and_dry_run_of_a_running_order(
    client: Client,
    worker: StartWorker,
    env: dict[str, str],
    order_number: str,
    tmp_path: Path,
):
    first = write_xml_order(tmp_path, order_number)
    removal = str(revision_file(tmp_path, order_number, "triple_play_r2_remove_bundle.xml"))
    async with held_mid_flight(worker) as gate:
        run = await o2a("submit", str(first), env=env)
        assert run.returncode == 0, run
        await gate.wait_reached()

        stale = await o2a("revise", str(first), "--wait", env=env)
        assert stale.returncode == 1, stale
        assert stale.stdout.splitlines() == [
            f"revision 1 of order {order_number} sent",
            "rejected: revision 1 is not higher than the current 1",
        ], stale

        preview = await o2a("revise", removal, "--dry-run", env=env)
        assert preview.returncode == 0, preview
        rows = preview.stdout.splitlines()
        assert rows[0].startswith(f"Revision 2 of order {order_number} against revision 1")
        assert next(r for r in rows if r.startswith(PROV_BB)).split()[1] == "UNDO", preview
        assert next(r for r in rows if r.startswith(PROV_FIXED)).split()[1] == "NONE", preview
        as_json = await o2a("revise", removal, "--dry-run", "--json", env=env)
        assert as_json.returncode == 0, as_json
        body = json.loads(as_json.stdout)
        kinds = {c["component_id"]: c["kind"] for c in body["plan"]["compensations"]}
        assert kinds[PROV_BB] == "undo" and body["hard_ponr_violations"] == []
        stale_preview = await o2a("revise", str(first), "--dry-run", env=env)
        assert stale_preview.returncode == 1, stale_preview
        assert "not higher than the current 1" in stale_preview.stderr, stale_preview

        status = await status_json(order_number, env)  # the dry runs sent nothing
        assert status["revision"] == 1 and status["state"] == "in_progress", status
        assert [r["outcome"] for r in status["revisions"]] == ["rejected"], status
        table = await o2a("status", order_number, env=env)
        rows = table.stdout.splitlines()
        assert rows[rows.index("REVISIONS") + 1].split() == ["NUMBER", "KIND", "OUTCOME", "REASON"]
        gate.release()
        assert (await closed(client, order_number)).state is OrderState.COMPLETED


async def test_revise_and_cancel_refuse_unknown_orders_and_bad_input(
    temporal_address: str, settings: Settings, order_number: str, tmp_path: Path
):
    env = cli_env(temporal_address, settings)
    revision = str(revision_file(tmp_path, order_number, "triple_play_r2_add_line.xml"))
    for args in (("revise", revision), ("revise", revision, "--dry-run"), ("cancel", order_number)):
        unknown = await o2a(*args, env=env)
        assert unknown.returncode == 1, unknown
        assert unknown.stderr_lines == [
            f"o2a: no order {order_number} (workflow order-{order_number})"
        ], unknown
    bad = await o2a("revise", str(unknown_product_class(tmp_path, order_number)), env=env)
    assert bad.returncode == 2 and UNKNOWN_CLASS in bad.stderr, bad
    json_alone = await o2a("revise", revision, "--json", env=env)
    assert json_alone.returncode == 2 and len(json_alone.stderr_lines) == 1, json_alone
    assert "Traceback" not in bad.stderr + json_alone.stderr


# --- operator actions ---------------------------------------------------------------------------


async def test_operator_commands_are_answered_by_the_order(
    client: Client,
    worker: StartWorker,
    env: dict[str, str],
    order_number: str,
    tmp_path: Path,
):
    me = getpass.getuser()
    async with held_mid_flight(worker) as gate:
        run = await o2a("submit", str(write_xml_order(tmp_path, order_number)), env=env)
        assert run.returncode == 0, run
        await gate.wait_reached()
        for command, reason in (
            ("resume", "only a suspended order can be resumed"),
            ("resolve", "nothing has failed"),
        ):
            refused = await o2a(command, order_number, env=env)
            assert refused.returncode == 1 and len(refused.stderr_lines) == 1, refused
            assert reason in refused.stderr and order_number in refused.stderr, refused

        suspend = ("suspend", order_number, "--reason", "checking", "--operator", "alice")
        suspended = await o2a(*suspend, env=env)
        assert suspended.returncode == 0, suspended
        assert suspended.stdout.startswith(f"suspend of order {order_number} accepted by alice")
        assert suspended.stdout.rstrip().endswith(": checking"), suspended
        twice = await o2a(*suspend, env=env)
        assert twice.returncode == 1 and "already suspended" in twice.stderr, twice
        handle = client.get_workflow_handle(ids.order_workflow_id(order_number))
        assert (await wait_for_state(handle, OrderState.SUSPENDED)).state is OrderState.SUSPENDED

        resumed = await o2a("resume", order_number, env=env)
        assert resumed.returncode == 0, resumed
        assert f"resume of order {order_number} accepted by {me}" in resumed.stdout, resumed
        aborted = await o2a("abort", order_number, "--reason", "duplicate", env=env)
        assert aborted.returncode == 0, aborted
        final = await closed(client, order_number)
    assert final.state is OrderState.ABORTED
    again = await o2a("abort", order_number, env=env)
    assert again.returncode == 1 and again.stderr_lines == [
        f"o2a: order {order_number} is aborted: only a running order can be aborted"
    ], again
    table = (await o2a("status", order_number, env=env)).stdout.splitlines()
    assert "state aborted" in table[0], table
    actions = table[table.index("OPERATOR ACTIONS") + 1 :]
    assert actions[0].split() == ["ACTION", "OPERATOR", "WHEN", "REASON"], table
    assert [(row.split()[0], row.split()[1], row.split()[-1]) for row in actions[1:]] == [
        ("suspend", "alice", "checking"),
        ("resume", me, "-"),
        ("abort", me, "duplicate"),
    ], table


async def test_submit_wait_returns_when_the_order_falls_out(
    client: Client,
    worker: StartWorker,
    env: dict[str, str],
    order_number: str,
    tmp_path: Path,
):
    faulty = _with_spec(tmp_path, order_number, "SimulatedFault", "activate:PORT_BUSY")
    async with worker():
        submitted = await o2a("submit", str(faulty), "--wait", env=env)
        assert submitted.returncode == 1, submitted
        rows = submitted.stdout.splitlines()
        assert any(f"Order {order_number}" in r and "state failed" in r for r in rows), submitted
        header, fallout = rows[rows.index("FALLOUT") + 1 : rows.index("FALLOUT") + 3]
        assert header.split() == [
            *("ID", "COMPONENT", "STEP", "LINES", "CODE", "STATE", "RAISED", "MESSAGE")
        ], submitted
        assert fallout.split()[1:6] == [PROV_FIXED, "activate", "1.1.1,1.1.2", "PORT_BUSY", "open"]

        wrong = await o2a("resolve", order_number, "--component", SHIP, env=env)
        assert wrong.returncode == 1 and "has not failed" in wrong.stderr, wrong
        aborted = await o2a("abort", order_number, "--reason", "gave up", env=env)
        assert aborted.returncode == 0, aborted
        assert (await closed(client, order_number)).state is OrderState.ABORTED


# --- the bus: `o2a publish`, `o2a messages`, `o2a listen` ------------------------------------


async def test_publish_and_read_the_messages_of_an_order_and_a_dead_letter(
    client: Client,
    worker: StartWorker,
    temporal_address: str,
    bus_settings: Settings,
    order_number: str,
    tmp_path: Path,
):
    assert bus_settings.nats_url is not None
    env = cli_env(
        temporal_address,
        bus_settings,
        O2A_NATS_URL=bus_settings.nats_url,
        O2A_SUBJECT_PREFIX=bus_settings.subject_prefix,
    )
    prefix = bus_settings.subject_prefix
    order = tmp_path / "order.xml"
    order.write_bytes(sample_document(order_number))
    invalid = tmp_path / "invalid.xml"
    invalid.write_bytes(
        sample_document(f"{order_number}-X").replace(b"Fibre 500", b"<Fibre>500</Fibre>")
    )
    stream = f"{prefix.upper()}_SALESORDER"
    published = await o2a("publish", str(order), env=env)
    assert published.stdout == (
        f"{order}: stored on {prefix}.crm.salesorder (stream {stream}, sequence 1)\n"
    ), published
    again = await o2a("publish", str(order), env=env)  # CRM sending it again: one message
    assert again.stdout == (
        f"{order}: not stored again, a duplicate of the message stored on "
        f"{prefix}.crm.salesorder (stream {stream}, sequence 1)\n"
    ), again
    assert (await o2a("publish", str(invalid), env=env)).returncode == 0

    async with (
        worker(bus_settings),
        bus_connection(bus_settings) as connection,
        running_listener(bus_settings, same_client(client)) as listener,
    ):
        await acked(connection, listener, 2)
        assert (await closed(client, order_number)).state is OrderState.COMPLETED

    inbound = await o2a("messages", "crm.salesorder", env=env)
    assert [line.split() for line in inbound.stdout.splitlines()] == [
        ["1", ebm_id_of(order), "ProcessSalesOrderFulfillmentEBM"],
        ["2", ebm_id_of(invalid), "ProcessSalesOrderFulfillmentEBM"],
    ], inbound
    updates = await o2a("messages", "crm.salesorder.update", "--order", order_number, env=env)
    rows = [line.split() for line in updates.stdout.splitlines()]
    assert rows and all(
        message_id.startswith(f"USO.{order_number}.") and root == "UpdateSalesOrderEBM"
        for _, message_id, root in rows
    ), updates
    letters = await o2a("messages", f"{prefix}.crm.salesorder.deadletter", "--xml", env=env)
    first, *document = letters.stdout.splitlines()
    assert first.split()[1:3] == [
        ids.dead_letter_message_id(None, 2, invalid.read_bytes()),
        "Fault",
    ], letters
    assert first.endswith("reason: Name must hold text only, not elements"), letters
    assert f"<corecom:EBMID>{ebm_id_of(invalid)}</corecom:EBMID>" in "\n".join(document)


def ebm_id_of(path: Path) -> str:
    found = etree.parse(str(path)).findtext("cc:EBMHeader/cc:EBMID", namespaces=NS)
    assert found
    return found


async def test_bus_commands_refuse_in_one_line(
    bus_settings: Settings, temporal_address: str, settings: Settings, tmp_path: Path
):
    assert bus_settings.nats_url is not None
    env = cli_env(temporal_address, settings, O2A_NATS_URL=bus_settings.nats_url)
    missing = await o2a("publish", str(tmp_path / "missing.xml"), env=env)
    nowhere = await o2a("messages", "crm.nowhere", env=env)
    no_bus = await o2a("listen", env=cli_env(temporal_address, settings))
    unreachable = await o2a(
        "publish",
        str(SAMPLES / "triple_play.xml"),
        env={**env, "O2A_NATS_URL": f"nats://127.0.0.1:{free_port()}"},
    )
    for run, code, text in [
        (missing, 2, "missing.xml: No such file or directory"),
        (nowhere, 2, "no o2a stream stores o2a.crm.nowhere"),
        (no_bus, 2, "O2A_NATS_URL is not set"),
        (unreachable, 1, "cannot reach NATS at nats://127.0.0.1:"),
    ]:
        assert run.returncode == code and len(run.stderr_lines) == 1, run
        assert text in run.stderr_lines[0], run
        assert "Traceback" not in run.stderr, run


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
async def test_worker_processes_stop_with_their_parent(
    env: dict[str, str], tmp_path: Path, stop: str
) -> None:
    """`o2a worker --processes 2`: SIGTERM to the parent stops both children; a parent
    killed with SIGKILL (which passes nothing on) leaves no child polling as an orphan."""
    worker = await Background.start("worker", "--processes", "2", env=env, log=tmp_path / "w.log")
    try:
        await wait_until(
            lambda: worker.output().count("polling task queue") == 2, "two children", 90
        )
        children = descendants(worker.pid)
        assert len(children) >= 2, children
        os.kill(worker.pid, getattr(signal, stop))
        await wait_until(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in children),
            "the children to exit",
            20,
        )
        assert worker.output().count("o2a worker stopped") == 2, worker.output()
        assert "Fatal Python error" not in worker.output()
    finally:
        await worker.stop()
