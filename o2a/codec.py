"""Payload compression: the codec every client and worker share.

An order of thousands of lines is megabytes of JSON (its input, its plan, a CRM update of
every line), past the 512 KiB at which the Temporal server warns and near the 2 MiB blob
limit at which it refuses. Order data is repetitive, so zlib shrinks it twenty-fold. Small
payloads stay plain JSON, readable in the Web UI without a codec server.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/zlib"
COMPRESS_ABOVE = 16 * 1024
"""Payloads up to this many bytes stay as they are."""
MAX_DECOMPRESSED = 64 * 1024 * 1024
"""A payload that inflates past this is refused rather than exhausting the worker."""


class CompressionCodec(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._compress(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decompress(p) for p in payloads]

    @staticmethod
    def _compress(payload: Payload) -> Payload:
        raw = payload.SerializeToString()
        if len(raw) <= COMPRESS_ABOVE:
            return payload
        return Payload(metadata={"encoding": ENCODING}, data=zlib.compress(raw, 6))

    @staticmethod
    def _decompress(payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        inflater = zlib.decompressobj()
        raw = inflater.decompress(payload.data, MAX_DECOMPRESSED)
        if inflater.unconsumed_tail:
            raise ValueError(f"compressed payload inflates past {MAX_DECOMPRESSED} bytes")
        return Payload.FromString(raw)
