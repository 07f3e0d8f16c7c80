"""Replay of recorded histories: a workflow change that breaks them needs workflow.patched.

The histories under tests/histories/ come from real runs on the dev server. To record them
again after an intended, patched change: ``O2A_RECORD_HISTORIES=1 pytest tests/test_replay.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from o2a import ids
from o2a.client import DATA_CONVERTER, interceptors
from o2a.config import Settings
from o2a.inbound import read_order_file
from o2a.models import Specification
from starters.operator import cancel_order, revise_order
from starters.submit import start_order
from tests.conftest import SAMPLES
from tests.test_revision_workflow import delayed
from workers.worker import WORKFLOWS
from workflows.customer_order import CustomerOrderWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("O2A_RECORD_HISTORIES") == "1"


def recorded() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


@pytest.mark.skipif(RECORD, reason="recording run")
def test_histories_are_present() -> None:
    names = {p.stem for p in recorded()}
    assert {
        "triple_play",
        "triple_play_provisioning",
        "fallout_resolved",
        "revised_mid_flight",
        "revised_provisioning",
        "cancelled_mid_flight",
    } <= names


@pytest.mark.skipif(RECORD, reason="recording run")
@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.stem)
async def test_replay(path: Path) -> None:
    data = json.loads(path.read_text())
    history = WorkflowHistory.from_json(data["workflow_id"], data["history"])
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=DATA_CONVERTER, interceptors=interceptors()
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def _save(name: str, history: WorkflowHistory) -> None:
    HISTORIES.mkdir(exist_ok=True)
    body = {"workflow_id": history.workflow_id, "history": json.loads(history.to_json())}
    (HISTORIES / f"{name}.json").write_text(json.dumps(body, indent=1) + "\n")


@pytest.mark.skipif(not RECORD, reason="set O2A_RECORD_HISTORIES=1 to record")
async def test_record_histories(
    client: Client, settings: Settings, worker: Callable, order_number: str
) -> None:
    order = read_order_file(SAMPLES / "triple_play.xml")
    order = order.model_copy(update={"order_number": f"REPLAY-{order_number}"})
    faulty = read_order_file(SAMPLES / "broadband_only.xml")
    faulty = faulty.model_copy(update={"order_number": f"REPLAY-F-{order_number}"})
    plan_line = next(
        line for line in faulty.lines if line.item.product_class == "Broadband Service Plan Class"
    )
    plan_line.item.specifications.append(
        Specification(name="SimulatedFault", value="design:NO_CAPACITY:1")
    )
    async with worker():
        handle = await start_order(client, order, settings)
        result = await handle.result()
        _save("triple_play", await handle.fetch_history())
        provisioning = next(c for c in result.components if c.function == "Provision")
        child = client.get_workflow_handle(
            ids.provisioning_workflow_id(order.order_number, provisioning.id)
        )
        _save("triple_play_provisioning", await child.fetch_history())

        failing = await start_order(client, faulty, settings)
        while (await failing.query(CustomerOrderWorkflow.status)).state.value != "failed":
            await asyncio.sleep(0.2)
        await failing.signal(CustomerOrderWorkflow.resolve)
        assert (await failing.result()).state.value == "completed"
        _save("fallout_resolved", await failing.fetch_history())

        # A revision (drop broadband, change the voice plan, add a mobile feature) and a
        # cancel, each landing while provisioning runs.
        base = delayed(read_order_file(SAMPLES / "triple_play.xml"), 0.5)
        revised = read_order_file(SAMPLES / "revisions" / "triple_play_r2_combined.xml")
        for name, change in (("revised_mid_flight", revised), ("cancelled_mid_flight", None)):
            number = f"REPLAY-{name}-{order_number}"
            running = await start_order(
                client, base.model_copy(update={"order_number": number}), settings
            )
            await asyncio.sleep(1.5)
            if change is None:
                await cancel_order(client, number, "recorded cancel")
            else:
                await revise_order(
                    client, delayed(change, 0.5).model_copy(update={"order_number": number})
                )
            final = await running.result()
            assert final.state.value == ("cancelled" if change is None else "completed")
            _save(name, await running.fetch_history())
            if change is not None:
                fixed = ids.provisioning_workflow_id(
                    number, "Provision.FixedProvisioningSystem.bundle-1.1"
                )
                _save(
                    "revised_provisioning", await client.get_workflow_handle(fixed).fetch_history()
                )
