"""Contract of ProvisioningOrderWorkflow (SOM): what COM sends its children, and how a
child reports back."""

from __future__ import annotations

from o2a.models import (
    ComponentUpdate,
    ProvisioningOrder,
    ProvisioningResult,
    ProvisioningRevision,
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

__all__ = [
    "CANCEL_SIGNAL",
    "COMPONENT_UPDATE_SIGNAL",
    "RESUME_SIGNAL",
    "REVISE_SIGNAL",
    "SUSPEND_SIGNAL",
    "WORKFLOW_TYPE",
    "ComponentUpdate",
    "ProvisioningOrder",
    "ProvisioningResult",
    "ProvisioningRevision",
]
