"""`o2a move ORDER --to BUILD`: pin a running order and its running SOM children to another
version of the Worker Deployment (o2a.versioning), for an order that lives longer than its
build should (a months-long order), so the old version can drain and be retired.

Moved only after every one of its workflows' histories replays on this code, so run the
command from the new build's installation: "replays here" then means "replays on the build
it moves to". If one does not replay, nothing is moved (the order stays pinned where it
is, and the new code needs a ``workflow.patched`` first).
"""

from __future__ import annotations

from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as VersionProto
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentVersionRequest,
    UpdateWorkflowExecutionOptionsRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode

from o2a.config import Settings
from o2a.errors import OrderConflictError
from o2a.service import OrderService
from workers.worker import build_replayer

IDENTITY = "o2a-move"


async def move_order(
    client: Client, settings: Settings, order_number: str, to: WorkerDeploymentVersion
) -> list[str]:
    """The IDs of the workflows now pinned to ``to``: the order's first, then its children
    still running."""
    histories = await _open_histories(client, settings, order_number)
    await _check_version(client, to)
    replayer = build_replayer(client.data_converter)
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            raise OrderConflictError(
                f"{history.workflow_id} does not replay on this code, nothing moved: "
                f"{result.replay_failure}"
            )
    override = VersioningOverride(
        pinned=VersioningOverride.PinnedOverride(
            behavior=VersioningOverride.PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED,
            version=VersionProto(deployment_name=to.deployment_name, build_id=to.build_id),
        )
    )
    for history in histories:
        await client.workflow_service.update_workflow_execution_options(
            UpdateWorkflowExecutionOptionsRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=history.workflow_id),
                workflow_execution_options=WorkflowExecutionOptions(versioning_override=override),
                update_mask=FieldMask(paths=["versioning_override"]),
                identity=IDENTITY,
            )
        )
    return [history.workflow_id for history in histories]


async def _check_version(client: Client, version: WorkerDeploymentVersion) -> None:
    """A pin to a version no worker ever polled for would leave the order with no worker."""
    try:
        await client.workflow_service.describe_worker_deployment_version(
            DescribeWorkerDeploymentVersionRequest(
                namespace=client.namespace,
                deployment_version=VersionProto(
                    deployment_name=version.deployment_name, build_id=version.build_id
                ),
            )
        )
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        raise OrderConflictError(
            f"no version {version.build_id} of deployment {version.deployment_name!r}: "
            "start its workers first"
        ) from None


async def _open_histories(
    client: Client, settings: Settings, order_number: str
) -> list[WorkflowHistory]:
    """The order's history and those of its children still running, the order's first
    (from visibility: a child started before the order continued as new is not in the
    order's current history)."""
    described = await OrderService(client, settings).describe(order_number)
    if described.status is not WorkflowExecutionStatus.RUNNING:
        raise OrderConflictError(f"order {order_number} has ended: nothing to move")
    histories = [await client.get_workflow_handle(described.id).fetch_history()]
    # The ID is escaped (o2a.ids): no quote can end the string early.
    running = f"ParentWorkflowId = '{described.id}' AND ExecutionStatus = 'Running'"
    async for child in client.list_workflows(running):  # started by this run or an earlier one
        histories.append(await client.get_workflow_handle(child.id).fetch_history())
    return histories
