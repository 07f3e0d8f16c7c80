"""The bus (o2a/bus.py) and the NATS MessageBus adapter, on a real NATS server: streams made
idempotently, every EBM stored once per EBMID however often its publish is retried, and an
order's messages surviving a NATS restart mid-flight."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from o2a import ids
from o2a.adapters.nats import NatsBus
from o2a.bus import MSG_ID, BusConnection, BusUnavailable, Subjects
from o2a.config import Settings
from o2a.models import OrderState, Step
from o2a.nats_server import NatsServer
from o2a.ports import Destination
from tests.conftest import free_port
from tests.support import (
    PROV_BB,
    GatedFulfillment,
    StartWorker,
    bus_messages,
    finished,
    quick_triple_play,
    start,
)


@pytest.fixture
async def connection(bus_settings: Settings) -> AsyncIterator[BusConnection]:
    assert bus_settings.nats_url is not None
    bus = BusConnection(bus_settings.nats_url, Subjects(bus_settings.subject_prefix), "test")
    yield bus
    await bus.close()


async def test_streams_are_made_once_and_found_again(connection: BusConnection) -> None:
    js = await connection.jetstream()
    again = BusConnection(connection.url, connection.subjects, "again")
    try:
        await again.jetstream()  # the same streams: no error, nothing changed
    finally:
        await again.close()
    names = {config.name for config in connection.subjects.streams()}
    infos = {info.config.name: info.config for info in await js.streams_info()}
    assert names <= set(infos)
    prefix = connection.subjects.prefix
    assert infos[f"{prefix.upper()}_OUTBOUND"].subjects == [
        f"{prefix}.{d.value}" for d in Destination
    ]
    assert connection.subjects.stream_of(f"{prefix}.fulfillment.ASAP.response").endswith(
        "_FULFILLMENT"
    )


async def test_a_republished_message_is_stored_once(connection: BusConnection) -> None:
    """A repeat answers with the body stored; another body under a stored ID is not stored,
    and the publish answers with the first."""
    bus = NatsBus(connection)
    held = [
        await bus.publish(Destination.CRM_ORDER_UPDATE, "USO.1", b"<UpdateSalesOrderEBM/>")
        for _ in range(3)
    ]
    other = await bus.publish(
        Destination.CRM_ORDER_UPDATE, "USO.1", b"<UpdateSalesOrderEBM n='2'/>"
    )
    await bus.publish(Destination.CRM_ORDER_UPDATE, "USO.2", b"<UpdateSalesOrderEBM/>")
    stored = await bus_messages(
        await connection.jetstream(), connection.subjects.of(Destination.CRM_ORDER_UPDATE)
    )
    assert held == [b"<UpdateSalesOrderEBM/>"] * 3
    assert other == b"<UpdateSalesOrderEBM/>"
    assert [m.headers[MSG_ID] for m in stored if m.headers] == ["USO.1", "USO.2"]
    assert stored[0].data == b"<UpdateSalesOrderEBM/>"


class AckLost:
    """NATS stores the message, but the activity never hears so (a lost ack, a worker killed
    after the publish): each message's first publish fails after it was made."""

    def __init__(self, bus: NatsBus) -> None:
        self.bus = bus
        self.lost: set[str] = set()

    async def publish(self, destination: Destination, message_id: str, document: bytes) -> bytes:
        held = await self.bus.publish(destination, message_id, document)
        if message_id not in self.lost:
            self.lost.add(message_id)
            raise BusUnavailable(f"the ack of {message_id} was lost")
        return held


async def outbound(connection: BusConnection) -> dict[Destination, list[str]]:
    js = await connection.jetstream()
    return {
        d: [
            m.headers[MSG_ID]
            for m in await bus_messages(js, connection.subjects.of(d))
            if m.headers
        ]
        for d in Destination
    }


async def test_an_order_on_the_bus_sends_each_message_once_despite_retries(
    client: Client,
    bus_settings: Settings,
    connection: BusConnection,
    worker: StartWorker,
    order_number: str,
) -> None:
    lossy = AckLost(NatsBus(connection))
    async with worker(bus_settings, bus=lossy):
        status = await finished(await start(client, bus_settings, quick_triple_play(order_number)))
    assert status.state is OrderState.COMPLETED
    sent = await outbound(connection)
    every = [message_id for ids_ in sent.values() for message_id in ids_]
    assert len(every) == len(set(every)) == len(lossy.lost)  # each retried, each stored once
    assert len(sent[Destination.SOM_PROVISIONING_ORDER]) == 3
    assert ids.provisioning_order_message_id(order_number, 1, PROV_BB) in every


async def test_an_order_completes_across_a_nats_restart(
    client: Client,
    bus_settings: Settings,
    worker: StartWorker,
    order_number: str,
    tmp_path: Path,
) -> None:
    """NATS stopped while the order runs: messages wait (their activities retry) and all
    arrive, once each, when it is back on the same port and store."""
    nats = NatsServer(store=tmp_path / "nats", port=free_port(), log_file=tmp_path / "nats.log")
    own = dataclasses.replace(bus_settings, nats_url=nats.url)
    gated = GatedFulfillment()
    verify = gated.hold(Step.VERIFY, PROV_BB)
    with nats:
        await nats.wait_ready()
        async with worker(own, fulfillment=gated):
            handle = await start(client, own, quick_triple_play(order_number))
            await verify.reached.wait()
            nats.stop()
            verify.release()
            nats.start()
            await nats.wait_ready()
            status = await finished(handle)
        assert status.state is OrderState.COMPLETED
        connection = BusConnection(nats.url, Subjects(own.subject_prefix), "check")
        try:
            sent = await outbound(connection)
        finally:
            await connection.close()
    every = [message_id for ids_ in sent.values() for message_id in ids_]
    assert len(every) == len(set(every))
    assert len(sent[Destination.SOM_PROVISIONING_ORDER]) == 3
    assert ids.fulfillment_update_message_id(order_number, 1, PROV_BB, 3) in every
