"""The message bus: o2a's subjects and JetStream streams on NATS (docs/architecture.md §5).

Every process that talks to the bus (worker, listener, simulator, ``o2a publish``) connects
here and makes sure the streams exist, so whichever starts first creates them and a later
one finds them as they are (``add_stream`` with the same config is a no-op; a changed one
is updated in place).

Retention is by limits, not work queue: a message stays readable after it was consumed
(operators and tests read ``o2a.crm.salesorder.update`` like a JMS browse), for a week,
within a size cap per stream. The duplicate window is longer than an outbound message's
whole retry budget (``MESSAGE_DEADLINE``), so a retried publish of an EBM is dropped by the
broker itself however late the retry comes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from nats.aio.client import Client as Nats
from nats.errors import Error as NatsError
from nats.errors import NoServersError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from o2a.ports import Destination

DEFAULT_URL = "nats://127.0.0.1:4222"
DEFAULT_PREFIX = "o2a"
MSG_ID = "Nats-Msg-Id"
"""JetStream's deduplication header: o2a sets it to the EBMID."""
REASON = "O2a-Reason"
"""Why a dead-lettered message was refused."""
RETENTION = timedelta(days=7)
DEADLETTER_RETENTION = timedelta(days=30)
DUPLICATE_WINDOW = timedelta(hours=2)
STREAM_BYTES = 1 << 30
"""Per stream; the oldest messages go first when it is full (never refusing a publish)."""
CONNECT_TIMEOUT = 2
PUBLISH_TIMEOUT = 5.0


log = logging.getLogger(__name__)


class BusUnavailable(ConnectionError):
    """NATS is not reachable: one line for the user, a retry for an activity."""


@dataclass(frozen=True)
class Subjects:
    """The subjects of DESIGN.md §3 "Message bus" under one prefix (``O2A_SUBJECT_PREFIX``),
    so two installations can share a cluster."""

    prefix: str = DEFAULT_PREFIX

    def of(self, destination: Destination) -> str:
        return f"{self.prefix}.{destination.value}"

    @property
    def sales_order(self) -> str:
        """Inbound ProcessSalesOrderFulfillmentEBM from CRM."""
        return f"{self.prefix}.crm.salesorder"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.crm.salesorder.deadletter"

    def fulfillment_request(self, target_system: str) -> str:
        return f"{self.prefix}.fulfillment.{target_system}.request"

    def fulfillment_response(self, target_system: str) -> str:
        return f"{self.prefix}.fulfillment.{target_system}.response"

    def streams(self) -> list[StreamConfig]:
        """One stream per kind of traffic, so each has its own retention and consumers."""
        name = self.prefix.upper().replace(".", "_")
        return [
            _stream(f"{name}_SALESORDER", [self.sales_order], RETENTION),
            _stream(f"{name}_DEADLETTER", [self.dead_letter], DEADLETTER_RETENTION),
            _stream(f"{name}_OUTBOUND", [self.of(d) for d in Destination], RETENTION),
            _stream(
                f"{name}_FULFILLMENT",
                [self.fulfillment_request("*"), self.fulfillment_response("*")],
                RETENTION,
            ),
        ]

    def stream_of(self, subject: str) -> str:
        """The stream a subject is stored in (consumers are made on it)."""
        for stream in self.streams():
            if any(_matches(pattern, subject) for pattern in stream.subjects or ()):
                assert stream.name is not None
                return stream.name
        raise ValueError(f"no o2a stream stores {subject}")


def _stream(name: str, subjects: list[str], max_age: timedelta) -> StreamConfig:
    return StreamConfig(
        name=name,
        subjects=subjects,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age.total_seconds(),
        max_bytes=STREAM_BYTES,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW.total_seconds(),
    )


def _matches(pattern: str, subject: str) -> bool:
    want, have = pattern.split("."), subject.split(".")
    return len(want) == len(have) and all(w in ("*", h) for w, h in zip(want, have, strict=True))


async def connect_bus(url: str, name: str) -> Nats:
    """A connection that reconnects for ever once made (a restarted NATS server is found
    again, publishes in between fail and are retried by their callers); the first connect
    fails fast with BusUnavailable."""
    connection = Nats()

    async def on_disconnected() -> None:
        if not connection.is_closed:  # not our own close()
            log.warning("lost the connection to NATS at %s; reconnecting", url)

    try:
        # With reconnects for ever, nats-py also retries the first connect for ever.
        await asyncio.wait_for(
            connection.connect(
                url,
                name=name,
                connect_timeout=CONNECT_TIMEOUT,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                allow_reconnect=True,
                error_cb=_on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=_on_reconnected,
            ),
            CONNECT_TIMEOUT,
        )
        return connection
    except TimeoutError:
        await connection.close()
        raise BusUnavailable(
            f"cannot reach NATS at {url} (no answer within {CONNECT_TIMEOUT}s)"
        ) from None
    except (NoServersError, OSError, NatsError) as exc:
        raise BusUnavailable(f"cannot reach NATS at {url}: {exc or type(exc).__name__}") from exc


async def _on_error(exc: Exception) -> None:
    """One line, not nats-py's default traceback per failed (re)connect."""
    log.debug("nats: %s", exc or type(exc).__name__)


async def _on_reconnected() -> None:
    log.info("connected to NATS again")


async def ensure_streams(js: JetStreamContext, subjects: Subjects) -> None:
    """Create the streams, or bring an existing one to this config (idempotent)."""
    for config in subjects.streams():
        try:
            await js.add_stream(config)
        except BadRequestError:  # it exists with another config
            await js.update_stream(config)


class BusConnection:
    """One process's connection to the bus, made on first use (so a worker starts while
    NATS is still coming up, and a publish then fails and is retried rather than the
    worker) and shared by every adapter of the process."""

    def __init__(self, url: str, subjects: Subjects, name: str) -> None:
        self.url = url
        self.subjects = subjects
        self.name = name
        self._connection: Nats | None = None
        self._lock = asyncio.Lock()

    async def nats(self) -> Nats:
        async with self._lock:
            if self._connection is None:
                connection = await connect_bus(self.url, self.name)
                try:
                    await ensure_streams(connection.jetstream(), self.subjects)
                except BaseException:
                    await connection.close()
                    raise
                self._connection = connection
            return self._connection

    async def jetstream(self) -> JetStreamContext:
        return (await self.nats()).jetstream()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.drain()
            self._connection = None
