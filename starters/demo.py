"""`o2a demo`: the sample orders end to end against a running server and worker.

Each run gives the samples fresh order numbers, since a submitted order number is never
reused.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from o2a.client import connect
from o2a.config import Settings
from o2a.errors import InputError
from o2a.models import OrderState, OrderStatus
from o2a.service import OrderService

DEMO_SAMPLES = ("triple_play.xml", "broadband_only.xml", "business_200.xml")


async def run_demo(settings: Settings, samples: Path) -> int:
    missing = [name for name in DEMO_SAMPLES if not (samples / name).is_file()]
    if missing:
        raise InputError(f"sample orders not found in {samples}: {', '.join(missing)}")
    service = OrderService(await connect(), settings)
    suffix = time.strftime("%Y%m%d%H%M%S")
    numbers = []
    for name in DEMO_SAMPLES:
        order = service.load_order(samples / name)
        order = order.model_copy(update={"order_number": f"{order.order_number}-{suffix}"})
        submitted = await service.submit(order)
        numbers.append(order.order_number)
        print(f"{name:<22} order {order.order_number:<28} {len(order.lines):>4} lines")
        print(f"{'':<22} {submitted.web_ui}")
    print("waiting for the orders to complete ...", flush=True)
    started = time.monotonic()
    results: list[OrderStatus] = await asyncio.gather(
        *(service.wait_for_attention(n) for n in numbers)
    )
    elapsed = time.monotonic() - started
    for result in results:
        done = sum(1 for line in result.lines if line.status.value == "COMPLETE")
        print(
            f"order {result.order_number:<28} {result.state.value:<10} {result.status.value:<9}"
            f" {done}/{len(result.lines)} lines complete, {len(result.components)} components,"
            f" {result.crm_updates_sent} CRM updates"
        )
    print(f"all done in {elapsed:.1f}s; outbox: {settings.outbox_dir}")
    return 0 if all(r.state is OrderState.COMPLETED for r in results) else 1
