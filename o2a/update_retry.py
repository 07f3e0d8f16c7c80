"""Operator and outcome updates survive a workflow task the server turned down.

An update is accepted inside a workflow task; when the server refuses that task's
completion (new events arrived while it ran, e.g. a child started while the order ended),
the update was never recorded, and the caller gets WorkflowNotReady. Temporal's guidance is
to send it again. This client interceptor does, under the same update ID (so an attempt
that did land is not applied twice), for every client o2a makes: the service, so every
door, and the tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

from temporalio.client import (
    Interceptor,
    OutboundInterceptor,
    StartWorkflowUpdateInput,
    WorkflowUpdateHandle,
)
from temporalio.service import RPCError, RPCStatusCode

ATTEMPTS = 5
FIRST_PAUSE = 0.05
"""Seconds before the second attempt, doubling after: the next workflow task is already
scheduled when the server refuses one, so the order is ready again in moments."""


class UpdateRetryInterceptor(Interceptor):
    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _UpdateRetry(next)


class _UpdateRetry(OutboundInterceptor):
    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        named = dataclasses.replace(input, update_id=input.update_id or str(uuid.uuid4()))
        pause = FIRST_PAUSE
        for _ in range(ATTEMPTS - 1):
            try:
                return await self.next.start_workflow_update(named)
            except RPCError as err:
                if not workflow_not_ready(err):
                    raise
            await asyncio.sleep(pause)
            pause *= 2
        return await self.next.start_workflow_update(named)


def workflow_not_ready(err: RPCError) -> bool:
    """The server's WorkflowNotReady: the workflow task the update was in did not complete."""
    return err.status is RPCStatusCode.FAILED_PRECONDITION and any(
        detail.type_url.endswith("WorkflowNotReadyFailure") for detail in err.grpc_status.details
    )
