"""The worker's runner answers the SDK's per-payload questions itself only where the answer
cannot matter: it refuses a converter for which it would."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

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
from temporalio.workflow import _Definition

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


async def test_the_runner_writes_the_bytecode_the_sandbox_would_compile_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "runner_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("GREETING = 'hello'\n")
    (package / "probe.py").write_text(
        "from temporalio import workflow\n"
        "from runner_probe.helper import GREETING\n\n\n"
        "@workflow.defn\n"
        "class Probe:\n"
        "    @workflow.run\n"
        "    async def run(self) -> str:\n"
        "        return GREETING\n"
    )
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        probe = importlib.import_module("runner_probe.probe")
        assert not (package / "__pycache__").exists()
        ContextFreeRunner(data_converter()).prepare_workflow(
            _Definition.must_from_class(probe.Probe)
        )
    finally:
        for name in ("runner_probe.probe", "runner_probe.helper", "runner_probe"):
            sys.modules.pop(name, None)

    for name in ("probe", "helper"):
        assert Path(importlib.util.cache_from_source(str(package / f"{name}.py"))).is_file()
