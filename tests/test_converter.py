"""The payload converter shares its type adapters across workflows: a revised triple play
reads only the process's own classes, none a sandbox imported for one workflow, so the
shared cache keeps no class of a finished workflow alive."""

from __future__ import annotations

import sys
import typing
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from o2a.client import data_converter
from o2a.config import Settings
from o2a.converter import SHARED_JSON
from tests.support import StartWorker, finished, quick_triple_play, revise, revision, start


def classes(hint: Any) -> list[type]:
    """The classes a type hint names, through unions and generics."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return [hint]
    parts = [p for p in (typing.get_origin(hint), *typing.get_args(hint)) if p is not None]
    return [c for part in parts for c in classes(part)]


def test_every_converter_shares_one_json_converter() -> None:
    first, second = (data_converter().payload_converter_class() for _ in range(2))
    assert first is not second
    assert first.converters[b"json/plain"] is second.converters[b"json/plain"] is SHARED_JSON


async def test_the_types_a_workflow_reads_are_the_processes_own(
    client: Client,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read: list[Any] = []
    reading = SHARED_JSON.from_payload

    def recorded(payload: Payload, type_hint: type | None = None) -> Any:
        read.append(type_hint)
        return reading(payload, type_hint)

    monkeypatch.setattr(SHARED_JSON, "from_payload", recorded)
    order = quick_triple_play(order_number)
    async with worker():
        handle = await start(client, settings, order)
        await revise(handle, revision(order, 2))
        await finished(handle)

    named = {c for hint in read if hint is not None for c in classes(hint)}
    assert {"CustomerOrder", "ProvisioningOrder", "OrderPlan"} <= {c.__name__ for c in named}
    for cls in named:
        # A class of a sandboxed import is not the one this process has under its name.
        assert getattr(sys.modules[cls.__module__], cls.__qualname__, None) is cls, cls
