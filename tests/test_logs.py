"""Structured logs (o2a/logs.py): the real `o2a worker` with O2A_LOG_FORMAT=json runs a
triple play; every line it logs is JSON, those from workflow and activity code name the
order, its workflow and (in a SOM child) the component, and none holds the customer's
address or phone number. The API's request line carries the same fields and its trace."""

from __future__ import annotations

import io
import json
import logging
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.client import Client

from o2a import ids
from o2a.config import Settings
from o2a.logs import JsonFormatter, OrderFields
from o2a.models import OrderState
from tests.conftest import free_port
from tests.support import (
    API_KEYS,
    O2A,
    Background,
    StartWorker,
    cli_env,
    closed,
    running_api,
    sample,
    sample_document,
    start,
    until_healthy,
)

CUSTOMER_DATA = ["Keizersgracht", "1016 DV", "+31201234567", "31201234567", "de Vries"]
"""The triple play's service address, porting number and account name."""


async def test_the_worker_logs_json_lines_naming_order_workflow_and_component(
    client: Client, temporal_address: str, settings: Settings, order_number: str, tmp_path: Path
) -> None:
    env = cli_env(temporal_address, settings, O2A_LOG_FORMAT="json")
    errors = tmp_path / "worker.stderr"
    worker = await Background.start("worker", env=env, log=tmp_path / "worker.out", errors=errors)
    try:
        await worker.wait_for_output("polling task queue", timeout=60)
        await start(client, settings, sample("triple_play.xml", order_number))
        assert (await closed(client, order_number)).state is OrderState.COMPLETED
    finally:
        await worker.stop()

    text = errors.read_text()
    records = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    order_id = ids.order_workflow_id(order_number)
    code = {"temporalio.workflow", "temporalio.activity"}  # workflow and activity code
    temporal = [r for r in records if r["logger"] in code]
    assert temporal, text
    for record in temporal:
        assert record["order"] == order_number, record
        workflow_id: str = record["workflow_id"]
        assert workflow_id == order_id or workflow_id.startswith(order_id + "/"), record
        if "/" in workflow_id:  # a SOM child's line names its component
            assert record.get("component") == workflow_id.partition("/")[2], record
        assert "({" not in record["message"], record  # the SDK's info dict: the fields say it
    # The order's own steps and messages about a component name it too.
    sent = [r for r in temporal if r["message"].startswith("sent PPO.")]
    assert sent and all(r.get("component") for r in sent), sent
    synced = [r for r in temporal if "component SyncCustomer" in r["message"]]
    assert synced and all(r["component"].startswith("SyncCustomer.") for r in synced), synced
    messages = {(r["logger"], r["message"]) for r in temporal}
    assert ("temporalio.workflow", "order completed") in messages, messages
    children = [r for r in temporal if r.get("component")]
    assert {r["logger"] for r in children} == code, children
    for data in CUSTOMER_DATA:
        assert data not in text + worker.output(), data


@pytest.fixture
def api_lines() -> Iterator[io.StringIO]:
    """The API's log lines as `o2a api` writes them with O2A_LOG_FORMAT=json."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.addFilter(OrderFields())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("o2a.api")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_the_api_request_line_names_the_order_and_the_callers_trace(
    client: Client,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
    api_lines: io.StringIO,
) -> None:
    caller = secrets.token_hex(16)
    async with worker(), running_api(client, settings) as api, httpx.AsyncClient() as http:
        headers = api.headers(
            "integrator",
            traceparent=f"00-{caller}-{secrets.token_hex(8)}-01",
            **{"Content-Type": "application/xml"},
        )
        created = await http.post(
            f"{api.url}/aia/ProcessSalesOrderFulfillment",
            content=sample_document(order_number),
            headers=headers,
        )
        assert created.status_code == 201, created.text
        await closed(client, order_number)
    records = [json.loads(line) for line in api_lines.getvalue().splitlines()]
    posted = [r for r in records if r["message"].startswith("POST ")]
    assert len(posted) == 1, records
    assert posted[0]["order"] == order_number, posted
    assert posted[0]["workflow_id"] == ids.order_workflow_id(order_number), posted
    assert posted[0]["trace_id"] == caller, posted


async def test_o2a_api_logs_json_lines(
    temporal_address: str, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = cli_env(temporal_address, settings, O2A_API_KEYS=API_KEYS, O2A_LOG_FORMAT="json")
    errors = tmp_path / "api.stderr"
    api = await Background.start(
        "api", "--port", str(port), env=env, log=tmp_path / "api.out", errors=errors
    )
    try:
        await api.wait_for_output("o2a API on")
        await until_healthy(port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            refused = await http.get("/api/v1/orders", headers={"Authorization": "Bearer x"})
            assert refused.status_code == 401, refused.text
    finally:
        await api.stop()
    records = [json.loads(line) for line in errors.read_text().splitlines()]
    lines = {r["message"].rsplit(" ", 3)[0] for r in records if r["logger"] == "o2a.api"}
    assert {"GET /healthz 200", "GET /api/v1/orders 401"} <= lines, records


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("O2A_LOG_FORMAT", "xml", "o2a: O2A_LOG_FORMAT: unknown format 'xml' (one of text, json)"),
        ("O2A_LOG_LEVEL", "LOUD", "o2a: O2A_LOG_LEVEL: unknown level 'LOUD'"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "o2a: OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'"),
    ],
)
def test_a_bad_variable_stops_the_worker_in_one_line(
    temporal_address: str, settings: Settings, variable: str, value: str, expected: str
) -> None:
    done = subprocess.run(
        [*O2A, "worker"],
        env=cli_env(temporal_address, settings, **{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(expected), done
    assert done.stdout == "", done


@given(st.text(min_size=1), st.text(min_size=1))
def test_the_order_and_component_are_read_back_from_a_workflow_id(order: str, line: str) -> None:
    component = f"Provision.BroadbandProvisioningSystem.{ids.escape_component(line)}"
    assert ids.order_of_workflow(ids.order_workflow_id(order)) == (order, None)
    child = ids.provisioning_workflow_id(order, component)
    assert ids.order_of_workflow(child) == (order, component)
