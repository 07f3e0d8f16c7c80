"""The worker's runner answers the SDK's per-payload questions itself only where the answer
cannot matter: it refuses a converter for which it would."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    ExternalStorage,
    SerializationContext,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)

from o2a.client import data_converter
from o2a.workflow_runner import ContextFreeRunner


class _Unreachable(StorageDriver):
    """A driver the runner must refuse before anything could be stored in it."""

    def name(self) -> str:
        return "unreachable"

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        raise AssertionError("nothing is stored by a refused converter")

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        raise AssertionError("nothing is retrieved by a refused converter")


@dataclasses.dataclass(frozen=True)
class _PerWorkflow(DataConverter):
    """A converter that becomes another one under a workflow's context."""

    def with_context(self, context: SerializationContext) -> _PerWorkflow:
        return dataclasses.replace(self, payload_codec=None)


def test_o2a_converter_is_taken() -> None:
    ContextFreeRunner(data_converter())


def test_a_converter_that_varies_by_context_is_refused() -> None:
    with pytest.raises(ValueError, match="varies by serialization context"):
        ContextFreeRunner(_PerWorkflow())


def test_a_converter_with_external_storage_is_refused() -> None:
    stored = dataclasses.replace(
        data_converter(), external_storage=ExternalStorage(drivers=[_Unreachable()])
    )
    with pytest.raises(ValueError, match="stores payloads externally"):
        ContextFreeRunner(stored)
