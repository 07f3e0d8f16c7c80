"""ListenerDeliveryWorkflow: the events of one hub subscription, delivered to its callback
one at a time, in the order the notifier signalled them.

A listener that is down holds the queue (the delivery activity retries with backoff, for
ever), so when it is back it gets everything it missed, in order. An eventId delivered
lately is not delivered again (a message sent again by a retried activity yields the same
IDs), nor an event saying what the listener was last told already (``TmfEvent.latest``:
the order's state, a line's milestone). The hub's ``end`` signal stops delivery at once;
the run then lingers (ENDED_LINGER) so that a late start finds it ended.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.notifications import NotificationActivities
    from workflows.contracts.listener_delivery import (
        END_SIGNAL,
        EVENTS_SIGNAL,
        WORKFLOW_TYPE,
        Delivery,
        ListenerState,
        TmfEvent,
    )

DELIVERY_TIMEOUT = timedelta(seconds=15)
"""One POST; a listener that does not answer within it is retried."""
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
)
"""For ever, at most a minute apart: a listener down for hours gets its events when back."""
RECENT_IDS = 1000
"""eventIds remembered to drop duplicates: far more than one message's events."""
LATEST_SUBJECTS = 1000
"""Subjects (order states, line milestones) whose last value is remembered, newest kept."""
DELIVERIES_PER_RUN = 500
"""Continue-as-new after this many, so a busy listener's history stays short."""
IDLE = timedelta(days=1)
"""A listener with nothing to deliver for this long ends; its next event starts it again."""
ENDED_LINGER = timedelta(minutes=5)
"""How long an ended delivery stays, taking events and dropping them: a notifier that read
the hub's subscriptions before the subscription was deleted then finds it running, and its
start with the events becomes a signal, instead of starting a delivery nobody ends."""
LINGER_PATCH = "ended-delivery-lingers"


@workflow.defn(name=WORKFLOW_TYPE)
class ListenerDeliveryWorkflow:
    @workflow.init
    def __init__(self, state: ListenerState) -> None:
        self._listener = state.listener
        self._queue = deque(state.queue)
        self._recent = deque(state.recent_ids, maxlen=RECENT_IDS)
        self._latest = OrderedDict(state.latest)
        self._ended = False
        self._delivering: workflow.ActivityHandle[None] | None = None

    @workflow.signal(name=EVENTS_SIGNAL)
    def events(self, events: list[TmfEvent]) -> None:
        self._queue.extend(events)

    @workflow.signal(name=END_SIGNAL)
    def end(self) -> None:
        self._ended = True
        if self._delivering is not None:
            self._delivering.cancel()

    @workflow.run
    async def run(self, state: ListenerState) -> None:
        await self._deliver_until_ended_or_idle()
        if self._ended and workflow.patched(LINGER_PATCH):
            await workflow.sleep(ENDED_LINGER)

    async def _deliver_until_ended_or_idle(self) -> None:
        delivered = 0
        while not self._ended:
            if delivered >= DELIVERIES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(self._state())
            if not self._queue:
                try:
                    await workflow.wait_condition(
                        lambda: bool(self._queue) or self._ended, timeout=IDLE
                    )
                except TimeoutError:
                    return
                continue
            event = self._queue[0]
            if self._is_news(event):
                if not await self._deliver(event):
                    return
                delivered += 1
                self._remember(event)
            self._queue.popleft()

    def _is_news(self, event: TmfEvent) -> bool:
        if event.event_id in self._recent:
            return False
        return event.latest is None or self._latest.get(event.latest[0]) != event.latest[1]

    def _remember(self, event: TmfEvent) -> None:
        self._recent.append(event.event_id)
        if event.latest is not None:
            subject, value = event.latest
            self._latest.pop(subject, None)
            self._latest[subject] = value
            if len(self._latest) > LATEST_SUBJECTS:
                self._latest.popitem(last=False)

    async def _deliver(self, event: TmfEvent) -> bool:
        """False when the subscription was deleted while the event was on its way."""
        self._delivering = workflow.start_activity_method(
            NotificationActivities.deliver_event,
            Delivery(listener=self._listener, event=event),
            start_to_close_timeout=DELIVERY_TIMEOUT,
            retry_policy=DELIVERY_RETRY,
        )
        try:
            await self._delivering
        except (ActivityError, asyncio.CancelledError) as err:
            if self._ended and is_cancelled_exception(err):
                return False
            raise
        finally:
            self._delivering = None
        return True

    def _state(self) -> ListenerState:
        return ListenerState(
            listener=self._listener,
            queue=list(self._queue),
            recent_ids=list(self._recent),
            latest=dict(self._latest),
        )
