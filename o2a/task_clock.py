"""The CPU each workflow activation takes in this worker, for the big-order test and bench.

A history's workflow-task started → completed time also counts the queueing and the GIL
waits of a busy machine; the thread time of the activation is what the workflow code
itself cost, the figure Temporal's deadlock detector (2 s per activation) cares about.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import SerializationContext, StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import Info, _Definition


@dataclass
class Longest:
    cpu_seconds: float = 0.0
    workflow_id: str = ""
    jobs: str = ""
    """What the activation carried (e.g. resolve_activity x 16)."""


class TaskClock(WorkflowRunner):
    """A workflow runner (the sandboxed one by default) that times every activation."""

    def __init__(self, inner: WorkflowRunner | None = None) -> None:
        self._inner = inner or SandboxedWorkflowRunner()
        self.longest = Longest()

    def prepare_workflow(self, defn: _Definition) -> None:
        self._inner.prepare_workflow(defn)

    def set_worker_level_failure_exception_types(
        self, types: Sequence[type[BaseException]]
    ) -> None:
        self._inner.set_worker_level_failure_exception_types(types)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _TimedInstance(self._inner.create_instance(det), self)

    def record(self, cpu_seconds: float, workflow_id: str, activation: WorkflowActivation) -> None:
        if cpu_seconds > self.longest.cpu_seconds:
            kinds: dict[str, int] = {}
            for job in activation.jobs:
                variant = job.WhichOneof("variant") or "?"
                kinds[variant] = kinds.get(variant, 0) + 1
            jobs = ", ".join(f"{kind} x {n}" for kind, n in sorted(kinds.items()))
            self.longest = Longest(cpu_seconds, workflow_id, jobs)


class _TimedInstance(WorkflowInstance):
    def __init__(self, inner: WorkflowInstance, clock: TaskClock) -> None:
        self._inner = inner
        self._clock = clock

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        started = time.thread_time()
        try:
            return self._inner.activate(act)
        finally:
            self._clock.record(
                time.thread_time() - started, self._inner.get_info().workflow_id, act
            )

    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None:
        return self._inner.get_serialization_context(command_info)

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext:
        return self._inner.get_external_store_context(command_info)

    def get_info(self) -> Info:
        return self._inner.get_info()
