"""The inbound bus listener (o2a/listener.py) on a real NATS server and real Temporal: CRM's
documents published to the test's own ``<prefix>.crm.salesorder`` start, revise and cancel
orders; a duplicate is acked and changes nothing; a document that can never succeed is
dead-lettered with its reason and starts nothing; a message that keeps failing for a
passing cause is dead-lettered after the most deliveries; Temporal down while the listener
runs only delays the orders."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lxml import etree
from temporalio.client import Client, WorkflowExecutionStatus

from o2a import ids
from o2a.bus import MSG_ID, REASON, BusConnection
from o2a.bus_messages import publish_document
from o2a.client import connect
from o2a.config import Settings
from o2a.inbound import CC_NS
from o2a.listener import Listener, Redelivery
from o2a.models import OrderState
from o2a.outbound import FAULT_NS
from o2a.server import DevServer
from tests.conftest import free_port
from tests.support import (
    StartWorker,
    acked,
    bus_connection,
    bus_messages,
    closed,
    consumer_info,
    held_mid_flight,
    outcome,
    query,
    running_listener,
    same_client,
    sample_document,
    text_of,
    until,
)

QUICK = Redelivery(max_deliveries=3, first=0.05, longest=0.2)


@pytest.fixture
async def connection(bus_settings: Settings) -> AsyncIterator[BusConnection]:
    async with bus_connection(bus_settings) as bus:
        yield bus


async def publish(connection: BusConnection, document: bytes, message_id: str | None = None) -> int:
    """The document on the inbound subject, as `o2a publish` sends it (or under another
    message ID: CRM sending it again); its stream sequence."""
    subject = connection.subjects.sales_order
    if message_id is None:
        return (await publish_document(connection, subject, document)).seq
    js = await connection.jetstream()
    return (await js.publish(subject, document, headers={MSG_ID: message_id})).seq


async def dead_letters(connection: BusConnection) -> list[etree._Element]:
    stored = await bus_messages(await connection.jetstream(), connection.subjects.dead_letter)
    return [etree.fromstring(m.data) for m in stored]


async def runs(client: Client, order_number: str) -> int:
    workflow_id = ids.order_workflow_id(order_number)
    return (await client.count_workflows(f"WorkflowId = '{workflow_id}'")).count


def ebm_id(document: bytes) -> str:
    [found] = text_of(etree.fromstring(document), "EBMID")
    return found


async def test_a_new_order_published_starts_and_completes(
    client: Client,
    bus_settings: Settings,
    connection: BusConnection,
    worker: StartWorker,
    order_number: str,
) -> None:
    async with worker(), running_listener(bus_settings, same_client(client)) as listener:
        sequence = await publish(connection, sample_document(order_number))
        await acked(connection, listener, sequence)
        status = await closed(client, order_number)
    assert status.state is OrderState.COMPLETED
    assert await dead_letters(connection) == []


async def test_a_higher_revision_is_signalled_and_a_duplicate_changes_nothing(
    client: Client,
    bus_settings: Settings,
    connection: BusConnection,
    worker: StartWorker,
    order_number: str,
) -> None:
    new = sample_document(order_number)
    upgrade = sample_document(order_number, "revisions/triple_play_r2_upgrade.xml")
    async with (
        held_mid_flight(worker) as gate,
        running_listener(bus_settings, same_client(client)) as listener,
    ):
        await acked(connection, listener, await publish(connection, new))
        await gate.wait_reached()
        handle = client.get_workflow_handle(ids.order_workflow_id(order_number))
        await acked(connection, listener, await publish(connection, upgrade))
        # The revision's request is named by its message, so its outcome can be asked for.
        assert (await outcome(handle, ebm_id(upgrade))).outcome == "accepted"
        # CRM sends both again under new message IDs: the broker stores them, the listener
        # acks them, the order hears nothing.
        await acked(connection, listener, await publish(connection, new, "again-1"))
        await acked(connection, listener, await publish(connection, upgrade, "again-2"))
        revisions = (await query(handle)).revisions
    assert [(r.number, r.outcome) for r in revisions] == [(2, "accepted")]
    assert await runs(client, order_number) == 1
    assert (await consumer_info(connection, listener)).num_ack_pending == 0
    assert await dead_letters(connection) == []


async def test_a_cancel_revision_cancels_the_order(
    client: Client,
    bus_settings: Settings,
    connection: BusConnection,
    worker: StartWorker,
    order_number: str,
) -> None:
    cancel = sample_document(order_number, "revisions/triple_play_cancel.xml")
    async with (
        held_mid_flight(worker) as gate,
        running_listener(bus_settings, same_client(client)) as listener,
    ):
        await acked(connection, listener, await publish(connection, sample_document(order_number)))
        await gate.wait_reached()
        await acked(connection, listener, await publish(connection, cancel))
        gate.release()
        status = await closed(client, order_number)
        # A cancel sent again to the cancelled order is a duplicate, not a refusal.
        await acked(connection, listener, await publish(connection, cancel, "again"))
    assert status.state is OrderState.CANCELLED
    assert [(r.request_id, r.outcome) for r in status.revisions] == [(ebm_id(cancel), "cancelled")]
    assert await dead_letters(connection) == []


def refused(order_number: str) -> dict[str, bytes]:
    document = sample_document(order_number)
    xxe = b'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    declaration, _, rest = document.partition(b"\n")
    return {
        "unknown product class": document.replace(
            b"Broadband Service Plan Class", b"Warp Drive Class"
        ),
        "not well-formed": document[:-40],
        "XXE": b"\n".join([declaration, xxe, rest.replace(b"SALES ORDER", b"&xxe;")]),
    }


async def test_a_document_that_can_never_succeed_is_dead_lettered_with_its_reason(
    client: Client, bus_settings: Settings, connection: BusConnection, order_number: str
) -> None:
    documents = refused(order_number)
    async with running_listener(bus_settings, same_client(client)) as listener:
        sequences = {name: await publish(connection, doc) for name, doc in documents.items()}
        await acked(connection, listener, max(sequences.values()))
    js = await connection.jetstream()
    stored = {
        m.headers[MSG_ID]: m
        for m in await bus_messages(js, connection.subjects.dead_letter)
        if m.headers
    }
    order_of = {"unknown product class": order_number}  # the others cannot be read
    expected = {
        name: ids.dead_letter_message_id(order_of.get(name), sequences[name], document)
        for name, document in documents.items()
    }
    assert set(stored) == set(expected.values())  # one each, under the message's own ID
    reasons = {name: (stored[expected[name]].headers or {})[REASON] for name in documents}
    assert "Warp Drive Class" in reasons["unknown product class"]
    assert reasons["not well-formed"].startswith("not well-formed XML")
    assert "DTD" in reasons["XXE"]
    fault = etree.fromstring(stored[expected["unknown product class"]].data)
    assert etree.QName(fault) == etree.QName(FAULT_NS, "Fault")
    assert fault.findtext(f"{{{CC_NS}}}EBMReference/{{{CC_NS}}}EBMID") == ebm_id(
        documents["unknown product class"]
    )
    assert text_of(fault, "Code") == ["INVALID_ORDER"]
    assert text_of(fault, "Text") == [reasons["unknown product class"]]
    assert await runs(client, order_number) == 0


async def test_a_message_that_keeps_failing_is_dead_lettered_after_the_most_deliveries(
    bus_settings: Settings, connection: BusConnection, order_number: str
) -> None:
    """Temporal never reachable (nothing listens on the port): delivered three times, then
    dead-lettered with the last reason and acked; it never loops."""
    nowhere = functools.partial(connect, "test", f"127.0.0.1:{free_port()}")
    async with running_listener(bus_settings, nowhere, QUICK) as listener:
        sequence = await publish(connection, sample_document(order_number))
        await acked(connection, listener, sequence)
        info = await consumer_info(connection, listener)
    assert info.delivered.consumer_seq == QUICK.max_deliveries  # the one message, 3 times
    [fault] = await dead_letters(connection)
    [reason] = text_of(fault, "Text")
    assert reason.startswith("failed 3 times: cannot reach Temporal at 127.0.0.1:")
    assert text_of(fault, "Code") == ["DELIVERIES_EXHAUSTED"]


async def test_orders_published_while_temporal_is_down_start_once_it_is_back(
    bus_settings: Settings, connection: BusConnection, tmp_path: Path
) -> None:
    """Temporal stopped after the listener has talked to it: the message is NAKed and comes
    again until the same server (database, port) is back, then the order starts."""
    server = DevServer(
        db=tmp_path / "temporal.db", port=free_port(), ui_port=None, log_file=tmp_path / "t.log"
    )
    patient = Redelivery(max_deliveries=1000, first=0.1, longest=0.5)
    to_server = functools.partial(connect, "test", server.address)
    with server:
        await server.wait_ready()
        async with running_listener(bus_settings, to_server, patient) as listener:
            await acked(connection, listener, await publish(connection, sample_document("UP-1")))
            server.stop()
            down = await publish(connection, sample_document("DOWN-1"))

            async def came_again() -> bool:
                info = await consumer_info(connection, listener)
                return info.num_redelivered > 0

            await until(came_again)
            server.start()
            await server.wait_ready()
            await acked(connection, listener, down, timeout=60)
        client = await to_server()
        for order_number in ("UP-1", "DOWN-1"):
            handle = client.get_workflow_handle(ids.order_workflow_id(order_number))
            assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
            await handle.terminate("test over")
    assert await dead_letters(connection) == []


def test_redelivery_backs_off_exponentially_up_to_the_longest() -> None:
    policy = Redelivery(max_deliveries=20, first=1.0, longest=120.0)
    assert [policy.delay(n) for n in (1, 2, 3, 8, 100_000)] == [1.0, 2.0, 4.0, 120.0, 120.0]


def test_the_listener_needs_a_bus(settings: Settings) -> None:
    with pytest.raises(ValueError, match="O2A_NATS_URL"):
        Listener(settings)
