"""The compression codec: big payloads shrink, small ones stay readable, bombs are refused."""

from __future__ import annotations

import zlib

import pytest
from temporalio.api.common.v1 import Payload

from o2a.client import build_data_converter
from o2a.codec import COMPRESS_ABOVE, ENCODING, MAX_DECOMPRESSED, CompressionCodec
from o2a.inbound import read_order_file
from tests.support import SAMPLES

COMPRESSING = build_data_converter(None)
"""Without keys: compression alone (tests/test_encryption.py covers the two together)."""


async def test_a_big_order_is_stored_compressed_and_comes_back_equal() -> None:
    order = read_order_file(SAMPLES / "business_200.xml")
    [payload] = await COMPRESSING.encode([order])
    plain = len(order.model_dump_json())
    assert plain > COMPRESS_ABOVE
    assert payload.metadata["encoding"] == ENCODING
    assert payload.ByteSize() * 10 < plain
    [back] = await COMPRESSING.decode([payload], [type(order)])
    assert back == order


async def test_a_small_payload_stays_plain_json() -> None:
    [payload] = await COMPRESSING.encode([{"order": "TP-1"}])
    assert payload.metadata["encoding"] == b"json/plain"
    assert payload.data == b'{"order":"TP-1"}'


async def test_a_payload_that_inflates_without_bound_is_refused() -> None:
    bomb = Payload(
        metadata={"encoding": ENCODING}, data=zlib.compress(b"\0" * (MAX_DECOMPRESSED + 1))
    )
    with pytest.raises(ValueError, match="inflates past"):
        await CompressionCodec().decode([bomb])
