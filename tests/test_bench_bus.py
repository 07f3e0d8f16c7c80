"""`o2a bench --via bus` end to end: a small `o2a up` stack (Temporal, NATS, the worker with
fulfillment over the bus, the listener, `o2a simulate`) on free ports; and one line, exit 2,
when the bus has no listener."""

from __future__ import annotations

import re
from pathlib import Path

from o2a.config import Settings
from tests.conftest import free_port
from tests.support import cli_env
from tests.test_cli import o2a, start_up


async def test_bench_via_bus_prints_both_runs_and_the_ratio(tmp_path: Path, settings: Settings):
    port, nats_port = free_port(), free_port()
    env = cli_env(f"127.0.0.1:{port}", settings)
    up = await start_up(tmp_path, port, free_port(), env, nats_port)
    try:
        await up.wait_for_output("as durable consumer", timeout=90)
        await up.wait_for_output("polling task queue", timeout=30)
        await up.wait_for_output("o2a simulate answering", timeout=30)
        bench_env = {**env, "O2A_NATS_URL": f"nats://127.0.0.1:{nats_port}"}
        run = await o2a("bench", "-n", "3", "-c", "2", "--via", "bus", env=bench_env, timeout=120)
    finally:
        await up.stop()
    assert run.returncode == 0, run
    out = run.stdout
    assert "== direct, inline simulator: 3 orders in " in out, run
    assert "== via the bus (o2a.crm.salesorder), fulfillment over the bus: 3 orders in " in out
    assert out.count("throughput      ") == 2, run
    assert out.count("order latency   p50 ") == 2, run
    assert "publish latency p50 " in out, run
    assert re.search(r"ratio via bus / direct inline: \d+\.\d\dx orders/s", out), run
    assert re.search(r"target 0\.8x of the direct path's throughput: (met|not met)", out), run
    assert "Traceback" not in run.stderr, run


async def test_bench_via_bus_without_a_listener_is_one_line_and_exit_2(
    bus_settings: Settings, temporal_address: str
):
    assert bus_settings.nats_url is not None
    env = cli_env(
        temporal_address,
        bus_settings,
        O2A_NATS_URL=bus_settings.nats_url,
        O2A_SUBJECT_PREFIX=bus_settings.subject_prefix,
    )
    run = await o2a("bench", "-n", "3", "-c", "2", "--via", "bus", env=env)
    assert run.returncode == 2, run
    assert run.stdout == "", run
    assert run.stderr_lines == [
        f"o2a: --via bus needs a listener (`o2a listen` or `o2a up`): no durable consumer "
        f"{bus_settings.subject_prefix.upper()}_SALESORDER_LISTENER on stream "
        f"{bus_settings.subject_prefix.upper()}_SALESORDER at {bus_settings.nats_url}"
    ], run
