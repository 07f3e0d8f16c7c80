"""The AIA endpoint end to end: a real uvicorn server, a real worker, the session's dev server.
CRM's documents are the samples with the test's order number; a hostile body is refused with
the TMF error body and starts nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from o2a import ids
from o2a.config import Settings
from o2a.errors import UnknownOrderError
from o2a.models import OrderState
from o2a.service import OrderService
from tests.support import SAMPLES, StartWorker, closed, held_mid_flight, running_api, until

AIA = "/aia/ProcessSalesOrderFulfillment"
XML = {"Content-Type": "application/xml"}
MB = 1024 * 1024


def document(order_number: str, name: str = "triple_play.xml") -> bytes:
    """A sample EBM (TP-1001) as CRM would send it for this order number."""
    data = (SAMPLES / name).read_bytes()
    assert data.count(b">TP-1001<") == 2
    return data.replace(b">TP-1001<", f">{order_number}<".encode())


def with_doctype(order_number: str, doctype: str, reference: str) -> bytes:
    """The order with a DTD before its root and an entity reference in its TypeCode."""
    data = document(order_number).replace(
        b"<so:TypeCode>SALES ORDER<", f"<so:TypeCode>{reference}<".encode()
    )
    declaration, _, rest = data.partition(b"\n")
    return b"\n".join([declaration, doctype.encode(), rest])


ROOT = "so:ProcessSalesOrderFulfillmentEBM"
LAUGHS = "".join(f'<!ENTITY lol{n} "' + f"&lol{n - 1};" * 10 + '">' for n in range(1, 10))
"""Nine levels of ten references each: a billion "lol"s if a parser expanded them."""


def hostile(order_number: str) -> dict[str, tuple[bytes, str, int]]:
    """name → (body, media type, the status it gets)."""
    return {
        "xxe": (
            with_doctype(
                order_number,
                f'<!DOCTYPE {ROOT} [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
                "&xxe;",
            ),
            "application/xml",
            400,
        ),
        "billion laughs": (
            with_doctype(
                order_number, f'<!DOCTYPE {ROOT} [<!ENTITY lol0 "lol">{LAUGHS}]>', "&lol9;"
            ),
            "text/xml",
            400,
        ),
        "not well-formed": (document(order_number)[:-40], "application/xml", 400),
        "wrong root": (b"<order><id>%s</id></order>" % order_number.encode(), "text/xml", 400),
        "JSON": (document(order_number), "application/json", 415),
        "no media type": (document(order_number), "", 415),
        "unknown product class": (
            document(order_number).replace(b"Broadband Service Plan Class", b"Warp Drive Class"),
            "application/xml",
            422,
        ),
        "missing order number": (
            document(order_number).replace(
                f"<corecom:ID>{order_number}<".encode(), b"<corecom:ID><", 1
            ),
            "application/xml",
            422,
        ),
    }


async def nothing_started(client: Client, settings: Settings, order_number: str) -> None:
    with pytest.raises(UnknownOrderError):
        await OrderService(client, settings).status(order_number)


def tmf_error(response: httpx.Response, status: int) -> str:
    """The TMF error body's message, once its shape and status are checked."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "reason", "message", "status"}, body
    assert body["code"] == body["status"] == str(status), body
    message: str = body["message"]
    return message


async def test_a_new_order_is_created_and_completes(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    async with (
        worker(),
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url, headers=api.headers("integrator", **XML)) as http,
    ):
        created = await http.post(AIA, content=document(order_number))
        assert created.status_code == 201, created.text
        assert created.json() == {
            "orderNumber": order_number,
            "revision": 1,
            "workflowId": ids.order_workflow_id(order_number),
            "href": f"/api/v1/orders/{order_number}",
        }
        assert (await closed(client, order_number)).state is OrderState.COMPLETED


async def test_revisions_duplicates_and_cancel(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    service = OrderService(client, settings)
    revised, cancelled = f"{order_number}R", f"{order_number}C"
    async with (
        held_mid_flight(worker) as gate,
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url, headers=api.headers("integrator", **XML)) as http,
    ):
        for number in (revised, cancelled):
            assert (await http.post(AIA, content=document(number))).status_code == 201

        async def both_held() -> bool:
            return len(gate.held) == 2

        await until(both_held)
        again = await http.post(AIA, content=document(revised))  # a resent revision 1
        assert "revision 1 is not higher" in tmf_error(again, 409)

        revision = await http.post(
            AIA, content=document(revised, "revisions/triple_play_r2_change_attribute.xml")
        )
        assert revision.status_code == 202, revision.text
        receipt = revision.json()
        assert (receipt["revision"], receipt["href"]) == (2, f"/api/v1/orders/{revised}")
        resent = await http.post(  # before the order took it: the same request, taken once
            AIA, content=document(revised, "revisions/triple_play_r2_change_attribute.xml")
        )
        assert resent.status_code == 202, resent.text
        assert resent.json()["requestId"] == receipt["requestId"]
        cancel = await http.post(
            AIA, content=document(cancelled, "revisions/triple_play_cancel.xml")
        )
        assert cancel.status_code == 202, cancel.text
        gate.release()
        accepted = await service.request_outcome(revised, receipt["requestId"])
        assert accepted.outcome == "accepted", accepted
        after_revision = await closed(client, revised)
        after_cancel = await closed(client, cancelled)

        same_again = await http.post(
            AIA, content=document(revised, "revisions/triple_play_r2_change_attribute.xml")
        )
        assert "revision 2 is not higher" in tmf_error(same_again, 409)
    assert after_revision.state is OrderState.COMPLETED and after_revision.revision == 2
    assert [r.request_id for r in after_revision.revisions] == [receipt["requestId"]]
    assert after_cancel.state is OrderState.CANCELLED


async def test_a_duplicate_post_starts_one_order(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    async with (
        worker(),
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url, headers=api.headers("integrator", **XML)) as http,
    ):
        posts = [http.post(AIA, content=document(order_number)) for _ in range(2)]
        answers = await asyncio.gather(*posts)
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    workflow_id = ids.order_workflow_id(order_number)
    runs = [wf async for wf in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    assert len(runs) == 1


@pytest.mark.parametrize(
    ("role", "status"), [(None, 401), ("viewer", 403), ("operator", 403), ("nobody", 401)]
)
async def test_only_an_integrator_posts_orders(
    client: Client, settings: Settings, order_number: str, role: str | None, status: int
) -> None:
    async with running_api(client, settings) as api, httpx.AsyncClient(base_url=api.url) as http:
        api.keys["nobody"] = "not-a-key"
        response = await http.post(
            AIA, content=document(order_number), headers=api.headers(role, **XML)
        )
    tmf_error(response, status)
    await nothing_started(client, settings, order_number)


@pytest.mark.parametrize("name", list(hostile("X")))
async def test_a_hostile_or_bad_body_starts_nothing(
    client: Client, settings: Settings, order_number: str, name: str
) -> None:
    body, media_type, status = hostile(order_number)[name]
    async with running_api(client, settings) as api, httpx.AsyncClient(base_url=api.url) as http:
        headers = api.headers("integrator", **({"Content-Type": media_type} if media_type else {}))
        response = await http.post(AIA, content=body, headers=headers)
    message = tmf_error(response, status)
    assert "passwd" not in message and "root:" not in message
    await nothing_started(client, settings, order_number)


async def forty_megabytes(order_number: str) -> AsyncIterator[bytes]:
    """An order followed by 40 MB of padding, in chunks: no Content-Length."""
    yield document(order_number)
    for _ in range(40):
        yield b" " * MB


async def test_a_40_mb_body_is_refused_with_or_without_a_length(
    client: Client, settings: Settings, order_number: str
) -> None:
    async with (
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url, headers=api.headers("integrator", **XML)) as http,
    ):
        declared = await http.post(AIA, content=document(order_number) + b" " * 40 * MB)
        streamed = await http.post(AIA, content=forty_megabytes(order_number))
    for response in (declared, streamed):
        assert "over" in tmf_error(response, 413)
    await nothing_started(client, settings, order_number)
