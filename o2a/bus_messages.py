"""Documents on the bus as people handle them: a file's document published to a subject
(``o2a publish``, what CRM would send), and what a subject stores read back (``o2a
messages``, a JMS browse). Both connect through o2a/bus.py, so the streams exist.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck

from o2a import ids
from o2a.bus import MSG_ID, PUBLISH_TIMEOUT, REASON, BusConnection, BusUnavailable, Subjects
from o2a.errors import InputError
from o2a.inbound import envelope

READ_BATCH = 256
READ_WAIT = 5.0


def document_message_id(document: bytes) -> str:
    """What a document is published under: its EBMID (so CRM sending it again is dropped by
    the broker), or, for one without (not XML, no header), a digest of its bytes."""
    found = envelope(document)
    if found is not None and found.ebm_id is not None:
        return found.ebm_id
    return "sha256-" + hashlib.sha256(document).hexdigest()


def subject_named(subjects: Subjects, name: str) -> str:
    """A subject as a user names it, with or without the prefix (``crm.salesorder.update``);
    InputError for one that no o2a stream stores."""
    subject = name if name.startswith(f"{subjects.prefix}.") else f"{subjects.prefix}.{name}"
    try:
        subjects.stream_of(subject)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return subject


async def publish_document(connection: BusConnection, subject: str, document: bytes) -> PubAck:
    """Stored once per message ID: the ack says ``duplicate`` when the broker had it already.
    Any document is published, an invalid one too (the listener dead-letters it)."""
    js = await connection.jetstream()
    message_id = document_message_id(document)
    try:
        return await js.publish(
            subject, document, timeout=PUBLISH_TIMEOUT, headers={MSG_ID: message_id}
        )
    except (NatsError, TimeoutError) as exc:
        raise BusUnavailable(
            f"NATS did not store {message_id}: {exc or type(exc).__name__}"
        ) from exc


def published(what: str, subject: str, ack: PubAck) -> str:
    """What ``o2a publish`` says: where it is stored, or that the broker had it already."""
    where = f"{subject} (stream {ack.stream}, sequence {ack.seq})"
    if ack.duplicate:
        return f"{what}: not stored again, a duplicate of the message stored on {where}"
    return f"{what}: stored on {where}"


async def stored(js: JetStreamContext, subject: str) -> list[Msg]:
    """Every message stored on ``subject`` now, oldest first. An ephemeral consumer reads
    exactly as many as the stream holds (no waiting for a timeout) and acks nothing, so the
    messages stay for the listener and everyone else."""
    stream = await js.find_stream_name_by_subject(subject)
    info = await js.stream_info(stream, subjects_filter=subject)
    count = (info.state.subjects or {}).get(subject, 0)
    if not count:
        return []
    reader = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=READ_WAIT * 2,  # gone soon if this reader dies
        ),
    )
    try:
        found: list[Msg] = []
        while len(found) < count:
            found += await reader.fetch(min(READ_BATCH, count - len(found)), timeout=READ_WAIT)
        return found
    finally:
        await reader.unsubscribe()


@dataclass(frozen=True)
class StoredMessage:
    """One stored message as ``o2a messages`` shows it."""

    sequence: int
    message_id: str | None
    root: str | None
    """The document's root element; None when it is no readable XML."""
    reason: str | None
    """Why it was refused (dead letters)."""
    document: bytes

    @classmethod
    def of(cls, msg: Msg) -> StoredMessage:
        headers = msg.headers or {}
        found = envelope(msg.data)
        return cls(
            sequence=msg.metadata.sequence.stream,
            message_id=headers.get(MSG_ID),
            root=found.root if found else None,
            reason=headers.get(REASON),
            document=msg.data,
        )

    def line(self) -> str:
        root = self.root or f"(not XML, {len(self.document)} bytes)"
        reason = f"  reason: {self.reason}" if self.reason else ""
        return f"{self.sequence:>6}  {self.message_id or '-'}  {root}{reason}"


async def read_stored(
    connection: BusConnection, subject: str, order_number: str | None, limit: int
) -> list[StoredMessage]:
    """The newest ``limit`` messages on ``subject``, oldest first; with ``order_number``,
    only o2a's messages about that order (their IDs name it, see ``ids.names_order``)."""
    if limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    messages = [StoredMessage.of(m) for m in await stored(await connection.jetstream(), subject)]
    if order_number is not None:
        messages = [
            m for m in messages if m.message_id and ids.names_order(m.message_id, order_number)
        ]
    return messages[-limit:]
