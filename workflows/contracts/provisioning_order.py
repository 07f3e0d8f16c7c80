"""Contract of ProvisioningOrderWorkflow (SOM): what COM sends its children, and how a
child reports back."""

from __future__ import annotations

from o2a.models import (
    ComponentUpdate,
    Model,
    ProvisioningOrder,
    ProvisioningResult,
    ProvisioningRevision,
    SalesOrderLine,
    Step,
)

WORKFLOW_TYPE = "ProvisioningOrderWorkflow"

COMPONENT_UPDATE_SIGNAL = "component_update"
"""SOM → COM: ComponentUpdate, one per component state change with all line changes. The
child's send_fulfillment_update activity delivers it with the EBM (so the child's history
holds no signal); ``message_id`` names the EBM, and COM takes each once."""
REVISE_SIGNAL = "revise"
"""Parent → child: ProvisioningRevision."""
CANCEL_SIGNAL = "cancel"
"""Parent → child: undo everything done and end the run."""
SUSPEND_SIGNAL = "suspend"
RESUME_SIGNAL = "resume"
"""Parent → child: hold new steps / carry on."""


class CarriedComponent(Model):
    """What one run of a provisioning component hands the next when it continues as new,
    between steps: the work done, the revision in force and the signals not yet taken. The
    next run's input, in place of the provisioning order."""

    order: ProvisioningOrder
    revision: int
    lines: list[SalesOrderLine]
    done: dict[str, list[Step]]
    data: dict[str, dict[str, str]]
    undone: list[str]
    revisions: list[ProvisioningRevision]
    """Revise signals received and not yet applied, in arrival order."""
    cancel: bool
    suspended: bool
    sequence: int
    """Updates sent so far: the next one's message ID goes on from here."""
    completion_reported: bool = False
    """The last step's call has sent the component's completion, and nothing has changed
    since (False in what runs of older code carried)."""
    announcement_due: bool = False
    """The run's ProvisioningOrderEBM is still to be sent (``som_announces``), no call
    having been made yet."""


__all__ = [
    "CANCEL_SIGNAL",
    "COMPONENT_UPDATE_SIGNAL",
    "RESUME_SIGNAL",
    "REVISE_SIGNAL",
    "SUSPEND_SIGNAL",
    "WORKFLOW_TYPE",
    "CarriedComponent",
    "ComponentUpdate",
    "ProvisioningOrder",
    "ProvisioningResult",
    "ProvisioningRevision",
]
