"""Issue 9: big orders complete, in small workflow tasks, small histories and small payloads.

Each order runs on a real worker with the simulator (no delays) against the session's dev
server; the worker's shutdown is bounded, so a deadlocked workflow task cannot hang the test.
The figures come from the histories of the order and of every child it started, and the CPU
of each workflow activation from the worker's task clock (o2a/task_clock.py).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from o2a.big_orders import (
    ISSUE_9_SHAPES,
    big_order,
)
from o2a.catalog import Catalog
from o2a.config import Settings
from o2a.decomposition import decompose
from o2a.models import ComponentKind
from o2a.server import DevServer
from tests.conftest import free_port
from tests.support import O2A, cli_env


@pytest.mark.parametrize(
    ("bundles", "lines_per_bundle", "lines", "provisioning", "components"),
    [(250, 4, 1_000, 500, 504), (50, 100, 5_000, 100, 104)],
)
def test_big_order_has_the_issues_shape(
    catalog: Catalog,
    bundles: int,
    lines_per_bundle: int,
    lines: int,
    provisioning: int,
    components: int,
) -> None:
    """Bundles x lines, bundle lines and the offer included; two Provision components per
    bundle (broadband, fixed), one each of SyncCustomer, Ship and the two billing ones."""
    order = big_order("BIG-SHAPE", bundles, lines_per_bundle)
    plan = decompose(order, catalog)
    assert len(order.lines) == lines
    assert len(plan.components) == components
    assert sum(c.kind is ComponentKind.PROVISION for c in plan.components) == provisioning
    assert order.requested_delivery_date is None
    assert all(line.requested_delivery_date is None for line in order.lines)
    assert all(
        not s.name.startswith("Simulated") for line in order.lines for s in line.item.specifications
    )


async def test_big_orders_complete_within_limits_on_a_server_and_worker_of_their_own(
    settings: Settings, tmp_path: Path
) -> None:
    """`o2a bench --big` in a process of its own against a dev server of its own: the CPU
    per activation and the events per task are the order's, not those of a suite's worth
    of workflows on a shared server and objects in the test process."""
    server = DevServer(db=None, port=free_port(), ui_port=None, log_file=tmp_path / "t.log")
    server.start()
    try:
        await server.wait_ready()
        done = await asyncio.to_thread(
            subprocess.run,
            [*O2A, "bench", "--big"],
            env=cli_env(server.address, settings),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "every order completed within the limits" in done.stdout, report
    for shape in ISSUE_9_SHAPES:
        assert f"\n{shape.name}" in done.stdout, report
