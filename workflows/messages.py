"""Sending an outbound message from workflow code, made the same way by COM and SOM.

A message is a regular activity, scheduled by a command the server records with its input,
so however often the workflow task that decided it is retried (a worker killed mid-task),
the message under its deterministic ID always carries the same body. A local activity
would cost less history but run again from a retried task, which may have taken in new
events meanwhile (a signal, a child's result) and so decide a different body for the same
ID: the chaos soak (`o2a soak`) caught exactly that, an UpdateSalesOrderEBM sent twice
with different lines, the second dropped by the bus's duplicate window.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.messaging import MessagingActivities
    from workflows.policies import MESSAGE_DEADLINE, MESSAGE_RETRY, MESSAGE_TIMEOUT

M = TypeVar("M")
Send = Callable[[MessagingActivities, M], Coroutine[Any, Any, None]]


async def send_message(send: Send[M], message: M) -> None:
    """Deliver one message; raises ActivityError once it cannot be (refused for good, or
    still failing past MESSAGE_DEADLINE)."""
    await workflow.execute_activity_method(
        send,
        message,
        start_to_close_timeout=MESSAGE_TIMEOUT,
        schedule_to_close_timeout=MESSAGE_DEADLINE,
        retry_policy=MESSAGE_RETRY,
    )
