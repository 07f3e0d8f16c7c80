"""`o2a bench --hold` end to end: the session's Temporal server, a worker on the test's own
task queue, and the command as a user runs it; then visibility, where the held orders must
be gone (terminated), or still waiting with --keep."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from temporalio.client import Client

from o2a.config import DEFAULT_MAX_CACHED_WORKFLOWS, Settings
from o2a.errors import InputError
from o2a.models import OrderState
from o2a.service import OrderService
from tests.support import Background, StartWorker, cli_env, until
from tests.test_bench import bench_here
from tests.test_cli import o2a

HELD = 20
NUMBER = r"\d+(?:\.\d+)?"


@pytest.mark.parametrize("keep", [False, True], ids=["terminated", "kept"])
async def test_bench_hold_reports_the_held_orders_then_ends_them(
    client: Client,
    temporal_address: str,
    settings: Settings,
    worker: StartWorker,
    keep: bool,
) -> None:
    keeping = ["--keep"] if keep else []
    env = cli_env(temporal_address, settings)
    run = await bench_here(worker, env, "--hold", str(HELD), "-c", "10", *keeping, timeout=60)
    assert run.returncode == 0, run
    out = run.stdout
    assert "Traceback" not in run.stderr, run
    held = re.search(rf"== held: {HELD} orders waiting \((HOLD-[0-9a-f]{{8}}-)00001 ", out)
    assert held, run
    prefix = held.group(1)
    assert re.search(
        rf"started         {HELD} orders in {NUMBER}s \({NUMBER} orders/s\); "
        rf"all waiting after {NUMBER}s \({NUMBER} orders/s\)",
        out,
    ), run
    events = re.search(r"history/order   (\d+) events \(parent (\d+), children 0 in 0 ", out)
    assert events and events.group(1) == events.group(2), run
    assert re.search(r"worker memory   \d+ MiB RSS \(1 process\)", out), run
    assert f"sticky cache    {DEFAULT_MAX_CACHED_WORKFLOWS} workflows (the default)" in out, run
    service = OrderService(client, settings)
    running = await service.count_orders(number_prefix=prefix, running=True)
    waiting = await service.count_orders([OrderState.WAITING], number_prefix=prefix)
    if keep:
        assert f"kept            {HELD} orders open (--keep)" in out, run
        assert "terminated" not in out, run
        assert running == waiting == HELD
        for order in await service.list_orders(limit=HELD, number_prefix=prefix):
            await client.get_workflow_handle(order.workflow_id).terminate(reason="test done")
    else:
        assert re.search(
            rf"terminated      {HELD} orders in {NUMBER}s \(Temporal terminate, no "
            r"compensation; --keep leaves them open\): 0 left running",
            out,
        ), run
        assert running == 0

        async def all_closed() -> bool:
            return await service.count_orders(number_prefix=prefix, running=False) == HELD

        await until(all_closed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hold", "0"], "--hold and --concurrency must be at least 1"),
        (["--hold", "5", "-c", "0"], "--hold and --concurrency must be at least 1"),
        (["--keep"], "--keep goes with --hold"),
        (["--hold", "5", "--compare-plain"], "--hold goes alone, not with --compare-plain"),
    ],
)
async def test_bench_hold_refuses_bad_input_in_one_line(
    temporal_address: str, settings: Settings, args: list[str], message: str
) -> None:
    run = await o2a("bench", *args, env=cli_env(temporal_address, settings))
    assert run.returncode == 2, run
    assert run.stderr == f"o2a: {message}\n", run


async def test_bench_hold_reports_the_cache_of_a_worker_started_with_the_flag(
    temporal_address: str, settings: Settings, tmp_path: Path
) -> None:
    env = cli_env(temporal_address, settings)
    worker = await Background.start(
        "worker", "--max-cached-workflows", "150", env=env, log=tmp_path / "worker.log"
    )
    try:
        await worker.wait_for_output("o2a worker polling")
        run = await o2a("bench", "--hold", "3", "--worker-pid", str(worker.pid), env=env)
    finally:
        await worker.stop()
    assert run.returncode == 0, run
    assert "sticky cache    150 workflows (--max-cached-workflows)" in run.stdout, run
    assert "0 left running" in run.stdout, run


def test_the_sticky_cache_setting_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("O2A_MAX_CACHED_WORKFLOWS", raising=False)
    assert Settings.from_env().max_cached_workflows == DEFAULT_MAX_CACHED_WORKFLOWS
    monkeypatch.setenv("O2A_MAX_CACHED_WORKFLOWS", "1")
    assert Settings.from_env().max_cached_workflows == 1
    monkeypatch.setenv("O2A_MAX_CACHED_WORKFLOWS", "0")
    with pytest.raises(InputError, match="must be 1 or more, got 0: without a sticky cache"):
        Settings.from_env()
    monkeypatch.setenv("O2A_MAX_CACHED_WORKFLOWS", "-5")
    with pytest.raises(InputError, match="O2A_MAX_CACHED_WORKFLOWS must be a whole number"):
        Settings.from_env()


def test_settings_built_in_code_refuse_a_cache_below_one(settings: Settings) -> None:
    with pytest.raises(InputError, match="max_cached_workflows must be 1 or more, got 0"):
        dataclasses.replace(settings, max_cached_workflows=0)


@pytest.mark.parametrize("size", ["-1", "0"])
async def test_worker_refuses_a_cache_below_one_in_one_line(
    temporal_address: str, settings: Settings, size: str
) -> None:
    run = await o2a(
        "worker", "--max-cached-workflows", size, env=cli_env(temporal_address, settings)
    )
    assert run.returncode == 2, run
    assert run.stderr == (
        f"o2a: --max-cached-workflows must be 1 or more, got {size}: without a sticky cache "
        "every workflow task replays the order's whole history\n"
    ), run
