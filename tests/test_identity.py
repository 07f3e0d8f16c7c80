"""An order number names one order only, against a real Temporal dev server: never another
order's child, whichever command names it (the `o2a` command line, run as a user runs it)."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from o2a import ids
from o2a.config import Settings
from o2a.models import OrderState
from o2a.service import OrderService
from tests.support import (
    PROV_FIXED,
    StartWorker,
    cli_env,
    closed,
    held_mid_flight,
    query,
    quick_triple_play,
    start,
)
from tests.test_cli import o2a


async def test_a_childs_id_given_as_an_order_number_names_no_order(
    client: Client,
    temporal_address: str,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
):
    env = cli_env(temporal_address, settings)
    child_id = ids.provisioning_workflow_id(order_number, PROV_FIXED)
    as_order = child_id.removeprefix("order-")
    async with held_mid_flight(worker) as gate:
        handle = await start(client, settings, quick_triple_play(order_number))
        await gate.wait_reached()
        for command in ("status", "cancel", "suspend", "resolve", "abort"):
            run = await o2a(command, as_order, env=env)
            assert run.returncode == 1, run
            assert run.stderr_lines == [
                f"o2a: no order {as_order} (workflow {ids.order_workflow_id(as_order)})"
            ], run
        as_json = await o2a("status", as_order, "--json", env=env)
        assert (as_json.returncode, len(as_json.stderr_lines)) == (1, 1), as_json

        child_history = await client.get_workflow_handle(child_id).fetch_history()
        assert not [
            e
            for e in child_history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ], "a command reached the child"
        assert (await query(handle)).state is OrderState.IN_PROGRESS
        gate.release()
        assert (await closed(client, order_number)).state is OrderState.COMPLETED


async def test_an_order_numbered_like_a_child_leaves_that_child_to_its_order(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
):
    service = OrderService(client, settings)
    impostor = f"{order_number}/{PROV_FIXED}"
    async with worker():
        first = await service.submit(quick_triple_play(impostor))
        assert first.workflow_id != ids.provisioning_workflow_id(order_number, PROV_FIXED)
        await service.submit(quick_triple_play(order_number))
        assert (await closed(client, order_number)).state is OrderState.COMPLETED
        assert (await closed(client, impostor)).state is OrderState.COMPLETED


async def test_an_order_number_no_order_can_have_is_bad_input_in_one_line(
    temporal_address: str, settings: Settings
) -> None:
    env = cli_env(temporal_address, settings)
    for command in ("status", "cancel", "resolve"):
        run = await o2a(command, "HN-1\nHN-2", env=env)
        assert run.returncode == 2, run
        assert run.stderr_lines == [
            "o2a: order number 'HN-1\\nHN-2': non-printable character '\\n'"
        ], run
