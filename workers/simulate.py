"""`o2a simulate`: the simulated fulfillment systems as a process of their own on the bus,
answering every target system's requests by the simulator contract (SimulatedDelay,
SimulatedFault, SimulatedOutage per attempt), as SimulatedFulfillment does inline.

Also one of `o2a up`'s bus services. Several processes share the requests.
"""

from __future__ import annotations

import asyncio
import signal

from o2a.adapters.simulator import SimulatedFulfillment
from o2a.bus import BusConnection, Subjects
from o2a.bus_responder import BusResponder
from o2a.config import Settings
from o2a.errors import InputError

RESPONDER_NAME = "simulator"


async def run_simulator(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Until ``stop`` is set (by ``o2a up``), or on its own until SIGINT/SIGTERM; requests
    being answered then are answered again by the next simulator to run."""
    if settings.nats_url is None:
        raise InputError("o2a simulate answers on the bus: set O2A_NATS_URL")
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    connection = BusConnection(
        settings.nats_url, Subjects(settings.subject_prefix), "o2a-simulator"
    )
    responder = BusResponder(connection, SimulatedFulfillment(), RESPONDER_NAME)
    print(f"o2a simulate answering {responder.subject} on {settings.nats_url}", flush=True)
    try:
        await responder.run(stop)
    finally:
        await connection.close()
    print("o2a simulate stopped", flush=True)
