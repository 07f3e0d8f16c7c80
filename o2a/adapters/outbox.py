"""The outbox folder adapter of the MessageBus port (docs/architecture.md §3).

One file per message, written atomically under its EBMID, so a retried publish overwrites."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from o2a.ports import Destination


class OutboxBus:
    """One file per message in a flat folder: ``{message_id}.xml``, replaced atomically.

    The destination is not part of the path: the message ID already says what the message
    is, and a reader of the folder sees every message in one place. Publishing the same ID
    again replaces the file, so a retried activity never leaves a duplicate or a torn file.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def publish(self, destination: Destination, message_id: str, document: bytes) -> None:
        await asyncio.to_thread(self._write, message_id, document)

    def _write(self, message_id: str, document: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{message_id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(document)
            os.replace(tmp, self.directory / f"{message_id}.xml")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
