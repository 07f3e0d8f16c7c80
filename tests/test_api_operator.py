"""The operator endpoints end to end: each action is answered by the order's workflow (200
with the recorded action, 409 with its reason), over a real uvicorn server and worker."""

from __future__ import annotations

import httpx
from temporalio.client import Client

from o2a.config import Settings
from o2a.models import OrderState
from o2a.service import OrderService
from tests.support import (
    StartWorker,
    closed,
    held_mid_flight,
    running_api,
    sample,
    set_spec,
    until,
)

ORDERS = "/api/v1/orders"


async def test_actions_are_answered_by_the_order(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    service = OrderService(client, settings)
    order = f"{ORDERS}/{order_number}"
    async with (
        held_mid_flight(worker) as gate,
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url, headers=api.headers("operator")) as http,
    ):
        await service.submit(sample("triple_play.xml", order_number))
        await gate.wait_reached()
        refused = await http.post(f"{order}/resolve")
        assert refused.status_code == 409, refused.text
        assert "nothing has failed" in refused.json()["message"]

        suspended = await http.post(f"{order}/suspend", json={"reason": "checking the line"})
        assert suspended.status_code == 200, suspended.text
        assert suspended.json()["action"] == "suspend"
        assert (suspended.json()["operator"], suspended.json()["reason"]) == (
            "operator",
            "checking the line",
        )
        viewed = await http.get(order, headers=api.headers("viewer"))
        assert viewed.status_code == 200, viewed.text
        assert (viewed.json()["order_number"], viewed.json()["state"]) == (
            order_number,
            "suspended",
        )
        resumed = await http.post(f"{order}/resume", json={"operator": "bob"})
        assert (resumed.status_code, resumed.json()["operator"]) == (200, "bob"), resumed.text

        cancel = await http.post(f"{order}/cancel", json={"reason": "customer moved"})
        assert cancel.status_code == 200, cancel.text
        assert cancel.json()["kind"] == "cancel"
        gate.release()
        outcome = await service.request_outcome(order_number, cancel.json()["request_id"])
        assert outcome.outcome == "cancelled"
        final = await closed(client, order_number)
    assert final.state is OrderState.CANCELLED
    assert [(a.action, a.operator) for a in final.operator_actions] == [
        ("suspend", "operator"),
        ("resume", "bob"),
    ]


async def test_abort_ends_a_failed_order(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    service = OrderService(client, settings)
    failing = set_spec(
        sample("triple_play.xml", order_number), "1.1.1", "SimulatedFault", "activate"
    )
    async with (
        worker(),
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url, headers=api.headers("operator")) as http,
    ):
        await service.submit(failing)
        assert (await service.wait_for_attention(order_number)).state is OrderState.FAILED
        aborted = await http.post(f"{ORDERS}/{order_number}/abort", json={"reason": "gave up"})
        assert aborted.status_code == 200, aborted.text
        assert (aborted.json()["action"], aborted.json()["reason"]) == ("abort", "gave up")
        assert (await closed(client, order_number)).state is OrderState.ABORTED
        again = await http.post(f"{ORDERS}/{order_number}/abort")
    assert again.status_code == 409 and "only a running order" in again.json()["message"]


async def test_unknown_orders_roles_and_bad_requests(
    client: Client, settings: Settings, order_number: str
) -> None:
    order = f"{ORDERS}/{order_number}"
    async with running_api(client, settings) as api, httpx.AsyncClient(base_url=api.url) as http:
        for role in ("viewer", "operator"):
            unknown = await http.get(order, headers=api.headers(role))
            assert unknown.status_code == 404, unknown.text
        assert (
            await http.post(f"{order}/abort", headers=api.headers("operator"))
        ).status_code == 404
        for role, status in ((None, 401), ("viewer", 403), ("integrator", 403)):
            response = await http.post(f"{order}/suspend", headers=api.headers(role))
            assert response.status_code == status, (role, response.text)
        assert (await http.get(ORDERS)).status_code == 401
        nonsense = await http.post(f"{order}/explode", headers=api.headers("operator"))
        assert nonsense.status_code == 400, nonsense.text
        stray = await http.post(
            f"{order}/suspend", json={"color": 1}, headers=api.headers("operator")
        )
        assert stray.status_code == 400, stray.text
        quoted = await http.get(
            ORDERS, params={"customer": "x' OR 'a'='a"}, headers=api.headers("viewer")
        )
        assert quoted.status_code == 422, quoted.text


async def test_the_list_filters_by_state(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    service = OrderService(client, settings)
    done, busy = f"{order_number}D", f"{order_number}B"
    async with (
        held_mid_flight(worker) as gate,
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url, headers=api.headers("viewer")) as http,
    ):
        await service.submit(sample("broadband_only.xml", done))
        assert (await closed(client, done)).state is OrderState.COMPLETED
        await service.submit(sample("triple_play.xml", busy))
        await gate.wait_reached()

        async def listed(state: str) -> set[str]:
            response = await http.get(ORDERS, params={"state": state, "limit": 1000})
            assert response.status_code == 200, response.text
            return {o["order_number"] for o in response.json()}

        async def indexed() -> bool:
            return done in await listed("completed") and busy in await listed("in_progress")

        await until(indexed)
        assert busy not in await listed("completed") and done not in await listed("in_progress")
        bad = await http.get(ORDERS, params={"state": "sleeping"})
        assert bad.status_code == 400, bad.text
        gate.release()
