"""The worker's workflow runner: the SDK's sandbox, minus a cost o2a has no use for.

For every payload sequence a workflow activation encodes or decodes, the SDK asks the
workflow instance for the payload's serialization context (which workflow or activity it
belongs to), so that a converter or codec that varies by context can. In the sandbox each
such question is Python source compiled and run by ``exec``: measured with py-spy under
``o2a bench -c 40`` it was 13% of the worker's CPU. o2a's converter and codec are the same
for every payload (``o2a.client.data_converter``: pydantic JSON, AES-GCM under the key
ring's current key), so its instances answer "no context" at once, which makes the SDK use
the context-free converter, the one that would have been chosen anyway. The same goes for
the external-storage context the SDK asks for every payload sequence it stores (3% of the
worker's CPU under the same load): o2a's converter has no external storage, so the answer
is never read. A converter that varies by context, or has external storage, is refused when
the runner is made.

The sandbox also imported the module of each workflow class afresh for every workflow it
started (four per triple play) and ran its class definition again: with the bytecode
written, 9% of the worker's CPU under the same load, without it 20%. It passes every
module through instead (``passthrough_all_modules``), as the workflow modules already
passed through everything they import: all of COM's and SOM's logic (``workflows/order_*``,
``o2a.tracking``) never ran under the sandbox's import-time restrictions, only the thin
class modules did. What the sandbox still refuses at run time are builtins such as
``open``; clocks, randomness, the environment, files and the network are refused in the
workflow modules and the o2a modules they run by the lint (ruff's banned-api rule,
``pyproject.toml``; ``tests/test_determinism_lint.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import (
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.workflow import Info, _Definition


class WrappingRunner(WorkflowRunner):
    """A runner around another (the sandbox, passing every module through, by default)
    whose instances it wraps."""

    def __init__(self, inner: WorkflowRunner | None = None) -> None:
        self._inner = inner or SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
        )

    def prepare_workflow(self, defn: _Definition) -> None:
        self._inner.prepare_workflow(defn)

    def set_worker_level_failure_exception_types(
        self, types: Sequence[type[BaseException]]
    ) -> None:
        self._inner.set_worker_level_failure_exception_types(types)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return self._inner.create_instance(det)


class WrappedInstance(WorkflowInstance):
    """A workflow instance passing every call on to the one it wraps."""

    def __init__(self, inner: WorkflowInstance) -> None:
        self._inner = inner

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        return self._inner.activate(act)

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

    def get_thread_id(self) -> int | None:
        return self._inner.get_thread_id()


class ContextFreeRunner(WrappingRunner):
    """The sandbox, its instances answering that no payload has a serialization context."""

    def __init__(self, converter: DataConverter, inner: WorkflowRunner | None = None) -> None:
        if _varies_by_context(converter):
            raise ValueError("the data converter varies by serialization context")
        if converter.external_storage is not None:
            raise ValueError("the data converter stores payloads externally")
        super().__init__(inner)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextFree(super().create_instance(det))


def _varies_by_context(converter: DataConverter) -> bool:
    """Whether any part of the converter is another one under some workflow's context."""
    probe = converter.with_context(WorkflowSerializationContext(namespace="-", workflow_id="-"))
    return any(
        mine is not theirs
        for mine, theirs in (
            (converter.payload_converter, probe.payload_converter),
            (converter.payload_codec, probe.payload_codec),
            (converter.failure_converter, probe.failure_converter),
        )
    )


class _ContextFree(WrappedInstance):
    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None:
        return None

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext:
        return NO_STORE_CONTEXT


NO_STORE_CONTEXT = StorageDriverStoreContext(target=None)
"""What the sandbox itself answers when asked from outside it without a workflow inside."""
