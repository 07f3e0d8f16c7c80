"""Acceptance: a worker killed with SIGKILL while 20 orders run, then restarted.

All 20 orders complete, and the outbox holds exactly the messages their IDs call for: no
message delivered twice under different IDs, none missing.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from collections import defaultdict
from pathlib import Path

from lxml import etree
from temporalio.client import Client, WorkflowExecutionStatus

from o2a import ids
from o2a.config import Settings
from o2a.inbound import read_order_file
from o2a.models import OrderState, OrderStatus
from o2a.soak_checks import content_identity, ebm_id, message_files
from starters.soak import slowed
from tests.support import SAMPLES, Background, cli_env, start, wait_until

ORDERS = 20
DELAY = "0.5"
ROOTS = {
    "PPO": "ProcessProvisioningOrderEBM",
    "PFOU": "ProcessFulfillmentOrderUpdateEBM",
    "USO": "UpdateSalesOrderEBM",
}
SEQUENCE = re.compile(r"\.u(\d{3})$")


async def diagnose(client: Client, task_queue: str) -> str:
    """Which workflows are still running on the queue, and what they are waiting for."""
    out: list[str] = []
    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    async for wf in client.list_workflows(query, limit=200):
        description = await client.get_workflow_handle(wf.id, run_id=wf.run_id).describe()
        pending = description.raw_description.pending_activities
        waits = [
            f"{pa.activity_type.name} attempt {pa.attempt} state {pa.state} "
            f"started {pa.last_started_time.ToJsonString()} "
            f"heartbeat {pa.last_heartbeat_time.ToJsonString() if pa.HasField('last_heartbeat_time') else '-'}"  # noqa: E501
            for pa in pending
        ]
        out.append(f"{wf.id}: {'; '.join(waits) or 'no pending activity'}")
    return "\n".join(out) or "(nothing running)"


async def test_sigkilled_worker_restarted_completes_all_orders_without_duplicates(
    client: Client, temporal_address: str, settings: Settings, tmp_path: Path
) -> None:
    env = cli_env(temporal_address, settings)
    outbox = settings.outbox_dir
    prefix = f"K{uuid.uuid4().hex[:8].upper()}"
    numbers = [f"{prefix}-{i:02d}" for i in range(ORDERS)]
    base = read_order_file(SAMPLES / "triple_play.xml")
    orders = [slowed(base, n, DELAY) for n in numbers]

    first = await Background.start("worker", env=env, log=tmp_path / "worker-1.log")
    second: Background | None = None
    try:
        await first.wait_for_output("polling task queue", timeout=60)
        handles = list(await asyncio.gather(*(start(client, settings, order) for order in orders)))

        # Mid-flight: provisioning has begun for a good part of the orders.
        await wait_until(
            lambda: len(list(outbox.glob("PFOU.*.xml"))) >= ORDERS,
            "provisioning updates in the outbox",
            timeout=90,
            interval=0.05,
        )
        first.kill()
        assert await first.wait(10) == -signal.SIGKILL, first.output()

        descriptions = await asyncio.gather(*(h.describe() for h in handles))
        unfinished = [d.id for d in descriptions if d.status is WorkflowExecutionStatus.RUNNING]
        assert unfinished, "every order completed before the kill: the test proved nothing"
        before_restart = len(message_files(outbox))

        second = await Background.start("worker", env=env, log=tmp_path / "worker-2.log")
        await second.wait_for_output("polling task queue", timeout=60)
        deadline = time.monotonic() + 150
        try:
            results: list[OrderStatus] = list(
                await asyncio.wait_for(
                    asyncio.gather(*(h.result() for h in handles)), deadline - time.monotonic()
                )
            )
        except TimeoutError:
            raise AssertionError(
                f"not all {ORDERS} orders completed within 150s of the restart "
                f"({len(unfinished)} were running at the kill); still running:\n"
                + await diagnose(client, settings.task_queue)
            ) from None
    finally:
        first.kill()
        if second is not None:
            await second.stop()

    assert len(message_files(outbox)) > before_restart, "the new worker sent nothing"

    expected: set[str] = set()
    for number, result in zip(numbers, results, strict=True):
        assert result.order_number == number
        assert result.state is OrderState.COMPLETED, result
        provisioning = [c for c in result.components if c.function == "Provision"]
        assert len(provisioning) == 3, result.components

        uso = sorted(outbox.glob(f"USO.{number}.r1.u*.xml"))
        sequences = [int(m.group(1)) for p in uso if (m := SEQUENCE.search(p.stem))]
        assert len(sequences) == len(uso), uso
        assert result.crm_updates_sent > 0
        assert sequences == list(range(1, result.crm_updates_sent + 1)), (number, uso)

        ppo = sorted(outbox.glob(f"PPO.{number}.*.xml"))
        assert len(ppo) == len(provisioning), (number, ppo)
        for component in provisioning:
            pfou = sorted(outbox.glob(f"PFOU.{number}.r1.{component.id}.u*.xml"))
            assert [p.stem.rsplit(".", 1)[1] for p in pfou] == ["u001", "u002", "u003"], pfou

        expected |= {ids.provisioning_order_message_id(number, 1, c.id) for c in provisioning}
        expected |= {
            ids.fulfillment_update_message_id(number, 1, c.id, seq)
            for c in provisioning
            for seq in (1, 2, 3)
        }
        expected |= {
            ids.sales_order_update_message_id(number, 1, seq)
            for seq in range(1, result.crm_updates_sent + 1)
        }

    files = message_files(outbox)
    assert {p.stem for p in files} == expected

    # The same message under two names would be a duplicate delivery.
    seen: dict[tuple[str, str, bytes], list[str]] = defaultdict(list)
    for path in files:
        kind, order_number = path.stem.split(".")[:2]
        root = etree.parse(str(path)).getroot()
        assert etree.QName(root).localname == ROOTS[kind], path
        assert ebm_id(root) == path.stem, path
        seen[(kind, order_number, content_identity(root))].append(path.name)
    duplicates = [names for names in seen.values() if len(names) > 1]
    assert not duplicates, duplicates
