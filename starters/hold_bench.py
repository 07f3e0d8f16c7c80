"""`o2a bench --hold N`: N future-dated orders held open by the worker, and what holding them
costs it (issue 13: 10,000 of them in at most 300 MB of worker RSS).

Every order is a copy of the sample with its own number, due a year ahead, so each of its
components waits on a durable timer and the order rests in state ``waiting``. The bench
starts them with bounded concurrency, counts them waiting in visibility, reports the
worker's memory, its sticky cache and the history each held order costs, then terminates
them (a bench's orders need no compensation: nothing was done for them) unless ``--keep``.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client

from o2a.client import connect
from o2a.config import DEFAULT_MAX_CACHED_WORKFLOWS, Settings
from o2a.errors import InputError, NoWorkerError
from o2a.models import CustomerOrder, OrderState
from o2a.service import OrderFilters, OrderIntake, OrderService
from starters.bench import (
    HISTORY_SAMPLE,
    BenchOptions,
    _drive,
    _find_worker_pids,
    _history_figures,
    _worker_rss_mib,
)

DUE_IN = timedelta(days=365)
"""Far beyond any component's expected duration: every component waits."""
POLL_SECONDS = 0.5
STALL_SECONDS = 120.0
"""No more orders waiting for this long: no worker is taking them."""
CACHE_FLAG = "--max-cached-workflows"
CACHE_VARIABLE = "O2A_MAX_CACHED_WORKFLOWS"
TERMINATE_REASON = "o2a bench --hold: done"


async def run_hold_bench(settings: Settings, options: BenchOptions, keep: bool) -> int:
    if options.orders < 1 or options.concurrency < 1:
        raise InputError("--hold and --concurrency must be at least 1")
    due = datetime.now(UTC).replace(microsecond=0) + DUE_IN
    order = future_dated(OrderIntake(settings).load_order(options.sample), due)
    client = await connect("o2a-bench")
    service = OrderService(client, settings)
    prefix = f"HOLD-{uuid.uuid4().hex[:8]}-"
    held: OrderFilters = {"number_prefix": prefix, "running": True}
    print(
        f"o2a bench --hold: {options.orders} x {options.sample.name} ({len(order.lines)} "
        f"lines) due {due.date()}, concurrency {options.concurrency}, "
        f"task queue {settings.task_queue!r}"
    )
    workflow_ids: list[str] = []

    async def start(i: int) -> None:
        numbered = order.model_copy(update={"order_number": f"{prefix}{i + 1:05d}"})
        workflow_ids.append((await service.submit(numbered)).workflow_id)

    try:
        began = time.monotonic()
        started = await _drive("starting", options, start)
        await _all_waiting(service, held, options.orders)
        waiting_after = time.monotonic() - began
        history = await _history_figures(client, workflow_ids[:HISTORY_SAMPLE])
        print(f"\n== held: {options.orders} orders waiting ({prefix}00001 .. {prefix}*)")
        print(
            f"started         {started.orders} orders in {started.seconds:.1f}s "
            f"({started.orders_per_second:.1f} orders/s); all waiting after {waiting_after:.1f}s "
            f"({options.orders / waiting_after:.1f} orders/s)"
        )
        print(
            f"history/order   {history.events_per_order:.0f} events (parent "
            f"{history.parent_events:.0f}, children {history.child_events:.0f} in "
            f"{history.children:.0f} workflows)"
        )
        print(f"worker memory   {_worker_rss_mib(options.worker_pid)}")
        print(f"sticky cache    {_sticky_cache(options.worker_pid)}")
    finally:
        if not keep:
            await _terminate(client, service, held, workflow_ids, options)
    if keep:
        print(
            f"kept            {len(workflow_ids)} orders open (--keep); end them with "
            f"`temporal workflow terminate --query \"OrderNumber STARTS_WITH '{prefix}'\"`"
        )
    return 0


def future_dated(order: CustomerOrder, due: datetime) -> CustomerOrder:
    """The order and each of its lines due at ``due`` (a line's own date wins over the
    order's), so every component's start lies ahead."""
    lines = [line.model_copy(update={"requested_delivery_date": due}) for line in order.lines]
    return order.model_copy(update={"requested_delivery_date": due, "lines": lines})


async def _all_waiting(service: OrderService, held: OrderFilters, orders: int) -> None:
    """Until visibility counts every order in ``waiting``; a count that stops growing for
    ``STALL_SECONDS`` means no worker is running them."""
    last, since = -1, time.monotonic()
    while (count := await service.count_orders([OrderState.WAITING], **held)) < orders:
        sys.stderr.write(f"\rwaiting    {count}/{orders} orders in state waiting")
        sys.stderr.flush()
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since > STALL_SECONDS:
            raise NoWorkerError(
                f"{count} of {orders} orders waiting, none more for {STALL_SECONDS:.0f}s: "
                "is a worker polling the task queue?"
            )
        await asyncio.sleep(POLL_SECONDS)
    print(file=sys.stderr)


async def _terminate(
    client: Client,
    service: OrderService,
    held: OrderFilters,
    workflow_ids: list[str],
    options: BenchOptions,
) -> None:
    """Terminate, not cancel: a cancel would run each order's compensation, for nothing."""
    gate = asyncio.Semaphore(options.concurrency)

    async def one(workflow_id: str) -> None:
        async with gate:
            await client.get_workflow_handle(workflow_id).terminate(reason=TERMINATE_REASON)

    began = time.monotonic()
    await asyncio.gather(*(one(w) for w in workflow_ids))
    while (left := await service.count_orders(**held)) > 0:
        await asyncio.sleep(POLL_SECONDS)
    print(
        f"terminated      {len(workflow_ids)} orders in {time.monotonic() - began:.1f}s "
        f"(Temporal terminate, no compensation; --keep leaves them open): {left} left running"
    )


def _sticky_cache(worker_pid: int | None) -> str:
    """The cache size the worker process was started with: its --max-cached-workflows,
    else its O2A_MAX_CACHED_WORKFLOWS, else the default."""
    pids = [worker_pid] if worker_pid else _find_worker_pids()
    if not pids:
        return "n/a (no worker process found on this host; pass --worker-pid)"
    try:
        argv = Path(f"/proc/{pids[0]}/cmdline").read_bytes().decode(errors="replace").split("\0")
        environ = Path(f"/proc/{pids[0]}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return f"n/a (cannot read /proc/{pids[0]})"
    for i, arg in enumerate(argv):
        if arg == CACHE_FLAG and i + 1 < len(argv):
            return f"{argv[i + 1]} workflows ({CACHE_FLAG})"
        if arg.startswith(f"{CACHE_FLAG}="):
            return f"{arg.split('=', 1)[1]} workflows ({CACHE_FLAG})"
    for entry in environ.split("\0"):
        if entry.startswith(f"{CACHE_VARIABLE}=") and entry.split("=", 1)[1].strip():
            return f"{entry.split('=', 1)[1].strip()} workflows ({CACHE_VARIABLE})"
    return f"{DEFAULT_MAX_CACHED_WORKFLOWS} workflows (the default)"
