"""The benchmark's bare shape: an activity with no body, to measure Temporal's own cost."""

from __future__ import annotations

from temporalio import activity


@activity.defn(name="bare_noop")
async def bare_noop(step: str) -> None:
    del step
