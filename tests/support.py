"""The one test-support module: sample orders, gates that hold simulated steps until a test
releases them, and small helpers every workflow and command test uses.

Tests make "mid-flight" deterministic with gates, never with wall-clock sleeps: a
``GatedFulfillment`` is the simulator behind the FulfillmentSystem port, except that a call
matching a hold waits until the test releases it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from lxml import etree
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import EventType, RoutingConfigUpdateState
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.common import Priority, WorkflowIDReusePolicy
from temporalio.exceptions import FailureError
from temporalio.service import RPCError
from temporalio.worker import Worker

from o2a import ids
from o2a.adapters.outbox import OutboxBus
from o2a.adapters.simulator import SimulatedFulfillment
from o2a.bus import BusConnection, Subjects
from o2a.bus_messages import stored
from o2a.config import Settings
from o2a.errors import MessageBusUnavailable, MessageRejected
from o2a.inbound import read_order_file
from o2a.listener import ClientFactory, Listener, Redelivery
from o2a.models import (
    ComponentState,
    CustomerOrder,
    LineUpdate,
    OperatorActionView,
    OrderState,
    OrderStatus,
    RevisionView,
    Specification,
    Step,
)
from o2a.ports import Destination, FulfillmentRequest, FulfillmentSystem
from workflows.contracts.customer_order import (
    REQUEST_OUTCOME_UPDATE,
    STATUS_QUERY,
    CancelRequest,
    OperatorRequest,
    OutcomeRequest,
    RevisionRequest,
)
from workflows.customer_order import CustomerOrderWorkflow

ROOT = Path(__file__).resolve().parent.parent
HISTORIES = ROOT / "tests" / "histories"
RECORD_HISTORIES = os.environ.get("O2A_RECORD_HISTORIES") == "1"
"""Record the histories that tests/test_replay.py replays, instead of replaying them."""
SAMPLES = ROOT / "samples"
WAIT = 30.0
"""Seconds any helper waits for something that must happen, before the test fails."""

# Component IDs of samples/triple_play.xml.
SYNC = "SyncCustomer.BillingSystem.order"
PROV_FIXED = "Provision.FixedProvisioningSystem.bundle-1.1"
PROV_MOBILE = "Provision.MobileProvisioningSystem.bundle-1.2"
PROV_BB = "Provision.BroadbandProvisioningSystem.bundle-1.3"
SHIP = "Ship.ShippingSystem.order"
INIT_BILL = "InitiateBilling.BillingSystem.order"
FULFIL_BILL = "FulfillBilling.BillingSystem.order"


# --- orders ---------------------------------------------------------------------------------


def sample(name: str, order_number: str) -> CustomerOrder:
    order = read_order_file(SAMPLES / name)
    return order.model_copy(update={"order_number": order_number})


def quick_triple_play(order_number: str) -> CustomerOrder:
    """The triple play without its SimulatedDelay: steps as quick as the simulator is, so
    only gates, not wall-clock time, hold them."""
    order = sample("triple_play.xml", order_number)
    for line in order.lines:
        line.item.specifications = [
            s for s in line.item.specifications if s.name != "SimulatedDelay"
        ]
    return order


def revision(order: CustomerOrder, number: int) -> CustomerOrder:
    return order.model_copy(deep=True, update={"revision": number})


def set_spec(order: CustomerOrder, line_id: str, name: str, value: str) -> CustomerOrder:
    line = next(line for line in order.lines if line.id == line_id)
    line.item.specifications = [s for s in line.item.specifications if s.name != name]
    line.item.specifications.append(Specification(name=name, value=value))
    return order


def request_id() -> str:
    return uuid.uuid4().hex


# --- gates ----------------------------------------------------------------------------------


@dataclass
class Gate:
    """Holds matching fulfillment calls: ``reached`` once one arrives, until ``release()``."""

    step: Step
    component: str | None
    revision: int | None = None
    """Only the calls made under this revision (None: any)."""
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    held: list[FulfillmentRequest] = field(default_factory=list)

    def matches(self, request: FulfillmentRequest) -> bool:
        return (
            request.step is self.step
            and self.component in (None, request.component_id)
            and self.revision in (None, request.revision)
        )

    async def wait_reached(self, timeout: float = WAIT) -> FulfillmentRequest:
        await asyncio.wait_for(self.reached.wait(), timeout)
        return self.held[0]

    def release(self) -> None:
        self.opened.set()


class GatedFulfillment:
    """The simulator, with the test in charge of when held steps may finish."""

    def __init__(self, inner: FulfillmentSystem | None = None) -> None:
        self._inner = inner or SimulatedFulfillment()
        self._gates: list[Gate] = []
        self.calls: list[FulfillmentRequest] = []

    def hold(self, step: Step, component: str | None = None, revision: int | None = None) -> Gate:
        gate = Gate(step, component, revision)
        self._gates.append(gate)
        return gate

    def release_all(self) -> None:
        for gate in self._gates:
            gate.release()

    async def execute(self, request: FulfillmentRequest) -> list[LineUpdate]:
        self.calls.append(request)
        for gate in self._gates:
            if gate.matches(request) and not gate.opened.is_set():
                gate.held.append(request)
                gate.reached.set()
                await gate.opened.wait()
        return await self._inner.execute(request)

    def steps(self, component: str | None = None) -> list[tuple[str, Step, list[str]]]:
        """(component, step, line IDs) of every call so far, in arrival order."""
        return [
            (c.component_id, c.step, [line.id for line in c.lines])
            for c in self.calls
            if component in (None, c.component_id)
        ]


class FailingBus:
    """The outbox, except that the destinations in ``failing`` fail every message until the
    test takes them out: refused for good (``refused``), else down (a passing cause, retried)."""

    def __init__(self, outbox: Path, *failing: Destination, refused: bool = False) -> None:
        self._outbox = OutboxBus(outbox)
        self.failing = set(failing)
        self._refused = refused

    async def publish(self, destination: Destination, message_id: str, document: bytes) -> bytes:
        if destination in self.failing:
            if self._refused:
                raise MessageRejected(message_id, "refused by the queue")
            raise MessageBusUnavailable(f"{destination.value} is down (test)")
        return await self._outbox.publish(destination, message_id, document)


# --- waiting on an order --------------------------------------------------------------------


async def until(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """Poll a condition on a real server (state changes arrive asynchronously)."""

    async def loop() -> None:
        while not await check():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), timeout)


async def query(handle: WorkflowHandle) -> OrderStatus:  # type: ignore[type-arg]
    status: OrderStatus = await handle.query(STATUS_QUERY, result_type=OrderStatus)
    return status


async def wait_for_state(
    handle: WorkflowHandle,  # type: ignore[type-arg]
    state: OrderState,
    timeout: float = WAIT,
) -> OrderStatus:
    async def reached() -> bool:
        return (await query(handle)).state is state

    await until(reached, timeout)
    return await query(handle)


async def components_reach(handle: OrderHandle, state: ComponentState, *component_ids: str) -> None:
    """Wait until every one of the order's components named is in ``state``."""

    async def reached() -> bool:
        states = {c.id: c.state for c in (await query(handle)).components}
        return all(states.get(cid) is state for cid in component_ids)

    await until(reached)


async def finished(handle: OrderHandle) -> OrderStatus:
    """The order's end result; a test fails rather than hangs on an order that never ends."""
    return await asyncio.wait_for(handle.result(), WAIT)


# --- what happened --------------------------------------------------------------------------


def messages(outbox: Path, prefix: str) -> list[tuple[Path, etree._Element]]:
    """Messages in sequence order (the ID ends in a zero-padded ``uNNN``), with their files."""
    files = sorted(outbox.glob(f"{prefix}.u*.xml"))
    return [(f, etree.parse(str(f)).getroot()) for f in files]


def text_of(root: etree._Element, local: str) -> list[str]:
    return [el.text or "" for el in root.iter() if etree.QName(el).localname == local]


def save_history(name: str, history: WorkflowHistory) -> None:
    HISTORIES.mkdir(exist_ok=True)
    body = {"workflow_id": history.workflow_id, "history": json.loads(history.to_json())}
    (HISTORIES / f"{name}.json").write_text(json.dumps(body, indent=1) + "\n")


async def fulfillment_calls(client: Client, workflow_id: str) -> list[dict[str, object]]:
    """The fulfillment requests of every run of a workflow, in order, from its history."""
    calls = []
    async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(workflow_id, run_id=run.run_id).fetch_history()
        for event in history.events:
            if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                continue
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "fulfill":
                [call] = await client.data_converter.decode(attrs.input.payloads[:1])
                calls.append(call)
            elif attrs.activity_type.name in ("fulfill_and_report", "announce_fulfill_and_report"):
                [reported] = await client.data_converter.decode(attrs.input.payloads[:1])
                calls.append(reported["request"])
    return calls


async def order_histories(client: Client, order_number: str) -> list[WorkflowHistory]:
    """The histories of an order and of every SOM child it started, the order's first."""
    histories: list[WorkflowHistory] = []
    pending = [ids.order_workflow_id(order_number)]
    while pending:
        history = await client.get_workflow_handle(pending.pop(0)).fetch_history()
        histories.append(history)
        pending += [
            event.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
        ]
    return histories


def task_versions(histories: list[WorkflowHistory]) -> list[str]:
    """The build IDs of the workers that completed the workflow tasks in these histories
    (Worker Versioning), each once, in the order first seen."""
    builds = {
        event.workflow_task_completed_event_attributes.deployment_version.build_id: None
        for history in histories
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    }
    return list(builds)


async def make_current(client: Client, deployment: str, build_id: str) -> None:
    """What ``temporal worker deployment set-current-version`` does, once the version
    exists (its worker has polled), and until the server has routed the task queues to it.
    The version is set once, then its routing awaited: setting it on every poll asked the
    server again and again for a change it was still making."""

    async def set_current() -> bool:
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace, deployment_name=deployment, build_id=build_id
                )
            )
        except RPCError:  # the version is not there yet
            return False
        return True

    async def routed() -> bool:
        described = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
        )
        info = described.worker_deployment_info
        return (
            info.routing_config.current_deployment_version.build_id == build_id
            and info.routing_config_update_state
            == RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_COMPLETED
        )

    await until(set_current)
    await until(routed, timeout=3 * WAIT)


# --- starting and talking to an order -------------------------------------------------------


async def start(
    client: Client, settings: Settings, order: CustomerOrder
) -> WorkflowHandle[CustomerOrderWorkflow, OrderStatus]:
    """Start an order's workflow under its business key, on the test's task queue, at the
    order's priority (inherited by its activities and children). A second start of the same
    order is refused by Temporal, running or finished."""
    return await client.start_workflow(
        CustomerOrderWorkflow.run,
        order,
        id=ids.order_workflow_id(order.order_number),
        task_queue=settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        priority=Priority(priority_key=order.priority_key()),
    )


async def revise(
    handle: WorkflowHandle[CustomerOrderWorkflow, OrderStatus], order: CustomerOrder
) -> str:
    """Send a revision; its request ID, to wait for the outcome with ``outcome``."""
    rid = request_id()
    await handle.signal(CustomerOrderWorkflow.revise, RevisionRequest(order=order, request_id=rid))
    return rid


async def cancel(
    handle: WorkflowHandle[CustomerOrderWorkflow, OrderStatus],
    reason: str | None = None,
    operator: str | None = None,
) -> str:
    rid = request_id()
    await handle.signal(
        CustomerOrderWorkflow.cancel,
        CancelRequest(request_id=rid, reason=reason, operator=operator),
    )
    return rid


async def outcome(
    handle: WorkflowHandle[CustomerOrderWorkflow, OrderStatus], rid: str
) -> RevisionView:
    """The order's recorded outcome of a revise or cancel (waits until there is one)."""
    view: RevisionView = await asyncio.wait_for(
        handle.execute_update(
            REQUEST_OUTCOME_UPDATE, OutcomeRequest(request_id=rid), result_type=RevisionView
        ),
        WAIT,
    )
    return view


async def act(
    handle: WorkflowHandle[CustomerOrderWorkflow, OrderStatus],
    action: str,
    *,
    operator: str | None = None,
    reason: str | None = None,
    component: str | None = None,
) -> OperatorActionView:
    """An operator update by its contract name (``RESOLVE_UPDATE``, ``SUSPEND_UPDATE``,
    ...): the recorded action, or ``WorkflowUpdateFailedError`` with the validator's reason."""
    view: OperatorActionView = await handle.execute_update(
        action,
        OperatorRequest(operator=operator, reason=reason, component=component),
        result_type=OperatorActionView,
    )
    return view


async def refusal(update: Awaitable[object]) -> str:
    """The reason an operator update's validator gave for refusing it."""
    try:
        await update
    except WorkflowUpdateFailedError as err:
        assert isinstance(err.cause, FailureError), err.cause
        return err.cause.message
    raise AssertionError("the update was accepted")


REPORTING_ACTIVITIES = (
    "send_fulfillment_update",
    "fulfill_and_report",
    "announce_fulfill_and_report",
)
"""A child's report goes alone, or with the inline step it reports (none pending: sent)."""


async def child_idle(client: Client, workflow_id: str, reports: int = 0) -> bool:
    """The child has decided what to do after everything that happened to it so far, with
    at least ``reports`` fulfillment updates sent: no activity or workflow task outstanding,
    its last event a completed workflow task."""
    handle = client.get_workflow_handle(workflow_id)
    described = (await handle.describe()).raw_description
    if described.pending_activities or described.HasField("pending_workflow_task"):
        return False
    events = (await handle.fetch_history()).events
    sent = sum(
        1
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name in REPORTING_ACTIVITIES
    )
    return (
        sent >= reports
        and bool(events)
        and events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )


async def signalled(client: Client, workflow_id: str, name: str, timeout: float = WAIT) -> None:
    """Wait until a workflow's history holds a signal of that name (a child got the word)."""

    async def arrived() -> bool:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        return any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and e.workflow_execution_signaled_event_attributes.signal_name == name
            for e in history.events
        )

    await until(arrived, timeout)


def line_steps(
    calls: list[tuple[str, Step, list[str]]],
) -> dict[str, list[Step]]:
    """Per line, the steps called for it, in order (from ``GatedFulfillment.steps``)."""
    steps: dict[str, list[Step]] = {}
    for _, step, lines in calls:
        for line_id in lines:
            steps.setdefault(line_id, []).append(step)
    return steps


# --- processes (the `o2a` command line and worker as a user runs them) -----------------------

CODEC_KEYS = json.dumps(
    {"active": "test-k1", "keys": {"test-k1": base64.b64encode(b"o2a test key".ljust(32)).decode()}}
)
"""The suite's payload key ring (``O2A_CODEC_KEYS``): every client, worker and command of
a test encrypts with it (tests/conftest.py), so every test goes through the codec."""

_CONSOLE_SCRIPT = Path(sys.executable).parent / "o2a"
O2A = [str(_CONSOLE_SCRIPT)] if _CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "o2a"]


def cli_env(address: str, settings: Settings, **extra: str) -> dict[str, str]:
    # Nothing from the developer's shell (API key, TLS, profile, catalog) may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "O2A_", "OTEL_"))}
    env.update(
        O2A_CODEC_KEYS=CODEC_KEYS,
        TEMPORAL_ADDRESS=address,
        O2A_TASK_QUEUE=settings.task_queue,
        O2A_OUTBOX_DIR=str(settings.outbox_dir),
        O2A_UI_URL=settings.ui_url,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Background:
    """A long-running `o2a` command (server, worker, up) in a session of its own."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log
        self.descendants: set[int] = set()

    @classmethod
    async def start(
        cls, *args: str, env: Mapping[str, str], log: Path, errors: Path | None = None
    ) -> Background:
        """Its stdout and stderr in ``log``, or stderr (its log lines) in ``errors``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out, (errors or Path(os.devnull)).open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *O2A,
                *args,
                cwd=ROOT,
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT if errors is None else err,
                start_new_session=True,
            )
        return cls(proc, log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.proc.returncode is None

    async def wait_for_output(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if not self.running():
                raise AssertionError(
                    f"process exited ({self.proc.returncode}) before printing {text!r}:\n"
                    + self.output()
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout}s:\n{self.output()}")
            await asyncio.sleep(0.1)

    def remember_descendants(self) -> None:
        """Note child processes now, to clean them up even if they leave our session."""
        self.descendants |= descendants(self.pid)

    def signal(self, sig: int) -> None:
        if self.running():
            self.proc.send_signal(sig)

    async def wait(self, timeout: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGINT, then SIGKILL for the process group and every child we saw."""
        if self.running():
            self.remember_descendants()
            self.signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await self.wait(grace)
        self.kill()
        with contextlib.suppress(TimeoutError):
            await self.wait(10)

    def kill(self) -> None:
        if self.running():
            self.remember_descendants()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in self.descendants:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


async def until_healthy(port: int) -> None:
    """Until the API process on ``port`` answers /healthz."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

        async def healthy() -> bool:
            try:
                return (await http.get("/healthz")).status_code == 200
            except httpx.TransportError:  # not listening yet
                return False

        await until(healthy)


async def wait_until(
    check: Callable[[], bool], what: str, timeout: float, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


StartWorker = Callable[..., AbstractAsyncContextManager[Worker]]
"""The ``worker`` fixture: ``async with worker(settings=None, fulfillment=None):``."""


async def closed(client: Client, order_number: str, timeout: float = WAIT) -> OrderStatus:
    """The order's result once its workflow has closed, so what a test does next needs no
    worker (an order in a final state may still be finishing its workflow)."""
    handle = client.get_workflow_handle(
        ids.order_workflow_id(order_number), result_type=OrderStatus
    )
    return await asyncio.wait_for(handle.result(), timeout)


OrderHandle = WorkflowHandle[CustomerOrderWorkflow, OrderStatus]
"""What ``start`` returns: the order's typed workflow handle."""


@contextlib.asynccontextmanager
async def held_mid_flight(
    worker: StartWorker, step: Step = Step.ACTIVATE, component: str = PROV_FIXED
) -> AsyncIterator[Gate]:
    """``async with held_mid_flight(worker) as gate:`` runs a worker on the test's queue whose
    ``step`` of ``component`` waits until ``gate.release()`` (at the latest when the block
    ends): an order submitted inside stays mid-flight for as long as the test needs. For an
    order the test starts itself (``start``), ``held`` does the same and starts it."""
    gated = GatedFulfillment()
    gate = gated.hold(step, component)
    async with worker(fulfillment=gated):
        try:
            yield gate
        finally:
            gate.release()


@contextlib.asynccontextmanager
async def running(
    client: Client,
    settings: Settings,
    worker: StartWorker,
    order: CustomerOrder,
    gated: GatedFulfillment | None = None,
) -> AsyncIterator[OrderHandle]:
    """``async with running(client, settings, worker, order, gated) as handle:`` the order,
    started on a worker of ``settings`` whose simulator is ``gated`` (its holds apply from
    the first step on); every gate is released on the way out, so no held step outlives the
    test."""
    gated = gated or GatedFulfillment()
    async with worker(settings, fulfillment=gated):
        handle = await start(client, settings, order)
        try:
            yield handle
        finally:
            gated.release_all()


class Held(NamedTuple):
    """What ``held`` yields: the order, its worker's simulator, and the gate holding it."""

    handle: OrderHandle
    gated: GatedFulfillment
    gate: Gate


@contextlib.asynccontextmanager
async def held(
    client: Client,
    settings: Settings,
    worker: StartWorker,
    order: CustomerOrder,
    step: Step,
    component: str | None = None,
) -> AsyncIterator[Held]:
    """``async with held(client, settings, worker, order, step) as (handle, gated, gate):``
    the order, started (``running``) with ``step`` of ``component`` (or of whichever comes
    first) reached and held until ``gate.release()``, at the latest when the block ends."""
    gated = GatedFulfillment()
    gate = gated.hold(step, component)
    async with running(client, settings, worker, order, gated) as handle:
        await gate.wait_reached()
        yield Held(handle, gated, gate)


# --- the HTTP API ----------------------------------------------------------------------------

API_KEYS = "int-key-0123456789:integrator,ops-key-0123456789:operator,view-key-0123456789:viewer"
"""A key per role, for tests of the API (``Api.headers(role)``)."""


@dataclass
class Api:
    """A real uvicorn server of the o2a application on a free local port."""

    url: str
    keys: dict[str, str]
    """Role name → its key."""

    def headers(self, role: str | None = "integrator", **extra: str) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return {**auth, **extra}


@contextlib.asynccontextmanager
async def running_api(client: Client, settings: Settings, **options: int) -> AsyncIterator[Api]:
    """The application served by uvicorn on a free port for the block, on the test's
    Temporal client; shut down the way SIGTERM would (requests finish first)."""
    import socket

    import uvicorn

    from o2a.api.app import create_app
    from o2a.api.auth import ApiKeys

    async def same_client() -> Client:
        return client

    app = create_app(settings, ApiKeys.parse(API_KEYS), same_client, **options)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        await until(_started(server, serving), timeout=10)
        keys = {key.split(":")[1]: key.split(":")[0] for key in API_KEYS.split(",")}
        yield Api(f"http://127.0.0.1:{port}", keys)
    finally:
        server.should_exit = True
        await serving


def _started(server: object, serving: asyncio.Task[None]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        if serving.done():
            serving.result()  # it failed to start: say why
        return bool(getattr(server, "started", False))

    return check


async def bus_messages(js: JetStreamContext, subject: str) -> list[Msg]:
    """Every message stored on ``subject`` now, oldest first (what ``o2a messages`` reads)."""
    return await stored(js, subject)


# --- the bus listener --------------------------------------------------------------------------


def sample_document(order_number: str, name: str = "triple_play.xml") -> bytes:
    """A sample EBM (TP-1001) as CRM would send it for this order number: its EBMID made
    the order's own too, or the broker would drop a second order's as a duplicate."""
    data = (SAMPLES / name).read_bytes()
    assert data.count(b">TP-1001<") == 2
    data = data.replace(b">TP-1001<", f">{order_number}<".encode())
    ebm_id, end, rest = data.partition(b"</corecom:EBMID>")
    return ebm_id + f".{order_number}".encode() + end + rest


@contextlib.asynccontextmanager
async def bus_connection(settings: Settings) -> AsyncIterator[BusConnection]:
    """The test's own connection to the bus of ``settings`` (its streams made)."""
    assert settings.nats_url is not None
    connection = BusConnection(settings.nats_url, Subjects(settings.subject_prefix), "test")
    try:
        yield connection
    finally:
        await connection.close()


def same_client(client: Client) -> ClientFactory:
    """A listener's Temporal connection: the test's client."""

    async def connected() -> Client:
        return client

    return connected


@contextlib.asynccontextmanager
async def running_listener(
    settings: Settings, connect_client: ClientFactory, redelivery: Redelivery | None = None
) -> AsyncIterator[Listener]:
    """The bus listener of ``settings`` in this process for the block, from the moment its
    consumer exists; stopped as `o2a up` stops it (the batch in hand finishes)."""
    stop = asyncio.Event()
    listener = Listener(settings, connect_client, redelivery)
    task = asyncio.create_task(listener.run(stop))
    try:
        async with bus_connection(settings) as connection:

            async def consuming() -> bool:
                if task.done():
                    task.result()  # it failed: say why
                with contextlib.suppress(NotFoundError):
                    return bool(await consumer_info(connection, listener))
                return False

            await until(consuming)
        yield listener
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def consumer_info(connection: BusConnection, listener: Listener) -> ConsumerInfo:
    js = await connection.jetstream()
    return await js.consumer_info(listener.stream, listener.consumer)


async def acked(
    connection: BusConnection, listener: Listener, sequence: int, timeout: float = WAIT
) -> None:
    """Wait until the listener has acked every inbound message up to stream ``sequence``."""

    async def done() -> bool:
        return (await consumer_info(connection, listener)).ack_floor.stream_seq >= sequence

    await until(done, timeout)


# --- the short soak, run beside the rest of the suite ------------------------------------------

SOAK_MINUTES = "2"
SHORT_SOAK_TEST = "tests/test_soak.py::test_the_short_soak_passes_every_invariant"
SHORT_SOAK = pytest.StashKey["ShortSoak"]()


@dataclass
class ShortSoak:
    """`o2a soak` on a stack of its own: two minutes of load that need not hold up the
    other tests, so it starts when the session's tests are collected and its test only
    waits for it."""

    proc: subprocess.Popen[str]
    var: Path
    began: float

    @classmethod
    def start(cls) -> ShortSoak:
        var = Path(tempfile.mkdtemp(prefix="o2a-soak-"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "o2a", "soak", "--minutes", SOAK_MINUTES, "--var", str(var)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        return cls(proc, var, time.monotonic())

    def finish(self, timeout: float) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


Samples = dict[str, dict[frozenset[tuple[str, str]], float]]


async def scrape(url: str) -> Samples:
    """Every sample of a Prometheus endpoint: name → labels → value."""
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(url)
    answer.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the series of ``name`` that carry ``labels``."""
    wanted = set(labels.items())
    return sum(v for k, v in samples.get(name, {}).items() if wanted <= k)
