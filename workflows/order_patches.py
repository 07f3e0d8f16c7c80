"""The COM patches a run has, decided as the run begins.

Each change to COM's commands since its histories were first recorded is behind a
``workflow.patched``, so an order started on an older build replays on this one. The older
patches are asked where they apply, but on replay the SDK resolves a local activity (the
decomposition) from its marker at once and runs on into code that a later workflow task
ran, before it has heard of that task's patch markers: a patch first asked there reads as
absent, and the replay fails (a recorded history did). So the newest patch is asked as the
run begins, before any local activity or handler, and a run that has it has every older
one without asking: no such exposure, and one marker (each comes with a search attribute
upsert, two events) where there were up to four. A run from before it asks each older
patch where it always did, so its history replays as it ran. The SDK's core refuses a
history holding a patch marker the code does not ask for, so what the newest patch implies
is fixed once it has run anywhere; a later patch asked here would imply it in turn.
"""

from __future__ import annotations

from temporalio import workflow

NO_LOCAL_ACTIVITIES_PATCH = "com-without-local-activities"
"""Histories from before it decomposed the order and sent its CRM updates as local
activities (from DIET_PATCH on). The newest: it implies DIET_PATCH's SOM announces and
every older COM patch. Why COM runs no local activity: ``workflows/messages.py``."""
DIET_PATCH = "crm-updates-local-and-som-announces"
"""Histories from before it sent each CRM update as a regular activity and each
ProvisioningOrderEBM from COM. It implies every older COM patch (crm-hears-unseen-states,
repeated-request-taken-once, continue-as-new-when-suggested)."""


class OrderPatches:
    def __init__(self) -> None:
        """Asked as the run begins (the workflow's init)."""
        self.no_local_activities = workflow.patched(NO_LOCAL_ACTIVITIES_PATCH)
        """The newest patch: the decomposition and the CRM updates are regular activities."""
        self.diet = self.no_local_activities or workflow.patched(DIET_PATCH)
        """Each SOM child sends its own ProvisioningOrderEBM
        (``ProvisioningOrder.som_announces``)."""

    @property
    def local_decomposition(self) -> bool:
        """A run from before the newest patch decomposed through a local activity."""
        return not self.no_local_activities

    @property
    def local_crm_updates(self) -> bool:
        """A run of the builds between the two patches sent CRM updates that way."""
        return self.diet and not self.no_local_activities

    def has(self, patch: str) -> bool:
        """An older patch, asked where it applies by a run from before DIET_PATCH."""
        return self.diet or workflow.patched(patch)
