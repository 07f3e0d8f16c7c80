"""Adapters of the ports, and the choice among them that the settings name.

The worker wires what ``message_bus`` and ``fulfillment_system`` return; tests construct
adapters of their own instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from o2a.adapters.outbox import OutboxBus
from o2a.adapters.simulator import SimulatedFulfillment
from o2a.config import Settings
from o2a.errors import InputError
from o2a.ports import Destination, FulfillmentSystem, MessageBus

T = TypeVar("T")

SINKS: dict[str, Callable[[Settings], MessageBus]] = {
    "outbox": lambda settings: OutboxBus(settings.outbox_dir),
}
"""MessageBus adapters by their ``O2A_SINKS`` name."""
FULFILLMENT_SYSTEMS: dict[str, Callable[[Settings], FulfillmentSystem]] = {
    "simulator": lambda settings: SimulatedFulfillment(),
}
"""FulfillmentSystem adapters by their ``O2A_FULFILLMENT`` name."""


class FanOutBus:
    """Publishes every message to each of several buses (``O2A_SINKS=outbox,nats``)."""

    def __init__(self, buses: Sequence[MessageBus]) -> None:
        self.buses = buses

    async def publish(self, destination: Destination, message_id: str, document: bytes) -> None:
        await asyncio.gather(*(b.publish(destination, message_id, document) for b in self.buses))


def message_bus(settings: Settings) -> MessageBus:
    """The bus the settings name; InputError for an unknown or missing sink."""
    if not settings.sinks:
        raise InputError("O2A_SINKS names no sink; known: " + ", ".join(SINKS))
    buses = [_named(SINKS, "O2A_SINKS", name)(settings) for name in settings.sinks]
    return buses[0] if len(buses) == 1 else FanOutBus(buses)


def fulfillment_system(settings: Settings) -> FulfillmentSystem:
    """The fulfillment adapter the settings name; InputError for an unknown one."""
    return _named(FULFILLMENT_SYSTEMS, "O2A_FULFILLMENT", settings.fulfillment)(settings)


def _named(known: Mapping[str, T], variable: str, name: str) -> T:
    try:
        return known[name]
    except KeyError:
        raise InputError(
            f"{variable}: unknown adapter {name!r}; known: {', '.join(known)}"
        ) from None
