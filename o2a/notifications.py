"""TMF622 events for hub listeners (DESIGN.md §3 "HTTP API", Events), made from the order's
own outbound messages, and the Notifier port that hands them to the listeners' delivery.

Every event comes from a message the order workflow already sends, inside the activity
that sends it, so the order workflow does not change and its histories still replay:

| message                          | events                                                |
|----------------------------------|-------------------------------------------------------|
| UpdateSalesOrderEBM, order's 1st | ProductOrderCreateEvent                               |
| every UpdateSalesOrderEBM:       |                                                       |
|   each line with a milestone     | ProductOrderMilestoneEvent (once per new milestone)   |
|   then the order                 | ProductOrderStateChangeEvent (once per new state)     |
|   then a cancel's outcome        | CancelProductOrderStateChangeEvent (done or           |
|                                  | terminatedWithError: the task as GET shows it)        |
| jeopardy UpdateSalesOrderEBM     | ProductOrderJeopardyAlertEvent                        |
| Fault + trouble ticket (fallout) | ProductOrderErrorMessageEvent (state held)            |

The CRM update carries the AIA order status and the order's own (OSM) state. The TMF state
is read from the status by the table of a line's status (``tmf622.ITEM_STATES``), except
where only the order's state says it (``tmf622.event_state``): a waiting order is pending,
a suspended one held, a canceling one pendingCancellation. The order sends a CRM update as
it enters or leaves those states even when no line changed. An order in fallout has the
status FAILED, so it is held from its error message until it is resolved. Messages of
histories from before the state was carried say what their status says. "Once per new" is
kept by each listener's delivery workflow (``TmfEvent.latest``), since only it knows what
it last sent.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from o2a import ids
from o2a.errors import InputError, NoWorkerError
from o2a.models import (
    FalloutView,
    FulfillmentStatus,
    JeopardyView,
    LineView,
    OrderState,
    RevisionView,
)
from o2a.subscriptions import CANCEL_TASK, EventFilter, EventType, check_callback, fanout
from o2a.tmf622 import answered_cancel_task, event_state, order_href, tmf_state
from workflows.contracts.listener_delivery import (
    END_SIGNAL,
    EVENTS_SIGNAL,
    Listener,
    ListenerState,
    TmfEvent,
    listener_workflow_id,
)
from workflows.contracts.listener_delivery import WORKFLOW_TYPE as LISTENER_WORKFLOW_TYPE
from workflows.contracts.notification_hub import (
    SUBSCRIBE_UPDATE,
    SUBSCRIPTIONS_QUERY,
    UNSUBSCRIBE_UPDATE,
    HubState,
    Subscription,
    hub_workflow_id,
)
from workflows.contracts.notification_hub import WORKFLOW_TYPE as HUB_WORKFLOW_TYPE

CANCEL_KIND = "cancel"
"""``RevisionView.kind`` of a cancel's outcome."""
HUB_TIMEOUT = timedelta(seconds=10)
"""How long subscribe and unsubscribe wait for a worker to take them."""


# --- events from messages -------------------------------------------------------------------


def _event(
    message_id: str,
    kind: EventType,
    created: datetime,
    order_number: str,
    details: dict[str, Any],
    line: str | None = None,
    latest: tuple[str, str] | None = None,
) -> TmfEvent:
    """An event about the order: ``event.productOrder`` is its id, href and ``details``."""
    order = {"id": order_number, "href": order_href(order_number), "@type": "ProductOrder"}
    return _tmf_event(message_id, kind, created, {"productOrder": order | details}, line, latest)


def _tmf_event(
    message_id: str,
    kind: EventType,
    created: datetime,
    event: dict[str, Any],
    line: str | None = None,
    latest: tuple[str, str] | None = None,
) -> TmfEvent:
    """The eventId is the message ID, the kind and the line (escaped): message IDs have no
    ``/``, so it is unique per event and the same when the message is sent again."""
    suffix = f"/{ids.escape(line)}" if line is not None else ""
    return TmfEvent(
        event_id=f"{message_id}/{kind.value}{suffix}",
        event_time=created,
        event_type=kind.value,
        event=event,
        latest=latest,
    )


def _items(lines: Sequence[str]) -> list[dict[str, str]]:
    return [{"productOrderItemId": line} for line in lines]


def sales_order_update_events(
    message_id: str,
    created: datetime,
    order_number: str,
    revision: int,
    status: FulfillmentStatus,
    lines: Sequence[LineView],
    outcome: RevisionView | None = None,
    order_state: OrderState | None = None,
) -> list[TmfEvent]:
    """The order's first CRM update (sequence 1, whatever its revision) also says the order
    was created: it is sent as the order starts. The state change comes after the update's
    milestones, as the order reaches its state by them: a completed order's last event
    says it is completed. An update that reports a cancel's ``outcome`` ends with the
    cancel task's state change."""
    state = {"state": event_state(status, order_state)}
    events = []
    if message_id == ids.sales_order_update_message_id(order_number, revision, 1):
        events.append(_event(message_id, EventType.CREATE, created, order_number, state))
    key = ids.escape(order_number)
    for line in lines:
        if line.milestone is None:
            continue
        milestone = {
            "name": line.milestone,
            "milestoneDate": created.isoformat(),
            "status": line.status.value,
            "productOrderItem": _items([line.id]),
        }
        events.append(
            _event(
                message_id,
                EventType.MILESTONE,
                created,
                order_number,
                {**state, "productOrderMilestone": [milestone]},
                line=line.id,
                latest=(f"{key}/{ids.escape(line.id)}/milestone", line.milestone),
            )
        )
    events.append(
        _event(
            message_id,
            EventType.STATE_CHANGE,
            created,
            order_number,
            state,
            latest=(f"{key}/state", state["state"]),
        )
    )
    if outcome is not None and outcome.kind == CANCEL_KIND and outcome.request_id is not None:
        task = answered_cancel_task(order_number, outcome).model_dump(
            mode="json", exclude_none=True
        )
        events.append(
            _tmf_event(message_id, EventType.CANCEL_STATE_CHANGE, created, {CANCEL_TASK: task})
        )
    return events


def jeopardy_events(
    message_id: str,
    created: datetime,
    order_number: str,
    jeopardy: JeopardyView,
    lines: Sequence[str],
) -> list[TmfEvent]:
    alert = {
        "id": message_id,
        "name": f"{jeopardy.component} late",
        "jeopardyType": jeopardy.severity,
        "alertDate": jeopardy.raised_at.isoformat(),
        "message": f"component {jeopardy.component} was expected to complete by "
        f"{jeopardy.expected_by.isoformat()}",
        "productOrderItem": _items(lines),
    }
    details = {"productOrderJeopardyAlert": [alert]}
    return [_event(message_id, EventType.JEOPARDY_ALERT, created, order_number, details)]


def fallout_events(
    message_id: str, created: datetime, order_number: str, fallout: FalloutView
) -> list[TmfEvent]:
    """An incident puts the order in fallout (failed, TMF held) until it is resolved."""
    error = {
        "id": fallout.id,
        "code": fallout.code,
        "reason": fallout.message,
        "message": f"component {fallout.component or '-'}, step {fallout.step or '-'}: "
        f"{fallout.message}",
        "status": fallout.state,
        "timestamp": (fallout.raised_at or created).isoformat(),
        "productOrderItem": _items(fallout.lines),
    }
    details = {"state": tmf_state(OrderState.FAILED), "productOrderErrorMessage": [error]}
    return [_event(message_id, EventType.ERROR_MESSAGE, created, order_number, details)]


# --- signing -------------------------------------------------------------------------------


def signature(secret: str, body: bytes) -> str:
    """``X-O2A-Signature``: the listener recomputes it over the raw body to know the event
    came from o2a and was not changed."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


# --- the port and its Temporal adapter -------------------------------------------------------


class Notifier(Protocol):
    async def notify(self, events: Sequence[TmfEvent]) -> None:
        """Hand the events, in order, to every listener that wants them; at least once:
        notifying the same events again delivers nothing twice."""
        ...


SUBSCRIPTIONS_FRESH = 1.0
"""Seconds a notifier matches events against the hub's subscriptions as it last read them.
Asking the hub for every CRM update was a query through the server to a worker, 11 per
triple play, all served by the one hub workflow. The hub's door waits as long after a
subscribe, so every event after its answer is matched against the new list; a deleted
subscription's delivery lingers ended for a late signal (``Hub.unsubscribe``)."""


def _not_found(err: RPCError) -> bool:
    return err.status is RPCStatusCode.NOT_FOUND


async def hub_subscriptions(client: Client, task_queue: str) -> list[Subscription]:
    """The hub's subscriptions; none when there is no hub (nobody has subscribed)."""
    try:
        subscriptions: list[Subscription] = await client.get_workflow_handle(
            hub_workflow_id(task_queue)
        ).query(SUBSCRIPTIONS_QUERY, result_type=list[Subscription])
    except RPCError as err:
        if _not_found(err):
            return []
        raise
    return subscriptions


async def _signal_delivery(
    client: Client, task_queue: str, subscription: Subscription, signal: str, *args: Any
) -> None:
    """Signal the subscription's delivery workflow, starting it where none runs."""
    listener = Listener(
        subscription_id=subscription.id, callback=subscription.callback, secret=subscription.secret
    )
    await client.start_workflow(
        LISTENER_WORKFLOW_TYPE,
        ListenerState(listener=listener),
        id=listener_workflow_id(subscription.id),
        task_queue=task_queue,
        start_signal=signal,
        start_signal_args=list(args),
    )


class TemporalNotifier:
    """Matches events against the hub's subscriptions, read at most SUBSCRIPTIONS_FRESH
    ago, and signal-with-starts each listener's delivery workflow with its events."""

    def __init__(
        self, client: Client, task_queue: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._clock = clock
        self._asked: tuple[float, asyncio.Future[list[Subscription]]] | None = None
        """When the hub was last asked (before the query left) and its answer, shared by
        every notification meanwhile: at most one query started a second."""

    async def notify(self, events: Sequence[TmfEvent]) -> None:
        if not events:
            return
        for each in fanout(await self._subscriptions(), events):
            await _signal_delivery(
                self._client, self._task_queue, each.subscription, EVENTS_SIGNAL, each.events
            )

    async def _subscriptions(self) -> list[Subscription]:
        now = self._clock()
        if self._asked is None or self._asked[0] < now - SUBSCRIPTIONS_FRESH:
            # In a context of its own: the query is no one notification's (nor its trace's).
            answer = asyncio.create_task(
                hub_subscriptions(self._client, self._task_queue), context=contextvars.Context()
            )
            answer.add_done_callback(self._forget_failed)
            self._asked = (now, answer)
        # Shielded: a notification cancelled while waiting leaves the answer to the others.
        return await asyncio.shield(self._asked[1])

    def _forget_failed(self, answer: asyncio.Future[list[Subscription]]) -> None:
        """A failed question is asked again by the next notification (which retries)."""
        failed = answer.cancelled() or answer.exception() is not None
        if failed and self._asked is not None and self._asked[1] is answer:
            self._asked = None


class Hub:
    """The hub's use cases for the API door; subscriptions live in the hub workflow."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue
        self._id = hub_workflow_id(task_queue)

    async def subscribe(self, callback: str, query: str, secret: str | None) -> Subscription:
        """Starts the hub with the first subscription (update-with-start). Answered once
        every notifier matches against it."""
        check_callback(callback)
        EventFilter.parse(query)
        if secret is not None and not secret:
            raise InputError("secret: empty")
        subscription = Subscription(
            id=uuid.uuid4().hex,
            callback=callback,
            query=query,
            secret=secret or secrets.token_hex(32),
        )
        start: WithStartWorkflowOperation[Any, None] = WithStartWorkflowOperation(
            HUB_WORKFLOW_TYPE,
            HubState(),
            id=self._id,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=type(None),
        )
        try:
            stored: Subscription = await self._client.execute_update_with_start_workflow(
                SUBSCRIBE_UPDATE,
                subscription,
                start_workflow_operation=start,
                result_type=Subscription,
                rpc_timeout=HUB_TIMEOUT,
            )
        except WorkflowUpdateFailedError as err:
            raise InputError(str(err.cause)) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise self._no_worker() from None
        await asyncio.sleep(SUBSCRIPTIONS_FRESH)  # until every notifier's list has it
        return stored

    def _no_worker(self) -> NoWorkerError:
        return NoWorkerError(f"no worker took the hub's update on task queue {self._task_queue!r}")

    async def find(self, subscription_id: str) -> Subscription | None:
        subscriptions = await hub_subscriptions(self._client, self._task_queue)
        return next((s for s in subscriptions if s.id == subscription_id), None)

    async def unsubscribe(self, subscription_id: str) -> bool:
        """False for a subscription the hub does not have. The hub ends the listener's
        delivery; a notifier that read the list before may yet signal-with-start it with a
        last event, so the delivery is also started ended where none runs: either way a
        late start finds it lingering (``ENDED_LINGER``) and its events are dropped."""
        found = await self.find(subscription_id)
        if found is None:
            return False
        try:
            await self._client.get_workflow_handle(self._id).execute_update(
                UNSUBSCRIBE_UPDATE, subscription_id, rpc_timeout=HUB_TIMEOUT
            )
        except WorkflowUpdateFailedError:
            return False
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise self._no_worker() from None
        except RPCError as err:
            if _not_found(err):
                return False
            raise
        await _signal_delivery(self._client, self._task_queue, found, END_SIGNAL)
        return True
