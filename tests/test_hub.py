"""TMF622 hub and listeners end to end: subscriptions through the real API, an order on a
real worker, events POSTed to listeners the test serves with uvicorn on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    QueryWorkflowInput,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode

from o2a import ids, tmf622
from o2a.config import Settings
from o2a.models import FulfillmentStatus, OrderState, OrderStatus, RevisionView, Step
from o2a.notifications import (
    SUBSCRIPTIONS_FRESH,
    Hub,
    TemporalNotifier,
    sales_order_update_events,
)
from o2a.subscriptions import EventFilter
from o2a.tmf622 import API_ROOT
from tests.support import (
    PROV_FIXED,
    Api,
    GatedFulfillment,
    StartWorker,
    finished,
    held_mid_flight,
    quick_triple_play,
    running_api,
    set_spec,
    start,
    until,
)
from workflows.contracts.listener_delivery import END_SIGNAL, TmfEvent, listener_workflow_id
from workflows.contracts.notification_hub import MATCHING_QUERY, Fanout, hub_workflow_id

HUB = f"{API_ROOT}/hub"
CANCELS = f"{API_ROOT}/cancelProductOrder"
STATE_CHANGE = "ProductOrderStateChangeEvent"
MILESTONE = "ProductOrderMilestoneEvent"
CANCEL_STATE_CHANGE = "CancelProductOrderStateChangeEvent"
ERROR_MESSAGE = "ProductOrderErrorMessageEvent"


@dataclass
class Inbox:
    """What one callback path received, in arrival order: (headers, raw body)."""

    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.posts]

    def ids(self) -> list[str]:
        return [event["eventId"] for event in self.events()]

    def types(self) -> list[str]:
        return [event["eventType"] for event in self.events()]

    def states(self) -> list[str]:
        return [
            e["event"]["productOrder"]["state"]
            for e in self.events()
            if e["eventType"] == STATE_CHANGE
        ]

    async def has_state(self, state: str) -> bool:
        return state in self.states()

    async def caught_up(self, other: Inbox) -> bool:
        return "completed" in self.states() and self.ids() == other.ids()

    async def has(self, count: int) -> bool:
        return len(self.posts) >= count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def listening(port: int, inboxes: dict[str, Inbox]) -> AsyncIterator[str]:
    """A listener on ``port`` for the block: ``POST /{name}`` lands in ``inboxes[name]``."""

    async def receive(request: Request) -> Response:
        inboxes[request.path_params["name"]].posts.append(
            (dict(request.headers), await request.body())
        )
        return Response(status_code=204)

    app = Starlette(routes=[Route("/{name}", receive, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        if serving.done():
            serving.result()
        return bool(server.started)

    try:
        await until(started, timeout=10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def subscribe(http: httpx.AsyncClient, api: Api, **body: str) -> dict[str, Any]:
    response = await http.post(HUB, json=body, headers=api.headers())
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    assert response.headers["location"] == f"{HUB}/{made['id']}"
    return made


def assert_signed(inbox: Inbox, secret: str) -> None:
    for headers, body in inbox.posts:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-o2a-signature"] == f"sha256={expected}"
        assert headers["x-o2a-event-id"] == json.loads(body)["eventId"]


async def test_listeners_get_the_orders_events_in_order_also_after_being_down(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    boxes = {name: Inbox() for name in ("down", "up", "states", "deleted", "other")}
    down_port = free_port()
    gated = GatedFulfillment()
    gate = gated.hold(Step.ACTIVATE, PROV_FIXED)
    async with (
        worker(fulfillment=gated),
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url) as http,
        listening(free_port(), boxes) as up_url,
    ):
        async with listening(down_port, boxes) as down_url:
            down = await subscribe(http, api, callback=f"{down_url}/down")
        up = await subscribe(http, api, callback=f"{up_url}/up", secret="the-up-secret")
        await subscribe(http, api, callback=f"{up_url}/states", query=f"eventType={STATE_CHANGE}")
        await subscribe(
            http, api, callback=f"{up_url}/other", query="productOrder.id=NOT-THIS-ORDER"
        )
        deleted = await subscribe(http, api, callback=f"{up_url}/deleted")
        assert up["secret"] == "the-up-secret" and len(down["secret"]) >= 32
        shown = await http.get(f"{HUB}/{up['id']}", headers=api.headers())
        assert shown.json() == {"id": up["id"], "callback": f"{up_url}/up", "query": ""}

        gone = await http.delete(f"{HUB}/{deleted['id']}", headers=api.headers())
        assert gone.status_code == 204
        for again in (http.delete, http.get):
            response = await again(f"{HUB}/{deleted['id']}", headers=api.headers())
            assert response.status_code == 404, response.text

        handle = await start(client, settings, quick_triple_play(order_number))
        try:
            await gate.wait_reached()
            async with listening(down_port, boxes):
                await until(lambda: boxes["down"].has_state("inProgress"))
            # The listener is down while the order finishes: its events wait in Temporal.
            gate.release()
            await finished(handle)
            await until(lambda: boxes["up"].has_state("completed"))
            assert not await boxes["down"].has_state("completed")
            async with listening(down_port, boxes):
                # Missed nothing and in order: the same events as the listener never down.
                await until(lambda: boxes["down"].caught_up(boxes["up"]), timeout=90)

            everything = boxes["up"].ids()
            assert len(set(everything)) == len(everything)
            events = boxes["up"].events()
            assert events[0]["eventType"] == "ProductOrderCreateEvent"
            assert events[0]["event"]["productOrder"]["id"] == order_number
            assert boxes["up"].states() == ["inProgress", "completed"]
            milestones = [e for e in events if e["eventType"] == MILESTONE]
            assert {
                m["event"]["productOrder"]["productOrderMilestone"][0]["name"] for m in milestones
            } >= {"PROVISION_COMPLETE"}
            assert_signed(boxes["up"], "the-up-secret")
            assert_signed(boxes["down"], down["secret"])
            state_changes = [e["eventId"] for e in events if e["eventType"] == STATE_CHANGE]
            assert boxes["states"].ids() == state_changes
            assert boxes["deleted"].posts == [] and boxes["other"].posts == []

            # Unsubscribed: its delivery workflow ends and nothing more comes.
            assert (
                await http.delete(f"{HUB}/{up['id']}", headers=api.headers())
            ).status_code == 204
            await until(lambda: lingering(client, listener_workflow_id(up["id"])))
        finally:
            gated.release_all()


async def test_the_hub_is_the_integrators_and_checks_what_it_is_given(
    client: Client, settings: Settings, worker: StartWorker
) -> None:
    async with (
        worker(),
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url) as http,
    ):
        body = {"callback": "http://127.0.0.1:9/events"}
        assert (await http.post(HUB, json=body)).status_code == 401
        assert (await http.post(HUB, json=body, headers=api.headers("viewer"))).status_code == 403
        assert (await http.post(HUB, json=body, headers=api.headers("operator"))).status_code == 403
        for bad in (
            {"callback": "ftp://127.0.0.1/events"},
            {"callback": "not a url"},
            {**body, "query": "eventType=ProductOrderNoSuchEvent"},
            {**body, "query": "customer=ACME"},
        ):
            response = await http.post(HUB, json=bad, headers=api.headers())
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["reason"] == "Invalid subscription"
        assert (await http.post(HUB, json={}, headers=api.headers())).status_code == 400
        unknown = await http.delete(f"{HUB}/no-such-subscription", headers=api.headers())
        assert unknown.status_code == 404
        assert unknown.json()["code"] == "404"


async def test_a_cancels_outcome_ends_its_cancel_task_for_listeners_as_get_shows_it(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """The cancel that cancels the order ends ``done``; one queued behind it is rejected,
    ``terminatedWithError``; a listener filtering on the order and the event type gets both
    tasks exactly as ``GET cancelProductOrder/{id}`` shows them."""
    boxes = {name: Inbox() for name in ("cancels", "other")}
    gated = GatedFulfillment()
    gate = gated.hold(Step.ACTIVATE, PROV_FIXED)
    async with (
        worker(fulfillment=gated),
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url, headers=api.headers()) as http,
        listening(free_port(), boxes) as url,
    ):
        query = f"eventType={CANCEL_STATE_CHANGE}&productOrder.id="
        made = await subscribe(http, api, callback=f"{url}/cancels", query=query + order_number)
        await subscribe(http, api, callback=f"{url}/other", query=query + "NOT-THIS-ORDER")
        handle = await start(client, settings, quick_triple_play(order_number))
        try:
            await gate.wait_reached()
            tasks = []
            for reason in ("customer moved", "asked twice"):
                body = {"productOrder": {"id": order_number}, "cancellationReason": reason}
                posted = await http.post(CANCELS, json=body)
                assert (posted.status_code, posted.json()["state"]) == (201, "acknowledged")
                tasks.append(posted.json()["id"])
            gate.release()
            await finished(handle)
            await until(lambda: boxes["cancels"].has(2))
        finally:
            gated.release_all()
        shown = [(await http.get(f"{CANCELS}/{task}")).json() for task in tasks]

    events = boxes["cancels"].events()
    assert [e["event"]["cancelProductOrder"] for e in events] == shown
    assert [e["eventType"] for e in events] == [CANCEL_STATE_CHANGE] * 2
    assert [task["state"] for task in shown] == ["done", "terminatedWithError"]
    assert shown[0]["cancellationReason"] == "customer moved"
    assert [e["message"] for e in shown[1]["errorMessage"]] == ["order is cancelled"]
    update = re.escape(f"USO.{ids.escape(order_number)}.r1.u") + r"\d{3}"
    for event in events:
        assert re.fullmatch(f"{update}/{CANCEL_STATE_CHANGE}", event["eventId"]), event
    assert_signed(boxes["cancels"], made["secret"])
    assert boxes["other"].posts == []


async def test_an_order_in_fallout_is_held_for_listeners_until_resolved(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    boxes = {"states": Inbox()}
    query = f"eventType={STATE_CHANGE},{ERROR_MESSAGE}"
    order = set_spec(
        quick_triple_play(order_number), "1.1.1", "SimulatedFault", "activate:PORT_UNAVAILABLE:1"
    )
    async with (
        worker(),
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url, headers=api.headers()) as http,
        listening(free_port(), boxes) as url,
    ):
        await subscribe(http, api, callback=f"{url}/states", query=query)
        handle = await start(client, settings, order)
        await until(lambda: boxes["states"].has_state("held"))
        resolved = await http.post(
            f"/api/v1/orders/{order_number}/resolve", headers=api.headers("operator")
        )
        assert resolved.status_code == 200, resolved.text
        await finished(handle)
        await until(lambda: boxes["states"].has_state("completed"))
    assert boxes["states"].types() == [STATE_CHANGE, ERROR_MESSAGE, *[STATE_CHANGE] * 3]
    assert boxes["states"].states() == ["inProgress", "held", "inProgress", "completed"]
    error = boxes["states"].events()[1]["event"]["productOrder"]
    assert (error["state"], error["productOrderErrorMessage"][0]["code"]) == (
        "held",
        "PORT_UNAVAILABLE",
    )


async def test_a_suspended_order_is_held_and_a_canceling_one_pending_cancellation(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """States the lines do not show reach listeners too: the order tells CRM as it enters
    and leaves them, though no line changed."""
    boxes = {"states": Inbox()}
    async with (
        held_mid_flight(worker, Step.ACTIVATE, PROV_FIXED) as activate,
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url, headers=api.headers()) as http,
        listening(free_port(), boxes) as url,
    ):
        await subscribe(http, api, callback=f"{url}/states", query=f"eventType={STATE_CHANGE}")
        handle = await start(client, settings, quick_triple_play(order_number))
        await activate.wait_reached()
        operator = api.headers("operator")
        orders = f"/api/v1/orders/{order_number}"
        assert (await http.post(f"{orders}/suspend", headers=operator)).status_code == 200
        await until(lambda: boxes["states"].has_state("held"))
        assert (await http.post(f"{orders}/resume", headers=operator)).status_code == 200
        await until(lambda: boxes["states"].has(3))
        cancelled = await http.post(f"{orders}/cancel", headers=operator)
        assert cancelled.status_code == 200, cancelled.text
        await until(lambda: boxes["states"].has_state("pendingCancellation"))
        activate.release()
        assert (await finished(handle)).state is OrderState.CANCELLED
        await until(lambda: boxes["states"].has_state("cancelled"))
    assert boxes["states"].states() == [
        "inProgress",
        "held",
        "inProgress",
        "pendingCancellation",
        "cancelled",
    ]


def test_a_cancel_task_event_is_the_same_each_time_its_message_is_sent() -> None:
    """Made from the CRM update that reports the outcome: a resent update yields the same
    event, the task as GET shows it, found by the order's id; a revision's outcome has no
    task."""
    at = datetime(2026, 11, 26, tzinfo=UTC)
    cancelled = RevisionView(
        number=1, outcome="cancelled", reason="moved", request_id="r1", kind="cancel"
    )
    message_id = ids.sales_order_update_message_id("O/1", 1, 7)

    def events(outcome: RevisionView) -> list[Any]:
        made = sales_order_update_events(
            message_id, at, "O/1", 1, FulfillmentStatus.CANCELLED, [], outcome
        )
        return [e for e in made if e.event_type == CANCEL_STATE_CHANGE]

    [event] = events(cancelled)
    assert events(cancelled) == [event]
    assert event.event_id == f"{message_id}/{CANCEL_STATE_CHANGE}"
    status = OrderStatus(
        order_number="O/1",
        revision=1,
        state=OrderState.CANCELLED,
        status=FulfillmentStatus.CANCELLED,
        lines=[],
        components=[],
        revisions=[cancelled],
    )
    get = tmf622.cancel_task("O/1", "r1", status).model_dump(mode="json", exclude_none=True)
    assert event.event == {"cancelProductOrder": get}
    assert EventFilter.parse(f"productOrder.id=O/1&eventType={CANCEL_STATE_CHANGE}").matches(event)
    assert not EventFilter.parse("productOrder.id=O/2").matches(event)
    assert events(cancelled.model_copy(update={"kind": "revision", "outcome": "accepted"})) == []


class CountedQueries(Interceptor):
    """A client that counts the workflow queries it sends, and fails the next when told."""

    def __init__(self) -> None:
        self.sent = 0
        self.fail_next = False

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        counter = self

        class Counting(OutboundInterceptor):
            async def query_workflow(self, input: QueryWorkflowInput) -> Any:
                counter.sent += 1
                if counter.fail_next:
                    counter.fail_next = False
                    raise RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b"")
                return await super().query_workflow(input)

        return Counting(next)


def state_event(number: int, order: str = "HUB-TEST") -> TmfEvent:
    return TmfEvent(
        event_id=f"hub-test-{number}",
        event_time=datetime(2026, 11, 26, tzinfo=UTC),
        event_type=STATE_CHANGE,
        event={"productOrder": {"id": order, "state": "inProgress"}},
    )


async def run_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(workflow_id).describe()).status
    except RPCError:
        return None


async def run_id(client: Client, workflow_id: str) -> str | None:
    return (await client.get_workflow_handle(workflow_id).describe()).run_id


async def lingering(client: Client, workflow_id: str) -> bool:
    """The delivery's current run took the end and waits out ENDED_LINGER."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    ended = False
    for event in history.events:
        signalled = event.workflow_execution_signaled_event_attributes
        ended = ended or (
            event.HasField("workflow_execution_signaled_event_attributes")
            and signalled.signal_name == END_SIGNAL
        )
        if ended and event.HasField("timer_started_event_attributes"):
            return await run_status(client, workflow_id) == WorkflowExecutionStatus.RUNNING
    return False


async def test_notifiers_read_the_hub_once_a_second_and_a_new_subscription_gets_the_next_event(
    client: Client, settings: Settings, worker: StartWorker
) -> None:
    counted = CountedQueries()
    counting = Client(**{**client.config(), "interceptors": [counted]})
    now = [0.0]
    notifier = TemporalNotifier(counting, settings.task_queue, clock=lambda: now[0])
    boxes = {"new": Inbox(), "quiet": Inbox()}
    async with worker(), listening(free_port(), boxes) as url:
        await asyncio.gather(*(notifier.notify([state_event(n)]) for n in range(5)))
        now[0] += SUBSCRIPTIONS_FRESH
        await notifier.notify([state_event(5)])
        assert counted.sent == 1  # no hub yet: nobody is told, and it was asked once
        counted.fail_next = True
        now[0] += SUBSCRIPTIONS_FRESH + 0.1
        with pytest.raises(RPCError):
            await notifier.notify([state_event(5)])
        await notifier.notify([state_event(5)])  # a failed reading is not kept: asked again
        assert counted.sent == 3

        # A notifier on the real clock reads the list just before the subscription is made:
        # the hub's answer waits until that reading is stale, so the next event reaches it.
        live = TemporalNotifier(client, settings.task_queue)
        await live.notify([state_event(6)])
        hub = Hub(client, settings.task_queue)
        made = await hub.subscribe(f"{url}/new", "", None)
        await live.notify([state_event(7)])
        await until(lambda: boxes["new"].has(1))
        assert boxes["new"].ids() == ["hub-test-7"]
        # Workers of older builds still ask the hub to match (a mixed fleet during an upgrade).
        matched = await client.get_workflow_handle(hub_workflow_id(settings.task_queue)).query(
            MATCHING_QUERY, [state_event(7)], result_type=list[Fanout]
        )
        assert [(f.subscription.id, [e.event_id for e in f.events]) for f in matched] == [
            (made.id, ["hub-test-7"])
        ]

        now[0] += SUBSCRIPTIONS_FRESH + 0.1
        await notifier.notify([state_event(8)])
        assert counted.sent == 4
        await until(lambda: boxes["new"].has(2))

        # Unsubscribed: the delivery ends and lingers; a notifier still holding the old list
        # signals it there, and nothing more is delivered.
        delivery = listener_workflow_id(made.id)
        assert await hub.unsubscribe(made.id)
        await until(lambda: lingering(client, delivery))
        ended = await run_id(client, delivery)
        await notifier.notify([state_event(9)])
        assert await run_id(client, delivery) == ended
        assert counted.sent == 4

        # One whose delivery never ran is started ended, to linger the same way.
        quiet = await hub.subscribe(f"{url}/quiet", "productOrder.id=OTHER", None)
        now[0] += SUBSCRIPTIONS_FRESH + 0.1
        await notifier.notify([state_event(10)])  # reads the list with it, not its order
        assert counted.sent == 5
        assert await run_status(client, listener_workflow_id(quiet.id)) is None
        assert await hub.unsubscribe(quiet.id)
        await until(lambda: lingering(client, listener_workflow_id(quiet.id)))
        tombstone = await run_id(client, listener_workflow_id(quiet.id))
        await notifier.notify([state_event(11, order="OTHER")])
        assert await run_id(client, listener_workflow_id(quiet.id)) == tombstone
        assert boxes["new"].ids() == ["hub-test-7", "hub-test-8"] and boxes["quiet"].posts == []
