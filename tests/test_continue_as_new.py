"""Long-lived orders continue as new: on a server that suggests it after a few events, an
order waiting in fallout goes on in a fresh run, takes a revision there and completes, and
its children continue as new between steps; nothing is lost, repeated or reordered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from o2a import ids
from o2a.client import connect
from o2a.config import Settings
from o2a.models import FulfillmentStatus, OrderState, OrderStatus
from o2a.server import DevServer
from tests.conftest import free_port
from tests.support import (
    RECORD_HISTORIES,
    messages,
    outcome,
    revise,
    revision,
    sample,
    save_history,
    set_spec,
    start,
    text_of,
    until,
    wait_for_state,
)
from workers.worker import build_worker

SUGGEST_AFTER_EVENTS = 30
"""Below a triple play's parent (about 170 events) and its children (about 40 each)."""


class SuggestingDevServer(DevServer):
    """A dev server that suggests continue-as-new after a few events, as a production one
    does after thousands."""

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_AFTER_EVENTS}",
        ]


@pytest.fixture(scope="module")
async def suggesting(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    log = tmp_path_factory.mktemp("temporal-can") / "server.log"
    server = SuggestingDevServer(db=None, port=free_port(), ui_port=None, log_file=log)
    server.start()
    try:
        await server.wait_ready()
        yield await connect("o2a-test", server.address)
    finally:
        server.stop()


async def _runs(client: Client, workflow_id: str) -> list[str]:
    """The run IDs of a workflow, oldest first."""
    runs = [
        (w.start_time, w.run_id)
        async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")
    ]
    return [run_id for _, run_id in sorted(runs)]


async def test_an_order_in_fallout_continues_as_new_then_takes_a_revision_and_completes(
    suggesting: Client, settings: Settings, order_number: str
) -> None:
    client = suggesting
    order = set_spec(
        sample("triple_play.xml", order_number), "1.3.2", "SimulatedFault", "design:NO_STATIC_IP"
    )
    fixed = revision(order, 2)
    fixed.lines = [line for line in fixed.lines if line.id != "1.3.2"]
    async with build_worker(client, settings):
        handle = await start(client, settings, order)
        await wait_for_state(handle, OrderState.FAILED)
        workflow_id = handle.id

        async def continued() -> bool:
            return len(await _runs(client, workflow_id)) >= 2

        await until(continued)
        first = (await _runs(client, workflow_id))[0]
        first_run = client.get_workflow_handle(workflow_id, run_id=first)
        last_event = [e async for e in first_run.fetch_history_events()][-1]
        assert last_event.event_type is EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        # The fallout raised in the first run is still open in the second.
        latest = client.get_workflow_handle(workflow_id, result_type=OrderStatus)
        await wait_for_state(latest, OrderState.FAILED)

        rid = await revise(latest, fixed)
        answer = await outcome(latest, rid)
        assert (answer.number, answer.outcome, answer.kind) == (2, "accepted", "revision")
        result = await latest.result()

    assert result.state is OrderState.COMPLETED and result.revision == 2
    assert [f.state for f in result.fallouts] == ["resolved"]
    assert [(r.number, r.outcome) for r in result.revisions] == [(2, "accepted")]
    lines = {line.id: line.status for line in result.lines}
    assert lines["1.3.2"] is FulfillmentStatus.CANCELLED
    assert lines["1.3.1"] is FulfillmentStatus.COMPLETE

    # CRM heard every update once, numbered on across the runs: a number used again by the
    # second run would have found the first run's message under the same ID.
    updates = messages(settings.outbox_dir, f"USO.{order_number}.r*")
    sequence = sorted(int(path.stem.rsplit(".u", 1)[1]) for path, _ in updates)
    assert sequence == list(range(1, result.crm_updates_sent + 1))
    by_sequence = sorted(updates, key=lambda update: update[0].stem.rsplit(".u", 1)[1])
    assert text_of(by_sequence[-1][1], "Code")[0] == "COMPLETE"
    assert all(text_of(root, "EBMID") == [path.stem] for path, root in updates)

    # The children continued as new too, between their steps, and still completed.
    children = [
        w
        async for w in client.list_workflows(
            f"WorkflowType = 'ProvisioningOrderWorkflow' AND TaskQueue = '{settings.task_queue}'"
        )
    ]
    assert len(children) > len({w.id for w in children}), [w.id for w in children]
    assert all(w.id.startswith(ids.order_workflow_id(order_number) + "/") for w in children)

    if RECORD_HISTORIES:  # for tests/test_replay.py
        save_history("continued_as_new", await first_run.fetch_history())
        save_history("continued_run", await latest.fetch_history())
        child = next(w for w in children if len([c for c in children if c.id == w.id]) > 1)
        first_child_run = min((c for c in children if c.id == child.id), key=lambda c: c.start_time)
        child_handle = client.get_workflow_handle(child.id, run_id=first_child_run.run_id)
        save_history("continued_provisioning", await child_handle.fetch_history())
