"""The payload converter: pydantic JSON, as the SDK's, with one cache of type adapters for
the whole process.

The worker makes a payload converter for every workflow it starts, and the SDK's pydantic
converter keeps its type adapters per instance, so each new workflow built the validators
of its input and of every result it read again (the order model's is the largest). The
JSON converter here is one instance that every payload converter shares. The types it
meets are o2a's models and the standard ones, the classes of the process itself (the
worker's sandbox passes every module through, ``o2a/workflow_runner.py``), so the cache
keeps no class of a finished workflow alive (``tests/test_converter.py``).
"""

from __future__ import annotations

from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import CompositePayloadConverter, DefaultPayloadConverter

SHARED_JSON = PydanticJSONPlainPayloadConverter()
"""Its type adapter cache is thread-safe (``functools.lru_cache``); workflow activations
run on several threads."""


class PayloadConverter(CompositePayloadConverter):
    """The SDK's default converters, JSON replaced by SHARED_JSON (as the SDK's
    ``PydanticPayloadConverter`` replaces it by one of its own)."""

    def __init__(self) -> None:
        super().__init__(
            *(
                SHARED_JSON if c.encoding == SHARED_JSON.encoding else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )
