"""The CPU each workflow activation takes in this worker, for the big-order test and bench.

A history's workflow-task started → completed time also counts the queueing and the GIL
waits of a busy machine; the thread time of the activation is what the workflow code
itself cost, the figure Temporal's deadlock detector (2 s per activation) cares about.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner

from o2a.workflow_runner import WrappedInstance, WrappingRunner


@dataclass
class Longest:
    cpu_seconds: float = 0.0
    workflow_id: str = ""
    jobs: str = ""
    """What the activation carried (e.g. resolve_activity x 16)."""


class TaskClock(WrappingRunner):
    """A workflow runner (the sandboxed one by default) that times every activation."""

    def __init__(self, inner: WorkflowRunner | None = None) -> None:
        super().__init__(inner)
        self.longest = Longest()

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _TimedInstance(super().create_instance(det), self)

    def record(self, cpu_seconds: float, workflow_id: str, activation: WorkflowActivation) -> None:
        if cpu_seconds > self.longest.cpu_seconds:
            kinds: dict[str, int] = {}
            for job in activation.jobs:
                variant = job.WhichOneof("variant") or "?"
                kinds[variant] = kinds.get(variant, 0) + 1
            jobs = ", ".join(f"{kind} x {n}" for kind, n in sorted(kinds.items()))
            self.longest = Longest(cpu_seconds, workflow_id, jobs)


class _TimedInstance(WrappedInstance):
    def __init__(self, inner: WorkflowInstance, clock: TaskClock) -> None:
        super().__init__(inner)
        self._clock = clock

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        started = time.thread_time()
        try:
            return self._inner.activate(act)
        finally:
            self._clock.record(
                time.thread_time() - started, self._inner.get_info().workflow_id, act
            )
