"""Metrics on real parts: `o2a worker --metrics-port` (a process, on the bus; queries to the
closed orders then replay their whole histories, which must count nothing) and the API's
``/metrics``, scraped over HTTP while real orders run; the Grafana dashboard and the
Prometheus scrape config under deploy/ are checked against what they scrape."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from temporalio.client import Client

from o2a import ids, metrics
from o2a.config import Settings
from o2a.errors import InputError
from o2a.metrics import configured_port
from o2a.models import CustomerOrder, OrderState
from o2a.server import ServerError
from o2a.service import OrderService
from o2a.tmf622 import API_ROOT
from tests.conftest import free_port
from tests.support import (
    O2A,
    ROOT,
    Background,
    Samples,
    cli_env,
    closed,
    quick_triple_play,
    running_api,
    scrape,
    set_spec,
    total,
    until,
)
from workers.simulate import run_simulator
from workflows.contracts.customer_order import STATUS_QUERY

DASHBOARD = ROOT / "deploy/grafana/dashboards/o2a.json"
SCRAPE_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
NOT_EXERCISED = {"o2a_jeopardies_raised_total"}
"""Dashboard metrics no order here raises (a jeopardy needs a component late by its
catalog duration: tests/test_timers.py counts it); they must still be declared in the code
that emits them."""
EMITTERS = [ROOT / "workflows/order_metrics.py", ROOT / "o2a/metrics.py"]


def faulty(order_number: str) -> CustomerOrder:
    """A triple play whose broadband activation fails for good: fallout."""
    order = quick_triple_play(order_number)
    return set_spec(order, "1.1.1", "SimulatedFault", "activate:PORT_UNAVAILABLE:99")


def dashboard_metrics() -> set[str]:
    """Metric names in the dashboard's PromQL: identifiers that are neither functions,
    keywords, nor label names (those sit inside braces or after by/without)."""
    exprs = [
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel.get("targets", [])
    ]
    names: set[str] = set()
    for expr in exprs:
        bare = re.sub(r"\{[^}]*\}|\b(by|without)\s*\([^)]*\)|\[[^\]]*\]", "", expr)
        names |= {
            n
            for n in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?!\s*\()", bare)
            if n.startswith(("o2a_", "temporal_"))
        }
    return names


async def test_business_metrics_move_once_and_the_dashboard_names_what_is_emitted(
    client: Client,
    bus_settings: Settings,
    temporal_address: str,
    order_number: str,
    tmp_path: Path,
) -> None:
    settings = bus_settings
    assert settings.nats_url is not None
    port = free_port()
    env = cli_env(
        temporal_address,
        settings,
        O2A_NATS_URL=settings.nats_url,
        O2A_SUBJECT_PREFIX=settings.subject_prefix,
    )
    worker = await Background.start(
        "worker", "--metrics-port", str(port), env=env, log=tmp_path / "worker.log"
    )
    endpoint = f"http://127.0.0.1:{port}/metrics"
    service = OrderService(client, settings)
    stop = asyncio.Event()
    simulator = asyncio.create_task(run_simulator(settings, stop))
    try:
        await worker.wait_for_output("o2a worker polling")
        async with (
            running_api(client, settings) as api,
            httpx.AsyncClient(base_url=api.url, timeout=10) as http,
        ):
            await service.submit(quick_triple_play(order_number))
            await service.submit(faulty(f"{order_number}-F"))
            assert (await closed(client, order_number)).state is OrderState.COMPLETED
            failed: Samples = {}

            async def fallout_open() -> bool:  # read from the failed order's status
                failed.update(await scrape(f"{api.url}/metrics"))
                return total(failed, "o2a_fallouts_open") > 0

            await until(fallout_open)
            assert total(failed, "o2a_fallouts_open", code="PORT_UNAVAILABLE") == 1
            await service.cancel(f"{order_number}-F", reason="metrics test")
            assert (await closed(client, f"{order_number}-F")).state is OrderState.CANCELLED
            answer = await http.get(
                f"{API_ROOT}/productOrder/{order_number}", headers=api.headers()
            )
            assert answer.status_code == 200
            api_samples = await scrape(f"{api.url}/metrics")

        async def counted() -> bool:
            found = await scrape(endpoint)
            return total(found, "o2a_orders_closed_total", outcome="cancelled") == 1

        await until(counted)
        for number in (order_number, f"{order_number}-F"):  # a query to a closed order
            handle = client.get_workflow_handle(ids.order_workflow_id(number))
            await handle.query(STATUS_QUERY)  # replays its whole history: nothing counts twice
        worker_samples = await scrape(endpoint)
    finally:
        stop.set()
        await simulator
        await worker.stop()

    queue = {"task_queue": settings.task_queue}
    assert total(worker_samples, "o2a_orders_started_total", **queue) == 2
    assert total(worker_samples, "o2a_orders_closed_total", outcome="completed") == 1
    assert total(worker_samples, "o2a_order_cycle_seconds_count") == 2
    assert total(worker_samples, "o2a_fallouts_raised_total", code="PORT_UNAVAILABLE") == 1
    assert total(worker_samples, "o2a_revisions_total", kind="cancel", outcome="cancelled") == 1
    assert total(worker_samples, "o2a_component_duration_seconds_count") >= 5
    assert total(worker_samples, "o2a_bus_published_total") > 0
    assert total(worker_samples, "o2a_bus_consumed_total") > 0
    assert "o2a_bus_consumer_pending" in worker_samples
    routes = {dict(k)["route"] for k in api_samples["o2a_api_requests_total"]}
    assert f"{API_ROOT}/productOrder/{{order_id}}" in routes
    assert not any(order_number in route for route in routes)
    assert "o2a_orders_open" in api_samples
    assert "o2a_api_request_duration_seconds_bucket" in api_samples

    emitted = set(worker_samples) | set(api_samples) | set(failed)
    declared = "".join(path.read_text() for path in EMITTERS)
    used = dashboard_metrics()
    assert used >= {"o2a_orders_closed_total", "o2a_bus_published_total", "o2a_orders_open"}
    missing = {n for n in used - emitted if n not in NOT_EXERCISED}
    assert not missing, f"the dashboard queries metrics nobody emits: {missing}"
    for name in NOT_EXERCISED & used:
        assert f'"{re.sub(r"_total$", "", name)}"' in declared


def test_the_scrape_config_scrapes_the_worker_and_the_api() -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"o2a-worker", "o2a-api"} <= set(jobs)
    for job in jobs.values():
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert all(":" in t for c in job["static_configs"] for t in c["targets"])


def test_a_bad_metrics_port_is_one_line_exit_2() -> None:
    done = subprocess.run(
        [*O2A, "worker", "--metrics-port", "http"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == "o2a: --metrics-port must be a port number from 1 to 65535, got 'http'\n"


@pytest.mark.parametrize("value", ["0", "70000", "-1", "9464x"])
def test_metrics_ports_out_of_range_are_refused(value: str) -> None:
    with pytest.raises(InputError, match="O2A_METRICS_PORT must be a port number"):
        configured_port({"O2A_METRICS_PORT": value})
    assert configured_port({}) is None
    assert configured_port({"O2A_METRICS_PORT": " 9464 "}) == 9464


def test_a_metrics_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerError, match=f"cannot serve metrics on port {port}"):
            metrics.serve(port)
