"""Adapters of the ports, and the choice among them that the settings name.

The worker wires what ``message_bus`` and ``fulfillment_system`` return for its
``Wiring``; tests construct adapters of their own instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from o2a.adapters.bus_fulfillment import BusFulfillment
from o2a.adapters.nats import NatsBus
from o2a.adapters.outbox import OutboxBus
from o2a.adapters.simulator import SimulatedFulfillment
from o2a.bus import BusConnection, Subjects
from o2a.config import Settings
from o2a.errors import InputError
from o2a.outbound import same_message
from o2a.ports import Destination, FulfillmentRequester, FulfillmentSystem, MessageBus

T = TypeVar("T")


class Wiring:
    """What one process's adapters share: its settings and, made when the first adapter
    needs it, its one connection to the bus."""

    def __init__(self, settings: Settings, client_name: str) -> None:
        self.settings = settings
        self.client_name = client_name
        self._bus: BusConnection | None = None

    def bus(self) -> BusConnection:
        if self.settings.nats_url is None:
            raise InputError("O2A_NATS_URL is not set: the bus adapters need a NATS server")
        if self._bus is None:
            self._bus = BusConnection(
                self.settings.nats_url, Subjects(self.settings.subject_prefix), self.client_name
            )
        return self._bus

    async def close(self) -> None:
        if self._bus is not None:
            await self._bus.close()


SINKS: dict[str, Callable[[Wiring], MessageBus]] = {
    "outbox": lambda wiring: OutboxBus(wiring.settings.outbox_dir),
    "nats": lambda wiring: NatsBus(wiring.bus()),
}
"""MessageBus adapters by their ``O2A_SINKS`` name."""
FulfillmentAdapter = FulfillmentSystem | FulfillmentRequester
"""Inline (answers within the call) or over the bus (answers later, by reply token)."""
FULFILLMENT_SYSTEMS: dict[str, Callable[[Wiring], FulfillmentAdapter]] = {
    "simulator": lambda wiring: SimulatedFulfillment(),
    "bus": lambda wiring: BusFulfillment(wiring.bus()),
}
"""FulfillmentSystem adapters by their ``O2A_FULFILLMENT`` name."""


class FanOutBus:
    """Publishes every message to each of several buses (``O2A_SINKS=outbox,nats``)."""

    def __init__(self, buses: Sequence[MessageBus]) -> None:
        self.buses = buses

    async def publish(self, destination: Destination, message_id: str, document: bytes) -> bytes:
        """Bus by bus, in order: the first that holds another message under the ID stops
        it (so the buses after it never take a second one) and its body is the answer;
        else this document. A body differing only in its header is this message."""
        for bus in self.buses:
            held = await bus.publish(destination, message_id, document)
            if not same_message(held, document):
                return held
        return document


def message_bus(wiring: Wiring) -> MessageBus:
    """The bus the settings name; InputError for an unknown or missing sink."""
    sinks = wiring.settings.sinks
    if not sinks:
        raise InputError("O2A_SINKS names no sink; known: " + ", ".join(SINKS))
    buses = [_named(SINKS, "O2A_SINKS", name)(wiring) for name in sinks]
    return buses[0] if len(buses) == 1 else FanOutBus(buses)


def fulfillment_system(wiring: Wiring) -> FulfillmentAdapter:
    """The fulfillment adapter the settings name; InputError for an unknown one."""
    name = wiring.settings.fulfillment
    return _named(FULFILLMENT_SYSTEMS, "O2A_FULFILLMENT", name)(wiring)


def _named(known: Mapping[str, T], variable: str, name: str) -> T:
    try:
        return known[name]
    except KeyError:
        raise InputError(
            f"{variable}: unknown adapter {name!r}; known: {', '.join(known)}"
        ) from None
