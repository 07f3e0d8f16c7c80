"""Sending an outbound message from workflow code, made the same way by COM and SOM.

A message goes out as a local activity first: it runs inside the workflow task that decided
it and costs one marker in history, instead of an activity's three events and a workflow
task of its own to hear it finished. A message that fails there (the bus down, the outbox
unwritable) goes on as a regular activity with the full retry budget, so an outage shows as
an activity Temporal retries (`o2a status`, RETRYING) and is bounded by MESSAGE_DEADLINE.
Either way the message keeps its deterministic ID, so a second send is the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.messaging import MessagingActivities
    from workflows.policies import (
        LOCAL_MESSAGE_TIMEOUT,
        MESSAGE_DEADLINE,
        MESSAGE_RETRY,
        MESSAGE_TIMEOUT,
    )

M = TypeVar("M")
Send = Callable[[MessagingActivities, M], Coroutine[Any, Any, None]]

ONE_LOCAL_ATTEMPT = RetryPolicy(maximum_attempts=1)
"""Retries belong to the regular activity, where they are visible and bounded."""


async def send_message(send: Send[M], message: M) -> None:
    """Deliver one message; raises ActivityError once it cannot be (refused for good, or
    still failing past MESSAGE_DEADLINE)."""
    try:
        await workflow.execute_local_activity_method(
            send,
            message,
            start_to_close_timeout=LOCAL_MESSAGE_TIMEOUT,
            retry_policy=ONE_LOCAL_ATTEMPT,
        )
        return
    except FailureError as err:  # an ActivityError, or the bare cause of a local one
        if is_cancelled_exception(err):
            raise
    await workflow.execute_activity_method(
        send,
        message,
        start_to_close_timeout=MESSAGE_TIMEOUT,
        schedule_to_close_timeout=MESSAGE_DEADLINE,
        retry_policy=MESSAGE_RETRY,
    )
