"""samples/tmf/listener.py as a user runs it: a process of its own, registered with the hub
of a real API, printing the events of an order posted to that API."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from temporalio.client import Client

from o2a.config import Settings
from o2a.tmf622 import API_ROOT
from tests.support import SAMPLES, WAIT, StartWorker, closed, running_api
from tests.test_tmf622 import tmf_body

LISTENER = SAMPLES / "tmf" / "listener.py"
SECRET = "listener-secret"


@dataclass
class SampleListener:
    url: str
    stdout: asyncio.StreamReader

    async def line(self) -> str:
        raw = await asyncio.wait_for(self.stdout.readline(), WAIT)
        assert raw, "the listener exited"
        return raw.decode().rstrip("\n")

    async def lines_until(self, last: str) -> list[str]:
        """What it prints, up to and including the first line containing every word of
        ``last``."""
        lines = [await self.line()]
        while not all(word in lines[-1] for word in last.split()):
            lines.append(await self.line())
        return lines


@contextlib.asynccontextmanager
async def sample_listener(*args: str) -> AsyncIterator[SampleListener]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(LISTENER), "--port", "0", *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        listener = SampleListener("", proc.stdout)
        listener.url = (await listener.line()).removeprefix("listening on ")
        assert listener.url.startswith("http://127.0.0.1:"), listener.url
        yield listener
    finally:
        proc.terminate()
        await proc.wait()


def words(line: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in line.split() if "=" in word)


async def test_the_sample_listener_prints_an_orders_events_in_order_and_checks_signatures(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    async with (
        worker(),
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url + API_ROOT, headers=api.headers()) as http,
        sample_listener("--secret", SECRET) as listener,
    ):
        hub = await http.post("/hub", json={"callback": f"{listener.url}/tmf", "secret": SECRET})
        assert hub.status_code == 201, hub.text
        posted = await http.post("/productOrder", json=tmf_body("triple_play.json", order_number))
        assert posted.status_code == 201, posted.text

        lines = await listener.lines_until("ProductOrderStateChangeEvent state=completed")
        await closed(client, order_number)
        order = (await http.get(f"/productOrder/{order_number}")).json()

        body = b'{"eventId": "forged", "eventType": "ProductOrderStateChangeEvent", "event": {}}'
        forged = await http.post(
            f"{listener.url}/tmf",
            content=body,
            headers={
                "X-O2A-Signature": "sha256="
                + hmac.new(b"another secret", body, hashlib.sha256).hexdigest()
            },
        )
        assert forged.status_code == 204
        assert await listener.line() == (
            "ProductOrderStateChangeEvent forged order=None signature BAD"
        )

    assert all(line.endswith(" signature ok") for line in lines), lines
    assert {words(line)["order"] for line in lines} == {order_number}
    assert lines[0].startswith("ProductOrderCreateEvent ")
    ids = [line.split()[1] for line in lines]
    assert len(set(ids)) == len(ids)
    states = [words(line)["state"] for line in lines if "StateChangeEvent" in line]
    assert states == ["inProgress", "completed"]
    milestones = {
        words(line)["milestone"].partition("@")[0]
        for line in lines
        if line.startswith("ProductOrderMilestoneEvent ")
    }
    assert "PROVISION_COMPLETE" in milestones
    assert order["state"] == "completed"
    assert milestones <= {m["name"] for m in order["productOrderMilestone"]}
