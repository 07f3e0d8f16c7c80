"""Worker Versioning on the dev server: an order stays on the build it started on (o2a.versioning).

Two versioned workers of one deployment poll the same task queue, as during an upgrade:
build A holds an order mid-flight, build B becomes current, a new order runs on B, and A's
order (its SOM children and activities included) ends on A without B ever running a task
of it, unless an operator moves it to B (starters/move_order.py).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion

from o2a import ids
from o2a.cli import EXIT_USAGE, main
from o2a.config import Settings
from o2a.errors import InputError, OrderConflictError, UnknownOrderError
from o2a.models import CustomerOrder, OrderState, Step
from o2a.notifications import Hub
from o2a.versioning import deployment_config
from starters.move_order import move_order
from tests.support import (
    PROV_FIXED,
    Gate,
    GatedFulfillment,
    OrderHandle,
    StartWorker,
    finished,
    make_current,
    order_histories,
    quick_triple_play,
    start,
    task_versions,
)
from workflows.contracts.notification_hub import hub_workflow_id


def two_builds(settings: Settings) -> tuple[Settings, Settings]:
    """Builds A and B of a deployment of the test's own, on the test's one task queue."""
    build_a = dataclasses.replace(
        settings, deployment_name=f"o2a-test-{uuid.uuid4().hex[:8]}", build_id="A"
    )
    return build_a, dataclasses.replace(build_a, build_id="B")


@dataclass
class Upgrade:
    """An order held mid-flight on build A while build B, beside it, has become current."""

    order: OrderHandle
    gate: Gate
    gated_a: GatedFulfillment
    gated_b: GatedFulfillment
    deployment: str


@asynccontextmanager
async def upgrading(
    client: Client, settings: Settings, worker: StartWorker, order: CustomerOrder
) -> AsyncIterator[Upgrade]:
    """Build A current and running ``order`` (its fixed line's activation held), then build
    B's worker started and made current; both workers stop when the block ends."""
    build_a, build_b = two_builds(settings)
    gated_a, gated_b = GatedFulfillment(), GatedFulfillment()
    gate = gated_a.hold(Step.ACTIVATE, PROV_FIXED)
    async with worker(build_a, fulfillment=gated_a):
        await make_current(client, build_a.deployment_name, "A")
        handle = await start(client, settings, order)
        await gate.wait_reached()
        async with worker(build_b, fulfillment=gated_b):
            await make_current(client, build_b.deployment_name, "B")
            yield Upgrade(handle, gate, gated_a, gated_b, build_a.deployment_name)


async def test_an_order_stays_on_its_build_while_new_orders_start_on_the_next(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    old_order, new_order = f"{order_number}-OLD", f"{order_number}-NEW"
    async with upgrading(client, settings, worker, quick_triple_play(old_order)) as up:
        new = await start(client, settings, quick_triple_play(new_order))
        assert (await finished(new)).state is OrderState.COMPLETED
        info = (await up.order.describe()).raw_description.workflow_execution_info
        assert info.versioning_info.deployment_version.build_id == "A"
        assert info.versioning_info.behavior == VersioningBehavior.PINNED.value
        up.gate.release()
        assert (await finished(up.order)).state is OrderState.COMPLETED
    assert task_versions(await order_histories(client, old_order)) == ["A"]
    assert task_versions(await order_histories(client, new_order)) == ["B"]
    assert {c.order_number for c in up.gated_b.calls} == {new_order}
    assert {c.order_number for c in up.gated_a.calls} == {old_order}


async def test_a_long_lived_order_moves_to_the_next_build_once_it_replays_there(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    async with upgrading(client, settings, worker, quick_triple_play(order_number)) as up:
        nowhere = WorkerDeploymentVersion(up.deployment, "C")
        with pytest.raises(OrderConflictError, match="start its workers first"):
            await move_order(client, settings, order_number, nowhere)
        to_b = WorkerDeploymentVersion(up.deployment, "B")
        moved = await move_order(client, settings, order_number, to_b)
        assert moved[0] == ids.order_workflow_id(order_number)
        assert ids.provisioning_workflow_id(order_number, PROV_FIXED) in moved
        up.gate.release()
        assert (await finished(up.order)).state is OrderState.COMPLETED
    assert task_versions(await order_histories(client, order_number)) == ["A", "B"]
    assert (PROV_FIXED, Step.VERIFY) in {(c.component_id, c.step) for c in up.gated_b.calls}


async def test_the_hub_lives_on_and_follows_the_current_build(
    client: Client, settings: Settings, worker: StartWorker
) -> None:
    build_a, build_b = two_builds(settings)
    hub = Hub(client, settings.task_queue)
    async with worker(build_a):
        await make_current(client, build_a.deployment_name, "A")
        subscription = await hub.subscribe("http://listener.invalid/events", "", None)
        async with worker(build_b):
            await make_current(client, build_b.deployment_name, "B")
            assert await hub.unsubscribe(subscription.id)
    handle = client.get_workflow_handle(hub_workflow_id(settings.task_queue))
    assert task_versions([await handle.fetch_history()]) == ["A", "B"]
    info = (await handle.describe()).raw_description.workflow_execution_info
    assert info.versioning_info.behavior == VersioningBehavior.AUTO_UPGRADE.value
    await handle.terminate("test over")


async def test_a_move_of_an_unknown_order_is_refused(
    client: Client, settings: Settings, order_number: str
) -> None:
    with pytest.raises(UnknownOrderError, match=order_number):
        await move_order(client, settings, order_number, WorkerDeploymentVersion("o2a", "A"))


async def test_a_move_of_an_ended_order_is_refused_and_pins_nothing(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    async with worker():
        handle = await start(client, settings, quick_triple_play(order_number))
        assert (await finished(handle)).state is OrderState.COMPLETED
    with pytest.raises(OrderConflictError, match=f"order {order_number} has ended"):
        await move_order(client, settings, order_number, WorkerDeploymentVersion("o2a", "A"))
    info = (await handle.describe()).raw_description.workflow_execution_info
    assert not info.versioning_info.HasField("versioning_override")


def test_without_a_build_id_the_worker_is_unversioned() -> None:
    assert deployment_config("o2a", None) is None


@pytest.mark.parametrize(
    ("deployment", "build", "reason"),
    [
        ("o2a.blue", "A", "must not contain '.'"),
        ("o2a", "", "1 to 255 characters"),
        ("o2a", " A", "without surrounding spaces"),
        ("o2a", "x" * 256, "1 to 255 characters"),
    ],
)
def test_a_deployment_name_or_build_id_the_server_would_refuse_is_one_clear_line(
    deployment: str, build: str, reason: str
) -> None:
    with pytest.raises(InputError, match=reason):
        deployment_config(deployment, build)


def test_settings_read_the_version_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("O2A_BUILD_ID", "2026-11-26.1")
    monkeypatch.setenv("O2A_DEPLOYMENT_NAME", "o2a-eu")
    settings = Settings.from_env()
    assert (settings.deployment_name, settings.build_id) == ("o2a-eu", "2026-11-26.1")
    monkeypatch.setenv("O2A_BUILD_ID", " ")
    assert Settings.from_env().build_id is None


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "--build-id", ""],
        ["worker", "--build-id", "A", "--deployment-name", "o2a.eu"],
        ["move", "T-1", "--to", " B"],
    ],
)
def test_the_commands_refuse_a_bad_version_in_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("o2a: ") and err.count("\n") == 1, err
