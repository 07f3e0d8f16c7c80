"""Sending an outbound message from workflow code, made the same way by COM and SOM.

Most messages are regular activities, scheduled by a command the server records with its
input, so however often the workflow task that decided one is retried (a worker killed
mid-task), the message under its deterministic ID always carries the same body.

COM runs no local activity (``NO_LOCAL_ACTIVITIES_PATCH`` in ``workflows/order_patches.py``).
A local activity's result is not an event: the SDK's core records its marker and tells the
workflow of it on its own, and the two can part. When a query is answered in a workflow
task whose local activity has just finished, the core completes that task with the marker
and forces a new one, and the workflow hears the result only in the new task, after the
signals and results that arrived meanwhile (`sdk-core` `managed_run.rs`, "If there are
pending LA resolutions, and we're responding to a query"). On replay it hears the result
where the marker is, before them, decides otherwise, and the order fails its workflow tasks
for good ("No command scheduled for event"). The API, the console and the tests query
orders all the time, so this was not rare: `make test` met it (an abort during a cancel).

Runs of the builds that sent CRM updates as local activities (``local_crm_updates``) replay
as they ran, through ``send_local``: a local activity runs again from a retried task, which
may have taken in new events meanwhile and so decide a different body for the same ID (the
chaos soak, `o2a soak`, caught exactly that), so the sinks keep the first body an ID is
given and return it, and the order takes another update found under its ID as told and
sends what that does not say under its next ID (``OrderReporter._send_update``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from temporalio import exceptions, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.messaging import MessagingActivities
    from workflows.policies import MESSAGE_DEADLINE, MESSAGE_RETRY, MESSAGE_TIMEOUT

LOCAL_ATTEMPT = RetryPolicy(maximum_attempts=1)
"""A local activity's one try: a failing bus is the regular activity's to retry, where the
order's status shows each attempt (pending activities) and the deadline makes an incident."""
LOCAL_FAILURES = (exceptions.ApplicationError, exceptions.TimeoutError, exceptions.ActivityError)
"""How a local activity fails: the SDK raises an error the activity raised as it is, and
wraps a timeout in an ActivityError (so does a cancel, which is not a failure to retry)."""

M = TypeVar("M")
Send = Callable[[MessagingActivities, M], Coroutine[Any, Any, object]]
R = TypeVar("R")
SendLocal = Callable[[MessagingActivities, M], Coroutine[Any, Any, R]]


async def send_message(send: Send[M], message: M) -> None:
    """Deliver one message; raises ActivityError once it cannot be (refused for good, or
    still failing past MESSAGE_DEADLINE)."""
    await _scheduled(send, message)


async def send_local(send: SendLocal[M, R], message: M) -> R:
    """Deliver one message, first as a local activity of one try, then, if that failed, as
    a regular activity. Raises ActivityError as ``send_message`` does."""
    try:
        return await workflow.execute_local_activity_method(
            send, message, start_to_close_timeout=MESSAGE_TIMEOUT, retry_policy=LOCAL_ATTEMPT
        )
    except LOCAL_FAILURES as err:
        if isinstance(err.cause, exceptions.CancelledError):
            raise
        workflow.logger.info("sending it as an activity, with retries: %s", err)
    return await _scheduled(send, message)


async def _scheduled(send: SendLocal[M, R], message: M) -> R:
    """A regular activity, retried until MESSAGE_DEADLINE."""
    return await workflow.execute_activity_method(
        send,
        message,
        start_to_close_timeout=MESSAGE_TIMEOUT,
        schedule_to_close_timeout=MESSAGE_DEADLINE,
        retry_policy=MESSAGE_RETRY,
    )
