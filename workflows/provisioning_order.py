"""ProvisioningOrderWorkflow: the SOM role for one provisioning order component.

Runs design → activate → verify for all lines of the component, step by step, and tells
COM once per component state change (never once per line per step), both as an AIA
ProcessFulfillmentOrderUpdateEBM and as a signal to the parent order.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.fulfillment import ProvisioningStep, run_provisioning_step
    from activities.messaging import FulfillmentUpdateMessage, MessagingActivities
    from o2a import ids
    from o2a.models import (
        ComponentState,
        ComponentUpdate,
        LineUpdate,
        ProvisioningOrder,
        ProvisioningResult,
    )
    from workflows.policies import (
        FULFILLMENT_HEARTBEAT,
        FULFILLMENT_RETRY,
        FULFILLMENT_TIMEOUT,
        MESSAGE_RETRY,
        MESSAGE_TIMEOUT,
    )

COMPONENT_UPDATE_SIGNAL = "component_update"

# (step, milestone reached when every line has done it)
STEPS = (
    ("design", "PROVISION_DESIGNED"),
    ("activate", "PROVISION_ACTIVATED"),
    ("verify", "PROVISION_COMPLETE"),
)


@workflow.defn
class ProvisioningOrderWorkflow:
    @workflow.run
    async def run(self, order: ProvisioningOrder) -> ProvisioningResult:
        data: dict[str, dict[str, str]] = {line.id: {} for line in order.lines}
        for sequence, (step, milestone) in enumerate(STEPS, start=1):
            results = await asyncio.gather(
                *(
                    workflow.execute_activity(
                        run_provisioning_step,
                        ProvisioningStep(
                            order_number=order.order_number,
                            revision=order.revision,
                            component_id=order.component_id,
                            target_system=order.target_system,
                            step=step,
                            line=line,
                            run=order.run,
                        ),
                        start_to_close_timeout=FULFILLMENT_TIMEOUT,
                        heartbeat_timeout=FULFILLMENT_HEARTBEAT,
                        retry_policy=FULFILLMENT_RETRY,
                    )
                    for line in order.lines
                )
            )
            changed = [r for r in results if r.data]
            for r in changed:
                data[r.line_id].update(r.data)
            last = sequence == len(STEPS)
            update = ComponentUpdate(
                component_id=order.component_id,
                state=ComponentState.COMPLETED if last else ComponentState.IN_PROGRESS,
                milestone=milestone,
                step=step,
                line_updates=changed,
            )
            await self._report(order, sequence, update, notify_parent=not last)
        return ProvisioningResult(
            component_id=order.component_id,
            state=ComponentState.COMPLETED,
            line_updates=[LineUpdate(line_id=k, data=v) for k, v in data.items() if v],
        )

    async def _report(
        self, order: ProvisioningOrder, sequence: int, update: ComponentUpdate, notify_parent: bool
    ) -> None:
        """The EBM goes to COM's inbound queue; the signal is how the parent workflow hears it.

        The final update travels as the child's result instead of a signal, saving history.
        """
        message = workflow.execute_activity_method(
            MessagingActivities.send_fulfillment_update,
            FulfillmentUpdateMessage(
                message_id=ids.fulfillment_update_message_id(
                    order.order_number, order.revision, order.component_id, sequence
                ),
                created=workflow.now(),
                order_number=order.order_number,
                revision=order.revision,
                update=update,
            ),
            start_to_close_timeout=MESSAGE_TIMEOUT,
            retry_policy=MESSAGE_RETRY,
        )
        if not notify_parent:
            await message
            return
        parent = workflow.get_external_workflow_handle(order.parent_workflow_id)
        await asyncio.gather(message, parent.signal(COMPONENT_UPDATE_SIGNAL, update))
