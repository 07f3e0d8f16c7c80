"""`o2a soak`: a mixed load on a stack of its own while the worker is SIGKILLed every few
seconds and the Temporal server once, then the invariants of o2a/soak_checks.py.

Its own dev server (a SQLite db under ``--var``, free ports), its own task queue, outbox and
catalog, and the worker as a subprocess: nothing it kills is anyone else's. The catalog is
the shipped one with every expected duration one second, so a future-dated order due in
half a minute waits, then runs, within the soak (the shipped durations are hours).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TypeVar

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from o2a import ids
from o2a.client import connect
from o2a.config import Settings
from o2a.encryption import KEYS_FILE_VARIABLE, KEYS_VARIABLE
from o2a.errors import NoWorkerError, OrderConflictError
from o2a.models import CustomerOrder, OrderState, OrderStatus, Specification
from o2a.nats_server import NatsServer
from o2a.server import DevServer, die_with_parent
from o2a.service import OrderService
from o2a.simulator import DELAY_SPEC, FAULT_SPEC
from o2a.soak_checks import Delivery, OrderOutcome, message_files, read_delivery, run_checks
from o2a.soak_checks import summarize as summarize_checks
from starters.hold_bench import future_dated
from workflows.contracts.customer_order import OperatorRequest

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "triple_play.xml"
REVISED = ROOT / "samples" / "revisions" / "triple_play_r2_change_attribute.xml"
TASK_QUEUE = "o2a-soak"
STEP_DELAY = "0.4"
"""Seconds per simulated step on every service line: an order takes seconds, so kills land
mid-flight."""
HELD_DELAY = "1.5"
"""Seconds per step of an order that is revised or cancelled 0.5 to 2 s after its submit,
so that it is still running then."""
FAULT = "activate:PORT_UNAVAILABLE:1"
"""Fails the first run of the line's activation only: an operator's resolve completes it."""
FAULT_LINE = "1.1.1"
PATIENCE = 120.0
"""Seconds a call waits out a killed worker or server before the script gives up."""
DRAIN = 240.0
"""Seconds after the load for every order to end."""
STRAGGLERS = 30.0
"""Seconds for children still closing after their orders ended."""
TRANSIENT = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
)


@dataclass(frozen=True)
class SoakOptions:
    minutes: float
    rate: float
    """Orders per minute."""
    kill_every: float
    seed: int
    var: Path | None
    bus: bool = False
    """NATS too: messages to the outbox and the bus, fulfillment over the bus (`o2a
    simulate`), and NATS SIGKILLed and restarted once."""


@dataclass
class Chaos:
    worker_kills: int = 0
    worker_exits: int = 0
    """Exits nobody asked for (restarted all the same)."""
    restarts: Counter[str] = field(default_factory=Counter)
    """By server name."""


@dataclass
class Soak:
    """One run's stack and load: what the scripts and the chaos share."""

    options: SoakOptions
    var: Path
    settings: Settings
    server: DevServer
    service: OrderService
    client: Client
    base: CustomerOrder
    revised: CustomerOrder
    nats: NatsServer | None = None
    chaos: Chaos = field(default_factory=Chaos)
    outcomes: dict[str, OrderOutcome] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    took: dict[str, float] = field(default_factory=dict)
    """Seconds each order's script took, by order number."""


# --- the scripts ------------------------------------------------------------------------------


Script = Callable[[Soak, CustomerOrder, random.Random], Awaitable[None]]


def slowed(order: CustomerOrder, number: str, delay: str = STEP_DELAY) -> CustomerOrder:
    """The order under its own number, every service line taking ``delay`` seconds a step."""
    order = order.model_copy(deep=True, update={"order_number": number})
    for line in order.lines:
        if line.item.product_class and "Service" in line.item.product_class:
            with_spec(order, line.id, DELAY_SPEC, delay)
    return order


def with_spec(order: CustomerOrder, line_id: str, name: str, value: str) -> CustomerOrder:
    line = next(line for line in order.lines if line.id == line_id)
    line.item.specifications = [s for s in line.item.specifications if s.name != name]
    line.item.specifications.append(Specification(name=name, value=value))
    return order


async def plain(soak: Soak, order: CustomerOrder, rng: random.Random) -> None:
    await submit(soak, order)


async def revised(soak: Soak, order: CustomerOrder, rng: random.Random) -> None:
    await submit(soak, slowed(order, order.order_number, HELD_DELAY))
    await asyncio.sleep(rng.uniform(0.5, 2.0))
    revision = slowed(soak.revised, order.order_number, HELD_DELAY)
    await patient(lambda: soak.service.revise(revision, request_id=f"soak-{revision.order_number}"))


async def cancelled(soak: Soak, order: CustomerOrder, rng: random.Random) -> None:
    await submit(soak, slowed(order, order.order_number, HELD_DELAY))
    await asyncio.sleep(rng.uniform(0.5, 2.0))
    rid = f"soak-{order.order_number}"
    await patient(lambda: soak.service.cancel(order.order_number, "soak", "soak", rid))


async def fault_resolved(soak: Soak, order: CustomerOrder, rng: random.Random) -> None:
    """The activation fails once; once the order is `failed`, an operator resolves it."""
    await submit(soak, with_spec(order, FAULT_LINE, FAULT_SPEC, FAULT))
    number = order.order_number
    deadline = time.monotonic() + PATIENCE
    while (await patient(lambda: soak.service.status(number))).state is not OrderState.FAILED:
        if time.monotonic() > deadline:
            raise TimeoutError(f"order {number} never failed")
        await asyncio.sleep(0.5)
    request = OperatorRequest(operator="soak", reason="fault cleared")
    try:
        await patient(lambda: soak.service.resolve(number, request))
    except OrderConflictError:  # a retried resolve whose first try was taken
        if (await patient(lambda: soak.service.status(number))).state is OrderState.FAILED:
            raise


async def due_soon(soak: Soak, order: CustomerOrder, rng: random.Random) -> None:
    due = datetime.now(UTC) + timedelta(seconds=rng.uniform(20, 40))
    await submit(soak, future_dated(order, due))


SCRIPTS: dict[str, tuple[Script, OrderState]] = {
    "plain": (plain, OrderState.COMPLETED),
    "revised": (revised, OrderState.COMPLETED),
    "cancelled": (cancelled, OrderState.CANCELLED),
    "fault-resolved": (fault_resolved, OrderState.COMPLETED),
    "future-dated": (due_soon, OrderState.COMPLETED),
}
"""Each script and the final state it expects of its order."""


async def submit(soak: Soak, order: CustomerOrder) -> None:
    with contextlib.suppress(OrderConflictError):  # a retried submit whose first try started it
        await patient(lambda: soak.service.submit(order))


async def patient(call: Callable[[], Awaitable[T]], timeout: float = PATIENCE) -> T:
    """The call again while the worker or the server is down: the soak kills them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except (RPCError, NoWorkerError, RuntimeError) as exc:
            transient = not isinstance(exc, RPCError) or exc.status in TRANSIENT
            if not transient or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.5)


# --- the stack --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def quick_catalog(path: Path) -> Path:
    """The shipped catalog with every expected duration one second (see the module doc)."""
    catalog = json.loads(resources.files("o2a").joinpath("data/catalog.json").read_text())
    for function in catalog["fulfillment_functions"].values():
        function["expected_duration_seconds"] = 1
    path.write_text(json.dumps(catalog, indent=2))
    return path


def worker_env(settings: Settings, address: str) -> dict[str, str]:
    """Nothing of the shell's Temporal or o2a settings (the worker serves this stack only)
    but the payload keys: the worker must read what the soak's client writes."""
    kept = (KEYS_VARIABLE, KEYS_FILE_VARIABLE)
    env = {
        k: v for k, v in os.environ.items() if k in kept or not k.startswith(("TEMPORAL_", "O2A_"))
    }
    env.update(
        TEMPORAL_ADDRESS=address,
        O2A_TASK_QUEUE=settings.task_queue,
        O2A_OUTBOX_DIR=str(settings.outbox_dir),
        O2A_CATALOG=str(settings.catalog_path),
        O2A_SINKS="outbox",
        O2A_FULFILLMENT="simulator",
        PYTHONUNBUFFERED="1",
    )
    if settings.nats_url is not None:  # the outbox stays: the checks read it
        env.update(O2A_NATS_URL=settings.nats_url, O2A_SINKS="outbox,nats", O2A_FULFILLMENT="bus")
    return env


class WorkerProcess:
    """`o2a worker` (or `o2a simulate`) as a child that dies with the soak, restarted after
    each kill."""

    def __init__(self, env: dict[str, str], var: Path, command: str = "worker") -> None:
        self.env = env
        self.var = var
        self.command = command
        self.starts = 0
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.starts += 1
        with (self.var / f"{self.command}-{self.starts}.log").open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "o2a",
                self.command,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )

    def exited(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                await self.kill()


async def kill_workers(
    soak: Soak, worker: WorkerProcess, others: list[WorkerProcess], until: float
) -> None:
    """SIGKILL the worker every ``kill_every`` seconds and start it again at once; one that
    exited by itself is started again too, as are ``others`` (the bus's simulator)."""
    next_kill = time.monotonic() + soak.options.kill_every
    while time.monotonic() < until:
        await asyncio.sleep(0.2)
        for process in (worker, *others):
            if process.exited():
                soak.chaos.worker_exits += 1
                await process.start()
        if time.monotonic() >= next_kill:
            await worker.kill()
            soak.chaos.worker_kills += 1
            await worker.start()
            next_kill = time.monotonic() + soak.options.kill_every


async def restart_once(soak: Soak, server: DevServer | NatsServer, at: float) -> None:
    """SIGKILL a server once and start it again on the same ports and data."""
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    process = server.process
    assert process is not None
    process.kill()
    await asyncio.to_thread(process.wait)
    server.start()
    await server.wait_ready()
    soak.chaos.restarts[server.name] += 1


async def watch_outbox(outbox: Path, seen: dict[tuple[str, int, int], Delivery]) -> None:
    """Read every version of every message: should a file ever be replaced (a new inode),
    a second body under one ID would otherwise go unseen."""
    while True:
        scan_outbox(outbox, seen)
        await asyncio.sleep(0.5)


def scan_outbox(outbox: Path, seen: dict[tuple[str, int, int], Delivery]) -> None:
    """Each version read is also hard-linked under ``versions/`` beside the outbox (no copy:
    the replaced version lives on there), to compare bodies that differ."""
    versions = outbox.parent / "versions"
    versions.mkdir(exist_ok=True)
    for path in message_files(outbox):
        try:
            stat = path.stat()
            key = (path.name, stat.st_ino, stat.st_mtime_ns)
            if key not in seen:
                seen[key] = read_delivery(path)
                with contextlib.suppress(FileExistsError):
                    os.link(path, versions / f"{path.stem}.{stat.st_ino}.xml")
        except FileNotFoundError:
            continue


# --- the run ----------------------------------------------------------------------------------


async def run_soak(options: SoakOptions) -> int:
    var = options.var or Path(tempfile.mkdtemp(prefix="o2a-soak-"))
    var.mkdir(parents=True, exist_ok=True)
    server = DevServer(
        db=var / "temporal.db", port=free_port(), ui_port=None, log_file=var / "temporal.log"
    )
    settings = Settings(
        task_queue=TASK_QUEUE,
        outbox_dir=var / "outbox",
        catalog_path=quick_catalog(var / "catalog.json"),
        ui_url="http://localhost",
    )
    settings.outbox_dir.mkdir(exist_ok=True)
    nats = None
    if options.bus:
        nats = NatsServer(var / "nats", free_port(), var / "nats.log")
        settings = dataclasses.replace(settings, nats_url=nats.url)
    print(
        f"o2a soak: {options.minutes:g} min at {options.rate:g} orders/min, seed {options.seed}, "
        f"worker SIGKILLed every {options.kill_every:g} s, server once"
        + (", NATS once" if nats else "")
        + f"; var {var}",
        flush=True,
    )
    server.start()
    env = worker_env(settings, server.address)
    worker = WorkerProcess(env, var)
    others = [WorkerProcess(env, var, "simulate")] if nats else []
    try:
        if nats is not None:
            nats.start()
            await nats.wait_ready()
        await server.wait_ready()
        client = await connect("o2a-soak", server.address)
        service = OrderService(client, settings)
        soak = Soak(
            options,
            var,
            settings,
            server,
            service,
            client,
            slowed(service.load_order(SAMPLE), "-"),
            service.load_order(REVISED),
            nats,
        )
        for process in (worker, *others):
            await process.start()
        return await _run(soak, worker, others)
    finally:
        for process in (worker, *others):
            await process.stop()
        server.stop()
        if nats is not None:
            nats.stop()


async def _run(soak: Soak, worker: WorkerProcess, others: list[WorkerProcess]) -> int:
    options = soak.options
    rng = random.Random(options.seed)
    count = max(1, round(options.minutes * options.rate))
    plan = [rng.choice(list(SCRIPTS)) for _ in range(count)]
    prefix = f"SOAK-{uuid.uuid4().hex[:6].upper()}"
    started = time.monotonic()
    load_end = started + options.minutes * 60
    seen: dict[tuple[str, int, int], Delivery] = {}
    watcher = asyncio.create_task(watch_outbox(soak.settings.outbox_dir, seen))
    load = options.minutes * 60
    chaos = [
        asyncio.create_task(kill_workers(soak, worker, others, load_end)),
        asyncio.create_task(restart_once(soak, soak.server, started + load * 0.45)),
    ]
    if soak.nats is not None:
        chaos.append(asyncio.create_task(restart_once(soak, soak.nats, started + load * 0.7)))
    scripts = [
        asyncio.create_task(
            _one(
                soak,
                name,
                f"{prefix}-{i:05d}",
                random.Random(f"{options.seed}/{i}"),
                started + i * 60 / options.rate,
            )
        )
        for i, name in enumerate(plan)
    ]
    await asyncio.gather(*scripts, *chaos)
    for process in (worker, *others):  # serving the drain, whatever the last kill left
        if process.exited():
            await process.start()
    load_seconds = time.monotonic() - started
    await _finals(soak)
    running = await _stragglers(soak)
    elapsed = time.monotonic() - started
    watcher.cancel()
    scan_outbox(soak.settings.outbox_dir, seen)
    results = run_checks(soak.outcomes.values(), seen.values(), running)
    per_script = Counter(plan)
    slowest = max(soak.took, key=soak.took.__getitem__)
    print(
        f"orders      {count} ("
        + ", ".join(f"{name} {per_script[name]}" for name in SCRIPTS)
        + ")\n"
        f"chaos       worker kills {soak.chaos.worker_kills}, server restarts "
        f"{soak.chaos.restarts[soak.server.name]}"
        + (f", NATS restarts {soak.chaos.restarts[soak.nats.name]}" if soak.nats else "")
        + f", worker exits unasked {soak.chaos.worker_exits}\n"
        f"elapsed     {elapsed:.1f} s (load {load_seconds:.1f} s, drain "
        f"{elapsed - load_seconds:.1f} s), {count / elapsed:.2f} orders/s\n"
        f"scripts     slowest {slowest} ({soak.outcomes[slowest].script}) "
        f"{soak.took[slowest]:.1f} s\n"
        f"messages    {len(message_files(soak.settings.outbox_dir))} in the outbox, "
        f"{len(seen)} versions read",
        flush=True,
    )
    for error in soak.errors:
        print(f"script error: {error}")
    lines = summarize_checks(results)
    if not all(r.passed for r in results):
        lines.append(f"every version of every message read: {soak.var / 'versions'}")
    print("\n".join(lines), flush=True)
    return 0 if all(r.passed for r in results) and not soak.errors else 1


async def _one(soak: Soak, name: str, number: str, rng: random.Random, at: float) -> None:
    script, expected = SCRIPTS[name]
    soak.outcomes[number] = OrderOutcome(ids.escape(number), name, expected, None)
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    began = time.monotonic()
    try:
        await script(soak, slowed(soak.base, number), rng)
    except Exception as exc:  # reported, and its order's state will say the rest
        soak.errors.append(f"order {number} ({name}): {type(exc).__name__}: {exc}")
    soak.took[number] = time.monotonic() - began


async def _finals(soak: Soak) -> None:
    """Each order's result once its workflow closed; an order still open past DRAIN stays
    without a final state."""
    deadline = time.monotonic() + DRAIN

    async def final(number: str) -> None:
        handle = soak.client.get_workflow_handle(
            ids.order_workflow_id(number), result_type=OrderStatus
        )
        left = max(1.0, deadline - time.monotonic())
        try:  # result() waits as long as the workflow runs: the drain's bound is wait_for's
            result = await asyncio.wait_for(patient(handle.result, left), left)
        except Exception as exc:
            soak.errors.append(f"order {number}: no result: {type(exc).__name__}: {exc}")
            return
        outcome = soak.outcomes[number]
        soak.outcomes[number] = OrderOutcome(
            outcome.order_number,
            outcome.script,
            outcome.expected,
            result.state,
            result.status,
            result.crm_updates_sent,
        )

    await asyncio.gather(*(final(n) for n in list(soak.outcomes)))


async def _stragglers(soak: Soak) -> list[str]:
    """The workflows still running on the soak's task queue, after a bounded wait."""
    query = f"TaskQueue = '{soak.settings.task_queue}' AND ExecutionStatus = 'Running'"
    deadline = time.monotonic() + STRAGGLERS
    while True:
        running = [wf.id async for wf in soak.client.list_workflows(query)]
        if not running or time.monotonic() > deadline:
            return running
        await asyncio.sleep(1.0)
