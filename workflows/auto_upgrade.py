"""The hub and listener-delivery workflows as a versioned worker registers them: AUTO_UPGRADE.

They never end (each hands its state on at continue-as-new), so pinned like the orders they
would hold every old build open for ever; instead they move to the deployment's current
version at their next workflow task, and stay compatible across builds through
``workflow.patched`` like any workflow change (o2a.versioning).

Subclasses rather than a ``versioning_behavior`` on the originals: the server refuses a
workflow task that names a behavior from an unversioned worker ("versioning behavior cannot
be specified without deployment options"), and o2a runs unversioned by default.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior

from workflows.listener_delivery import ListenerDeliveryWorkflow
from workflows.notification_hub import NotificationHubWorkflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.listener_delivery import WORKFLOW_TYPE as LISTENER_TYPE
    from workflows.contracts.listener_delivery import ListenerState
    from workflows.contracts.notification_hub import WORKFLOW_TYPE as HUB_TYPE
    from workflows.contracts.notification_hub import HubState


@workflow.defn(name=HUB_TYPE, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class AutoUpgradingHubWorkflow(NotificationHubWorkflow):
    @workflow.run
    async def run(self, state: HubState) -> None:
        """The SDK wants ``run`` on the class it registers; the hub's own."""
        await super().run(state)


@workflow.defn(name=LISTENER_TYPE, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class AutoUpgradingListenerDeliveryWorkflow(ListenerDeliveryWorkflow):
    @workflow.run
    async def run(self, state: ListenerState) -> None:
        """The SDK wants ``run`` on the class it registers; the listener's own."""
        await super().run(state)


AUTO_UPGRADING: dict[type, type] = {
    NotificationHubWorkflow: AutoUpgradingHubWorkflow,
    ListenerDeliveryWorkflow: AutoUpgradingListenerDeliveryWorkflow,
}
"""Each long-lived workflow and what a versioned worker registers in its place."""
