"""Fulfillment systems over the bus (``O2A_FULFILLMENT=bus``) on a real NATS server and a real
Temporal dev server: the step's request goes out on ``<prefix>.fulfillment.<Target>.request``
and the step completes, by its task token, when the response comes back on ``.response``.

The systems are the simulator as ``o2a simulate`` runs it (a process, or the service that
``o2a up`` runs), or a gated simulator speaking the same protocol, so a test holds an answer
for as long as it needs (a system that takes hours, or never answers).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.fulfillment import NO_ROUTE, FulfillmentActivities
from o2a import ids
from o2a.adapters import Wiring
from o2a.adapters.simulator import SimulatedFulfillment
from o2a.bus import MSG_ID, BusConnection, Subjects
from o2a.bus_responder import BusResponder
from o2a.client import data_converter
from o2a.config import Settings
from o2a.faults import FULFILLMENT_FAULT_TYPE
from o2a.fulfillment_bus import (
    CORRELATION_ID,
    REPLY_TOKEN,
    ProtocolError,
    read_response,
    reply_headers,
    request_message,
)
from o2a.models import (
    ComponentState,
    CustomerOrder,
    FaultDetail,
    OrderState,
    OrderStatus,
    Step,
)
from o2a.nats_server import NatsServer
from o2a.ports import Destination, FulfillmentRequest, FulfillmentSystem
from o2a.simulator import activation_data
from tests.conftest import free_port
from tests.support import (
    O2A,
    PROV_BB,
    PROV_FIXED,
    PROV_MOBILE,
    Background,
    GatedFulfillment,
    StartWorker,
    act,
    bus_messages,
    cancel,
    cli_env,
    finished,
    outcome,
    query,
    quick_triple_play,
    revise,
    revision,
    sample,
    set_spec,
    start,
    until,
    wait_for_state,
)
from workers.simulate import run_simulator
from workers.worker import build_replayer, serving
from workflows.contracts.customer_order import RESOLVE_UPDATE
from workflows.fulfillment_call import NO_RESPONSE

BROADBAND = "Provision.BroadbandProvisioningSystem.bundle-1.1"
"""The provisioning component of samples/broadband_only.xml."""
TRIPLE_PLAY_CHILDREN = (PROV_FIXED, PROV_MOBILE, PROV_BB)


@pytest.fixture
def on_bus(bus_settings: Settings) -> Settings:
    return dataclasses.replace(bus_settings, fulfillment="bus")


@pytest.fixture
async def js(on_bus: Settings) -> AsyncIterator[JetStreamContext]:
    connection = connection_of(on_bus, "test-reader")
    yield await connection.jetstream()
    await connection.close()


def connection_of(settings: Settings, name: str) -> BusConnection:
    assert settings.nats_url is not None
    return BusConnection(settings.nats_url, Subjects(settings.subject_prefix), name)


@asynccontextmanager
async def bus_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    """A worker as ``o2a worker`` runs it on the bus: steps sent as requests, the responses
    read by the durable consumer beside it."""
    wiring = Wiring(settings, "test-worker")
    try:
        async with serving(client, settings, wiring=wiring) as worker:
            yield worker
    finally:
        await wiring.close()


@asynccontextmanager
async def systems(settings: Settings, system: FulfillmentSystem) -> AsyncIterator[None]:
    """Fulfillment systems answering the test's requests on the bus through ``system``."""
    connection = connection_of(settings, "test-systems")
    stop = asyncio.Event()
    answering = asyncio.create_task(BusResponder(connection, system, "test").run(stop))
    try:
        yield
    finally:
        stop.set()
        await answering
        await connection.close()


@asynccontextmanager
async def simulator_service(settings: Settings) -> AsyncIterator[None]:
    """The simulated systems as ``o2a up`` runs them (one of its bus services)."""
    stop = asyncio.Event()
    service = asyncio.create_task(run_simulator(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await service


async def history_of(client: Client, workflow_id: str) -> list[EventType.ValueType]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [event.event_type for event in history.events]


async def activity_types(client: Client, workflow_ids: list[str]) -> Counter[str]:
    """How often each activity was scheduled by these workflows (their latest runs)."""
    types: Counter[str] = Counter()
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                types[event.activity_task_scheduled_event_attributes.activity_type.name] += 1
    return types


async def stored(js: JetStreamContext, subject: str) -> int:
    """Messages stored now on ``subject`` (wildcards allowed)."""
    stream = await js.find_stream_name_by_subject(subject)
    info = await js.stream_info(stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


def responses_taken(js: JetStreamContext, settings: Settings) -> Callable[[], Awaitable[bool]]:
    """A check: every response stored so far has been read and acked by the workers."""
    subjects = Subjects(settings.subject_prefix)
    subject = subjects.fulfillment_response("*")
    stream = subjects.stream_of(subject)
    durable = f"{stream}_RESPONSES"

    async def check() -> bool:
        info = await js.consumer_info(stream, durable)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    return check


# --- the whole order over the bus ---------------------------------------------------------------


async def test_a_triple_play_completes_with_the_simulator_process(
    client: Client,
    on_bus: Settings,
    js: JetStreamContext,
    temporal_address: str,
    order_number: str,
    tmp_path: Path,
) -> None:
    assert on_bus.nats_url is not None
    env = cli_env(
        temporal_address,
        on_bus,
        O2A_NATS_URL=on_bus.nats_url,
        O2A_SUBJECT_PREFIX=on_bus.subject_prefix,
    )
    simulator = await Background.start("simulate", env=env, log=tmp_path / "simulate.log")
    try:
        await simulator.wait_for_output("o2a simulate answering")
        async with bus_worker(client, on_bus):
            result = await finished(await start(client, on_bus, quick_triple_play(order_number)))
        simulator.signal(signal.SIGINT)
        assert await simulator.wait(15) == 0, simulator.output()
    finally:
        await simulator.stop()
    assert "o2a simulate stopped" in simulator.output()

    assert result.state is OrderState.COMPLETED, result
    assert result.fallouts == []
    order = quick_triple_play(order_number)
    mobile = next(line for line in order.lines if line.id == "1.2.1")
    data = {line.id: line.data for line in result.lines}
    expected = activation_data(order_number, mobile, "MobileProvisioningSystem")
    assert expected.items() <= data["1.2.1"].items()
    # Every step went over the bus, none inline, and each request got its one response.
    workflows = [ids.order_workflow_id(order_number)] + [
        ids.provisioning_workflow_id(order_number, c) for c in TRIPLE_PLAY_CHILDREN
    ]
    types = await activity_types(client, workflows)
    assert "fulfill" not in types
    # Each child sends its ProvisioningOrderEBM by an activity of its own (no inline call
    # to carry it), COM none.
    parent_types = await activity_types(client, workflows[:1])
    assert types["send_provisioning_order"] == len(TRIPLE_PLAY_CHILDREN), types
    assert "send_provisioning_order" not in parent_types, parent_types
    subjects = Subjects(on_bus.subject_prefix)
    assert (
        types["request_fulfillment"]
        == await stored(js, subjects.fulfillment_request("*"))
        == await stored(js, subjects.fulfillment_response("*"))
    )
    requests = await bus_messages(js, subjects.fulfillment_request("MobileProvisioningSystem"))
    first = requests[0]
    assert first.headers is not None
    body = json.loads(first.data)
    assert first.headers[CORRELATION_ID] == body["request_id"]
    assert first.headers[MSG_ID] == f"{body['request_id']}.1"
    assert [json.loads(m.data)["step"] for m in requests] == ["design", "activate", "verify"]


async def test_simulate_needs_a_bus(temporal_address: str, settings: Settings) -> None:
    process = await asyncio.create_subprocess_exec(
        *O2A,
        "simulate",
        env=cli_env(temporal_address, settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert err.decode().strip() == "o2a: o2a simulate answers on the bus: set O2A_NATS_URL"
    assert not out


async def test_systems_and_workers_started_before_the_bus_wait_for_it(
    client: Client,
    on_bus: Settings,
    order_number: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    nats = NatsServer(store=tmp_path / "nats", port=free_port(), log_file=tmp_path / "nats.log")
    own = dataclasses.replace(on_bus, nats_url=nats.url)

    async def both_waiting() -> bool:
        return caplog.text.count("cannot read") >= 2

    try:
        with caplog.at_level(logging.WARNING, logger="o2a.bus_consumer"):
            async with simulator_service(own), bus_worker(client, own):
                await until(both_waiting)  # the request and the response consumers
                nats.start()
                await nats.wait_ready()
                result = await finished(
                    await start(client, own, sample("broadband_only.xml", order_number))
                )
    finally:
        nats.stop()
    assert result.state is OrderState.COMPLETED
    assert caplog.text.count("cannot read") == 2, caplog.text  # one line per outage


# --- what the systems answer --------------------------------------------------------------------


async def fallouts_of(
    client: Client, order: CustomerOrder
) -> tuple[OrderStatus, list[tuple[str, str, str | None, str, list[str]]]]:
    handle = client.get_workflow_handle(
        ids.order_workflow_id(order.order_number), result_type=OrderStatus
    )
    status = await wait_for_state(handle, OrderState.FAILED)
    return status, [(f.code, f.component, f.step, f.message, f.lines) for f in status.fallouts]


async def test_a_fault_falls_out_as_inline_and_resolve_completes(
    client: Client,
    settings: Settings,
    on_bus: Settings,
    worker: StartWorker,
    order_number: str,
) -> None:
    def faulty(number: str) -> CustomerOrder:
        order = sample("broadband_only.xml", number)
        return set_spec(order, "1.1.1", "SimulatedFault", "activate:PORT_UNAVAILABLE:1")

    inline_order, bus_order = faulty(f"{order_number}-I"), faulty(f"{order_number}-B")
    async with worker():
        await start(client, settings, inline_order)
        _, inline = await fallouts_of(client, inline_order)
    async with simulator_service(on_bus), bus_worker(client, on_bus):
        handle = await start(client, on_bus, bus_order)
        status, over_bus = await fallouts_of(client, bus_order)
        assert [(f.code, f.state, f.component, f.step) for f in status.fallouts] == [
            ("PORT_UNAVAILABLE", "open", BROADBAND, "activate")
        ]
        assert over_bus == [
            (code, component, step, message.replace(inline_order.order_number, order_number), lines)
            for code, component, step, message, lines in inline
        ]
        await act(handle, RESOLVE_UPDATE, component=BROADBAND)
        result = await finished(handle)
    assert result.state is OrderState.COMPLETED
    assert [f.state for f in result.fallouts] == ["resolved"]


async def test_a_refusal_is_retried_and_the_step_completes(
    client: Client, on_bus: Settings, order_number: str
) -> None:
    order = set_spec(
        sample("broadband_only.xml", order_number), "1.1.1", "SimulatedOutage", "activate:2"
    )
    gated = GatedFulfillment()
    async with systems(on_bus, gated), bus_worker(client, on_bus):
        result = await finished(await start(client, on_bus, order))
    assert result.state is OrderState.COMPLETED
    assert result.fallouts == []
    activations = [c for c in gated.calls if c.step is Step.ACTIVATE]
    assert [c.attempt for c in activations] == [1, 2, 3]


async def test_a_system_that_never_answers_is_fallout_and_resolve_runs_the_step_again(
    client: Client, on_bus: Settings, order_number: str
) -> None:
    short = dataclasses.replace(on_bus, fulfillment_deadline=2.0)
    gated = GatedFulfillment()
    silent = gated.hold(Step.ACTIVATE, BROADBAND)
    async with systems(short, gated), bus_worker(client, short):
        handle = await start(client, short, sample("broadband_only.xml", order_number))
        request = await silent.wait_reached()
        await wait_for_state(handle, OrderState.FAILED)
        status = await query(handle)
        [fallout] = status.fallouts
        assert (fallout.code, fallout.component, fallout.step) == (
            NO_RESPONSE,
            BROADBAND,
            "activate",
        )
        assert fallout.message == (
            "BroadbandProvisioningSystem did not answer activate of component "
            f"{BROADBAND} within 2 s (request {request.request_id})"
        )
        silent.release()  # the late answer finds no step waiting: nothing happens
        await act(handle, RESOLVE_UPDATE)
        result = await finished(handle)
    assert result.state is OrderState.COMPLETED
    assert [f.state for f in result.fallouts] == ["resolved"]
    runs = [(c.run, c.attempt) for c in gated.calls if c.step is Step.ACTIVATE]
    assert runs == [(1, 1), (2, 1)]  # one request, no resends; resolve made a new run


async def test_an_order_planned_for_the_bus_on_a_worker_without_one_is_fallout() -> None:
    """The two ways round: never a step that waits for an answer that cannot come."""
    call = FulfillmentRequest(
        request_id="FR.1",
        order_number="O-1",
        revision=1,
        component_id="c",
        function="Provision",
        target_system="ASAP",
        step=Step.DESIGN,
        lines=[],
    )
    inline_only = FulfillmentActivities(SimulatedFulfillment())
    bus_only = FulfillmentActivities(None, requester=None)
    for activity, where in (
        (inline_only.request_fulfillment, "over the bus"),
        (bus_only.fulfill, "inline"),
    ):
        with pytest.raises(ApplicationError) as info:
            await ActivityEnvironment().run(activity, call)
        assert info.value.type == FULFILLMENT_FAULT_TYPE and info.value.non_retryable
        detail = FaultDetail.model_validate(info.value.details[0])
        assert (detail.code, detail.step) == (NO_ROUTE, Step.DESIGN)
        assert f"planned to reach ASAP {where}" in info.value.message


# --- responses that come late, twice, or to nobody ----------------------------------------------


async def test_a_response_after_a_worker_restart_completes_its_step(
    client: Client, on_bus: Settings, js: JetStreamContext, order_number: str
) -> None:
    gated = GatedFulfillment()
    activate = gated.hold(Step.ACTIVATE, BROADBAND)
    subjects = Subjects(on_bus.subject_prefix)
    responses = subjects.fulfillment_response("BroadbandProvisioningSystem")
    async with systems(on_bus, gated):
        async with bus_worker(client, on_bus):
            handle = await start(client, on_bus, sample("broadband_only.xml", order_number))
            await activate.wait_reached()
        # No worker runs: the system answers now, into the durable stream.
        answered = await stored(js, responses)
        activate.release()

        async def answer_stored() -> bool:
            return await stored(js, responses) > answered

        await until(answer_stored)
        async with bus_worker(client, on_bus):
            result = await finished(handle)
    assert result.state is OrderState.COMPLETED
    assert result.fallouts == []


async def test_a_late_duplicate_response_changes_nothing(
    client: Client,
    on_bus: Settings,
    js: JetStreamContext,
    order_number: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gated = GatedFulfillment()
    verify = gated.hold(Step.VERIFY, BROADBAND)
    subjects = Subjects(on_bus.subject_prefix)
    child = ids.provisioning_workflow_id(order_number, BROADBAND)
    async with systems(on_bus, gated), bus_worker(client, on_bus):
        handle = await start(client, on_bus, sample("broadband_only.xml", order_number))
        await verify.wait_reached()
        answers = await bus_messages(
            js, subjects.fulfillment_response("BroadbandProvisioningSystem")
        )
        design = next(m for m in answers if json.loads(m.data)["request_id"].endswith("design"))
        before = await history_of(client, child)
        assert design.headers is not None
        with caplog.at_level(logging.INFO, logger="workers.fulfillment_responses"):
            # The same response again, as a system that answers twice would send it.
            await js.publish(
                design.subject,
                design.data,
                headers={**design.headers, MSG_ID: design.headers[MSG_ID] + ".again"},
            )
            await until(responses_taken(js, on_bus))
        assert await history_of(client, child) == before
        verify.release()
        result = await finished(handle)
    assert result.state is OrderState.COMPLETED
    dropped = [r.getMessage() for r in caplog.records if "no step waits for it" in r.getMessage()]
    assert len(dropped) == 1 and json.loads(design.data)["request_id"] in dropped[0]


async def test_a_revision_while_activation_waits_supersedes_the_request(
    client: Client, on_bus: Settings, js: JetStreamContext, order_number: str
) -> None:
    """Acceptance: the revision is applied while the activation system still holds the
    revision-1 request; its late response then changes nothing."""
    order = quick_triple_play(order_number)
    revised = set_spec(revision(order, 2), "1.2.1", "DataAllowance", "50GB")
    gated = GatedFulfillment()
    activation = gated.hold(Step.ACTIVATE, PROV_MOBILE, revision=1)
    child = ids.provisioning_workflow_id(order_number, PROV_MOBILE)
    async with systems(on_bus, gated), bus_worker(client, on_bus):
        handle = await start(client, on_bus, order)
        superseded = await activation.wait_reached()
        rid = await revise(handle, revised)
        assert (await outcome(handle, rid)).outcome == "accepted"
        result = await finished(handle)  # while the revision-1 activation is still held
        assert result.state is OrderState.COMPLETED, result
        assert result.revision == 2
        assert all(c.state is ComponentState.COMPLETED for c in result.components)
        child_history = await history_of(client, child)

        activation.release()  # the system answers the superseded request at last
        late = f"{superseded.request_id}.1.response"

        async def late_answer_stored() -> bool:
            stored_ = await bus_messages(
                js, Subjects(on_bus.subject_prefix).fulfillment_response("MobileProvisioningSystem")
            )
            return any(m.headers and m.headers[MSG_ID] == late for m in stored_)

        await until(late_answer_stored)
        await until(responses_taken(js, on_bus))
        assert await history_of(client, child) == child_history
        assert await query(handle) == result
    for workflow_id in (child, ids.order_workflow_id(order_number)):  # deterministic
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        replayed = await build_replayer(data_converter()).replay_workflow(
            history, raise_on_replay_failure=False
        )
        assert replayed.replay_failure is None, replayed.replay_failure

    mobile = [
        (c.step, [line.id for line in c.lines], c.revision)
        for c in gated.calls
        if c.component_id == PROV_MOBILE
    ]
    mobile_lines = ["1.2.1", "1.2.2"]
    assert mobile == [
        (Step.DESIGN, mobile_lines, 1),
        (Step.ACTIVATE, mobile_lines, 1),  # held, superseded by the revision
        (Step.UNDO_ACTIVATE, mobile_lines, 1),  # taken back, in case the system did it
        (Step.UNDO_DESIGN, ["1.2.1"], 1),  # the changed line's work so far
        (Step.DESIGN, ["1.2.1"], 2),
        (Step.ACTIVATE, mobile_lines, 2),
        (Step.VERIFY, mobile_lines, 2),
    ], mobile


async def test_a_cancel_while_activation_waits_ends_the_order_without_its_answer(
    client: Client, on_bus: Settings, order_number: str
) -> None:
    gated = GatedFulfillment()
    activation = gated.hold(Step.ACTIVATE, PROV_MOBILE)
    async with systems(on_bus, gated), bus_worker(client, on_bus):
        handle = await start(client, on_bus, quick_triple_play(order_number))
        await activation.wait_reached()
        rid = await cancel(handle, "the customer moved")
        assert (await outcome(handle, rid)).outcome == "cancelled"
        result = await finished(handle)  # the activation is still held
        activation.release()
    assert result.state is OrderState.CANCELLED
    assert [(c.step, c.revision) for c in gated.calls if c.component_id == PROV_MOBILE] == [
        (Step.DESIGN, 1),
        (Step.ACTIVATE, 1),
        (Step.UNDO_ACTIVATE, 1),
        (Step.UNDO_DESIGN, 1),
    ]


# --- the protocol -------------------------------------------------------------------------------


def test_a_request_carries_its_correlation_id_and_reply_token() -> None:
    call = FulfillmentRequest(
        request_id="FR.O-1.r1.c.design",
        order_number="O-1",
        revision=1,
        component_id="c",
        function="Provision",
        target_system="ASAP",
        step=Step.DESIGN,
        lines=[],
        attempt=3,
    )
    message = request_message(Subjects("p"), call, b"\x00token")
    assert message.subject == "p.fulfillment.ASAP.request"
    assert message.headers == {
        MSG_ID: "FR.O-1.r1.c.design.3",
        CORRELATION_ID: "FR.O-1.r1.c.design",
        REPLY_TOKEN: base64.b64encode(b"\x00token").decode(),
    }
    assert reply_headers(message.headers) == {
        **message.headers,
        MSG_ID: "FR.O-1.r1.c.design.3.response",
    }


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b"not json", {REPLY_TOKEN: "dG9rZW4="}, "not a fulfillment response"),
        (b'{"request_id": "r", "outcome": "done"}', {REPLY_TOKEN: "dG9rZW4="}, "outcome"),
        (b'{"request_id": "r", "outcome": "fault"}', {REPLY_TOKEN: "dG9rZW4="}, "says no fault"),
        (b'{"request_id": "r", "outcome": "completed"}', None, "no O2a-Reply-Token header"),
        (b'{"request_id": "r", "outcome": "completed"}', {REPLY_TOKEN: "%%"}, "malformed"),
    ],
)
def test_a_response_off_protocol_is_refused(
    body: bytes, headers: dict[str, str] | None, reason: str
) -> None:
    with pytest.raises(ProtocolError, match=reason):
        read_response(body, headers)
    with pytest.raises(ProtocolError, match="no Nats-Msg-Id header"):
        reply_headers({})


async def test_nats_restarted_mid_flight_loses_nothing(
    client: Client, on_bus: Settings, order_number: str, tmp_path: Path
) -> None:
    """NATS stopped once the first request is stored and started again on the same store:
    requests, responses and outbound messages wait or are retried, the order completes,
    and every message is stored once."""
    nats = NatsServer(store=tmp_path / "nats", port=free_port(), log_file=tmp_path / "nats.log")
    own = dataclasses.replace(on_bus, nats_url=nats.url)
    subjects = Subjects(own.subject_prefix)
    with nats:
        await nats.wait_ready()
        reader = connection_of(own, "test-reader")
        try:
            js = await reader.jetstream()
            async with simulator_service(own), bus_worker(client, own):
                handle = await start(client, own, quick_triple_play(order_number))

                async def a_request_stored() -> bool:
                    return await stored(js, subjects.fulfillment_request("*")) > 0

                await until(a_request_stored)
                nats.stop()
                nats.start()
                await nats.wait_ready()
                # A response lost with the server comes again once its request is redelivered
                # (the responder's ack wait), so allow for that.
                result = await asyncio.wait_for(handle.result(), 120)
            outbound = [
                m.headers[MSG_ID]
                for d in Destination
                for m in await bus_messages(js, subjects.of(d))
                if m.headers
            ]
        finally:
            await reader.close()
    assert result.state is OrderState.COMPLETED, result
    assert len(outbound) == len(set(outbound)) and outbound
