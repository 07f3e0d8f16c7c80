"""The outbox folder adapter of the MessageBus port (docs/architecture.md §3).

One file per message, written atomically under its EBMID; the first body an ID is given is
the one kept, so a retried publish never leaves a second body or a torn file.
A write that fails is classified, so the activity neither retries for ever what can never
work nor gives up on what an operator can fix."""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from pathlib import Path

from o2a.errors import MessageBusUnavailable, MessageRejected
from o2a.ports import Destination

NOT_A_FOLDER = frozenset({errno.ENOTDIR, errno.EEXIST})
"""The outbox path, or a folder above it, is a file: no message can be written there."""
CANNOT_HOLD = frozenset({errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ, errno.EFBIG, errno.EISDIR})
"""The file system refuses the message's name or size as they are (EISDIR: a folder has
its name): writing it again fails the same way."""
FIXES = {
    errno.EACCES: "give the worker's user write permission on it",
    errno.EPERM: "give the worker's user write permission on it",
    errno.EROFS: "mount its filesystem read-write or set O2A_OUTBOX_DIR elsewhere",
    errno.ENOSPC: "free space on its filesystem",
    errno.EDQUOT: "raise the disk quota or free space",
}
"""What an operator does about a passing cause; the write is retried meanwhile."""
OTHER_FIX = "check its filesystem (the write is retried)"


class OutboxBus:
    """One file per message in a flat folder: ``{message_id}.xml``, linked into place
    atomically only when the name is free.

    The destination is not part of the path: the message ID already says what the message
    is, and a reader of the folder sees every message in one place. Publishing the same ID
    again leaves the file as it is, and returns the body it holds: a reader never
    sees one ID with two bodies, however the sender was retried.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def publish(self, destination: Destination, message_id: str, document: bytes) -> bytes:
        """Raises MessageRejected or MessageBusUnavailable for a write that failed."""
        try:
            return await asyncio.to_thread(self._write, message_id, document)
        except OSError as exc:
            raise self._classified(message_id, exc) from exc

    def _write(self, message_id: str, document: bytes) -> bytes:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{message_id}.xml"
        # A short temporary name: one built from the ID could be too long where the final
        # `{message_id}.xml` is not.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".outbox-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(document)
            os.link(tmp, final)  # fails with EEXIST where the ID already has a body
            return document
        except FileExistsError:
            return final.read_bytes()
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _classified(self, message_id: str, exc: OSError) -> MessageRejected | MessageBusUnavailable:
        code = exc.errno
        cause = exc.strerror or str(exc)
        if code is not None:
            cause += f" ({errno.errorcode.get(code, code)})"
        if code in NOT_A_FOLDER:
            return MessageRejected(
                message_id, f"the outbox {self.directory} is not a folder: {cause}"
            )
        if code in CANNOT_HOLD:
            return MessageRejected(
                message_id, f"the outbox {self.directory} cannot hold it: {cause}"
            )
        fix = OTHER_FIX if code is None else FIXES.get(code, OTHER_FIX)
        return MessageBusUnavailable(f"outbox {self.directory} is unwritable: {cause}; {fix}")
