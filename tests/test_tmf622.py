"""TMF622 Product Ordering v5: the mapping (pure), and conformance checks modelled on TM
Forum's CTK for TMF622 against a real uvicorn server, a real worker and the session's dev
server. Every order of a test has its own number, and list requests filter on them, since
orders of other tests share the server."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from o2a import ids, tmf622
from o2a.catalog import Catalog
from o2a.config import Settings
from o2a.decomposition import decompose
from o2a.errors import InputError
from o2a.inbound import read_order_file
from o2a.models import (
    ComponentState,
    ComponentView,
    FalloutView,
    FulfillmentStatus,
    JeopardyView,
    LineView,
    OrderState,
    OrderStatus,
    RevisionView,
    ServiceActionCode,
)
from tests.support import SAMPLES, StartWorker, closed, held_mid_flight, running_api, until

ROOT = tmf622.API_ROOT
AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def tmf_body(name: str, order_number: str | None = None) -> dict[str, Any]:
    """A sample create body, under ``order_number`` if given (its first externalId)."""
    body: dict[str, Any] = json.loads((SAMPLES / "tmf" / name).read_text())
    if order_number is not None:
        body["externalId"][0]["id"] = order_number
    return body


def item(item_id: str, action: str = "add", **product: Any) -> dict[str, Any]:
    return {"id": item_id, "action": action, "product": product}


def mapped(body: dict[str, Any]) -> Any:
    return tmf622.to_customer_order(tmf622.read_product_order(body), AT)


# --- the mapping: no server ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tmf", "xml"),
    [("triple_play.json", "triple_play.xml"), ("broadband_only.json", "broadband_only.xml")],
)
def test_each_sample_decomposes_like_its_xml_twin(tmf: str, xml: str, catalog: Catalog) -> None:
    order = mapped(tmf_body(tmf))
    twin = read_order_file(SAMPLES / xml)
    plan, twin_plan = decompose(order, catalog), decompose(twin, catalog)
    assert [(c.id, c.lines) for c in plan.components] == [
        (c.id, c.lines) for c in twin_plan.components
    ]
    assert [(line.id, line.parent_id, line.root_id, line.item) for line in order.lines] == [
        (line.id, line.parent_id, line.root_id, line.item) for line in twin.lines
    ]
    assert order.customer_account == twin.customer_account


def test_header_and_item_mapping() -> None:
    body = {
        "priority": "9",
        "requestedCompletionDate": "2027-02-01T08:00:00+01:00",
        "relatedParty": [{"role": "seller", "id": "S-1"}, {"role": "Customer", "id": "CA-7"}],
        "productOrderItem": [
            item("o", product={}, productCharacteristic=[{"name": "typeCode", "value": "offer"}])
            | {"productOffering": {"name": "Fibre Offer"}},
            item(
                "p",
                "modify",
                productCharacteristic=[
                    {"name": "Units", "value": 2},
                    {"name": "On", "value": True},
                ],
            )
            | {
                "productOffering": {"name": "Broadband Service Plan Class"},
                "productOrderItemRelationship": [
                    {"id": "b", "relationshipType": "isContainedIn"},
                    {"id": "o", "relationshipType": "reliesOn"},
                ],
            },
            item("b", "noChange", name="Bundle")
            | {"productOrderItemRelationship": [{"id": "o", "relationshipType": "isContainedIn"}]},
            item("d", "delete", productCharacteristic=[{"name": "productClass", "value": "X"}]),
        ],
    }
    order = mapped(body)
    assert re.fullmatch(r"PO-[0-9A-F]{12}", order.order_number)
    assert (order.priority, order.customer_account, order.order_date) == (9, "CA-7", AT)
    assert order.requested_delivery_date == datetime(2027, 2, 1, 7, tzinfo=UTC)
    offer, plan, bundle, gone = order.lines
    assert (offer.item.name, offer.item.type_code, offer.item.product_class) == (
        "Fibre Offer",
        "OFFER",
        None,
    )
    assert (plan.action, plan.parent_id, plan.root_id) == (ServiceActionCode.UPDATE, "b", "o")
    assert plan.item.product_class == "Broadband Service Plan Class"
    assert [(s.name, s.value) for s in plan.item.specifications] == [("Units", "2"), ("On", "true")]
    assert (bundle.action, bundle.item.name, bundle.parent_id) == ("-", "Bundle", "o")
    assert (gone.action, gone.item.product_class, gone.item.specifications) == ("DELETE", "X", [])
    assert (
        mapped({**body, "externalId": [{"id": "CRM-1"}, {"id": "other"}]}).order_number == "CRM-1"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"productOrderItem": []}, "productOrderItem: List should have at least 1 item"),
        ({"productOrderItem": [{"id": "1.1"}]}, "item 1.1: action: Field required"),
        ({"productOrderItem": [item("1", "replace")]}, "item 1: action: Input should be"),
        ({"priority": "high"}, "priority 'high': must be one of 0 to 9"),
        ({"requestedCompletionDate": "2027-02-01T08:00:00"}, "requestedCompletionDate"),
    ],
)
def test_an_invalid_body_is_one_line_naming_the_item(change: dict[str, Any], message: str) -> None:
    body = {"productOrderItem": [item("1")], **change}
    with pytest.raises(InputError, match=re.escape(message)):
        mapped(body)


def test_representation_of_an_order_status() -> None:
    statuses = list(FulfillmentStatus)
    lines = [
        LineView(
            id=f"L{n}",
            name="x",
            action=ServiceActionCode.SUSPEND if n == 0 else ServiceActionCode.ADD,
            product_class=None,
            status=status,
            milestones=["PROVISION_START", "PROVISION_COMPLETE"][: n % 3],
        )
        for n, status in enumerate(statuses)
    ]
    status = OrderStatus(
        order_number="PO 1/2",
        revision=1,
        state=OrderState.FAILED,
        status=FulfillmentStatus.FAILED,
        customer_account="CA-1",
        lines=lines,
        components=[
            ComponentView(
                id="Provision.X.bundle-1",
                function="Provision",
                target_system="X",
                state=ComponentState.FAILED,
                lines=["L1", "L2"],
            )
        ],
        fallouts=[
            FalloutView(
                id="PO 1/2-F1",
                component="Provision.X.bundle-1",
                lines=["L2"],
                step="activate",
                code="PORT_UNAVAILABLE",
                message="no port",
                severity="ERROR",
                state="open",
                raised_at=AT,
            ),
            FalloutView(
                id="PO 1/2-F0",
                component="c",
                lines=[],
                step=None,
                code="OLD",
                message="",
                severity="ERROR",
                state="resolved",
            ),
        ],
        jeopardies=[
            JeopardyView(
                component="Provision.X.bundle-1", severity="High", raised_at=AT, expected_by=AT
            )
        ],
    )
    document = tmf622.product_order(status, AT).model_dump(mode="json", exclude_none=True)
    assert (document["id"], document["href"], document["@type"], document["state"]) == (
        "PO 1/2",
        f"{ROOT}/productOrder/PO%201%2F2",
        "ProductOrder",
        "held",
    )
    assert document["relatedParty"][0]["partyOrPartyRole"] == {"id": "CA-1"}
    assert "completionDate" not in document
    assert [(i["action"], i["state"]) for i in document["productOrderItem"]] == [
        ("modify", "acknowledged"),
        ("add", "acknowledged"),
        ("add", "inProgress"),
        ("add", "completed"),
        ("add", "held"),
        ("add", "cancelled"),
        ("add", "failed"),
    ]
    assert [
        (m["name"], [r["productOrderItemId"] for r in m["productOrderItem"]])
        for m in document["productOrderMilestone"]
    ] == [("PROVISION_START", ["L1", "L2", "L4", "L5"]), ("PROVISION_COMPLETE", ["L2", "L5"])]
    [alert] = document["productOrderJeopardyAlert"]
    assert (alert["jeopardyType"], alert["productOrderItem"]) == (
        "High",
        [{"productOrderItemId": "L1"}, {"productOrderItemId": "L2"}],
    )
    [error] = document["productOrderErrorMessage"]
    assert (error["code"], error["message"], error["status"], error["productOrderItem"]) == (
        "PORT_UNAVAILABLE",
        "no port",
        "open",
        [{"productOrderItemId": "L2"}],
    )


def test_fields_keep_id_href_and_type_and_select_nested_attributes() -> None:
    document = {
        "id": "1",
        "href": "/h",
        "@type": "ProductOrder",
        "state": "completed",
        "priority": "5",
        "productOrderItem": [{"id": "a", "state": "completed"}, {"id": "b", "state": "held"}],
    }
    assert tmf622.select_fields(document, "state, productOrderItem.id") == {
        "id": "1",
        "href": "/h",
        "@type": "ProductOrder",
        "state": "completed",
        "productOrderItem": [{"id": "a"}, {"id": "b"}],
    }
    assert tmf622.select_fields(document, "nothing") == {
        "id": "1",
        "href": "/h",
        "@type": "ProductOrder",
    }


@pytest.mark.parametrize("order_number", ["TP-1", "a.b", "x~41", "café/1", "a b\u00a0"])
def test_a_cancel_task_id_names_its_order_and_request(order_number: str) -> None:
    task_id = tmf622.cancel_task_id(order_number, "r1")
    assert tmf622.parse_cancel_task_id(task_id) == (order_number, "r1")


@pytest.mark.parametrize("task_id", ["TP-1", "TP-1.", "x~4.r", "x~41.r", "x~zz.r", "~FF.r"])
def test_an_id_no_cancel_task_has_is_refused(task_id: str) -> None:
    assert tmf622.parse_cancel_task_id(task_id) is None


def test_cancel_task_state_follows_the_recorded_outcome() -> None:
    def status(state: OrderState, *revisions: RevisionView) -> OrderStatus:
        return OrderStatus(
            order_number="O",
            revision=1,
            state=state,
            status=FulfillmentStatus.OPEN,
            lines=[],
            components=[],
            revisions=list(revisions),
        )

    def task(s: OrderStatus | None) -> tuple[str, list[str]]:
        answer = tmf622.cancel_task("O", "r", s)
        return answer.state, [e.message for e in answer.error_message]

    cancelled = RevisionView(number=1, outcome="cancelled", request_id="r", reason="moved")
    rejected = RevisionView(number=1, outcome="rejected", request_id="r", reason="past PONR")
    other = RevisionView(number=1, outcome="cancelled", request_id="q")
    assert task(None) == ("acknowledged", [])
    assert task(status(OrderState.IN_PROGRESS, other)) == ("inProgress", [])
    assert task(status(OrderState.CANCELLED, cancelled)) == ("done", [])
    assert (
        tmf622.cancel_task("O", "r", status(OrderState.CANCELLED, cancelled)).cancellation_reason
        == "moved"
    )
    assert task(status(OrderState.IN_PROGRESS, rejected)) == ("terminatedWithError", ["past PONR"])
    assert task(status(OrderState.COMPLETED)) == (
        "terminatedWithError",
        ["order O is completed: only a running order can be cancelled"],
    )


# --- conformance against the API ----------------------------------------------------------------


@asynccontextmanager
async def tmf_api(
    client: Client, settings: Settings, role: str = "integrator"
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_api(client, settings) as api,
        httpx.AsyncClient(base_url=api.url + ROOT, headers=api.headers(role), timeout=30) as http,
    ):
        yield http


async def get_when(http: httpx.AsyncClient, path: str, state: str, **params: str) -> dict[str, Any]:
    """The resource once its ``state`` is reached."""
    found: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal found
        found = (await http.get(path, params=params)).json()
        return found.get("state") == state

    await until(reached)
    return found


async def no_workflow(client: Client, order_number: str) -> bool:
    try:
        await client.get_workflow_handle(ids.order_workflow_id(order_number)).describe()
    except RPCError as exc:
        return exc.status is RPCStatusCode.NOT_FOUND
    return False


async def test_create_then_read_until_completed(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    async with worker(), tmf_api(client, settings) as http:
        response = await http.post("/productOrder", json=tmf_body("triple_play.json", order_number))
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/json"
        created = response.json()
        assert (created["id"], created["state"], created["@type"]) == (
            order_number,
            "acknowledged",
            "ProductOrder",
        )
        assert created["href"] == f"{ROOT}/productOrder/{order_number}"
        assert response.headers["location"] == created["href"]
        assert created["creationDate"]
        assert [i["id"] for i in created["productOrderItem"]] == [
            i["id"] for i in tmf_body("triple_play.json")["productOrderItem"]
        ]
        done = await get_when(http, f"/productOrder/{order_number}", "completed")
    assert done["creationDate"] and done["completionDate"] >= done["creationDate"]
    assert {i["state"] for i in done["productOrderItem"]} == {"completed"}
    milestones = {m["name"]: m for m in done["productOrderMilestone"]}
    assert {"PROVISION_COMPLETE", "SHIPPED", "BILLING_START"} <= milestones.keys()
    assert {"productOrderItemId": "1.1.1"} in milestones["PROVISION_COMPLETE"]["productOrderItem"]
    assert done["productOrderErrorMessage"] == [] and done["productOrderJeopardyAlert"] == []


async def test_an_unknown_order_is_404_with_the_tmf_error_body(
    client: Client, settings: Settings, order_number: str
) -> None:
    async with tmf_api(client, settings, "viewer") as http:
        response = await http.get(f"/productOrder/{order_number}")
        task = await http.get("/cancelProductOrder/not-a-task")
    assert response.status_code == 404
    assert set(response.json()) == {"code", "reason", "message", "status"}
    assert response.json()["status"] == "404"
    assert task.status_code == 404


async def test_list_filters_fields_and_pages(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    numbers = [f"{order_number}-{n}" for n in range(3)]
    mine = ",".join(numbers)
    async with worker(), tmf_api(client, settings) as http:
        for number in numbers:
            posted = await http.post("/productOrder", json=tmf_body("broadband_only.json", number))
            assert posted.status_code == 201, posted.text

        async def all_listed_completed() -> bool:
            page = await http.get(
                "/productOrder", params={"state": "completed", "externalId": mine}
            )
            return page.headers["x-total-count"] == "3" and len(page.json()) == 3

        await until(all_listed_completed)
        first = await http.get("/productOrder", params={"externalId": mine, "limit": "2"})
        rest = await http.get(
            "/productOrder", params={"externalId": mine, "limit": "2", "offset": "2"}
        )
        one = await http.get("/productOrder", params={"externalId": numbers[1]})
        running = await http.get(
            "/productOrder", params={"state": "inProgress,acknowledged", "externalId": mine}
        )
        selected = await http.get(
            "/productOrder", params={"externalId": mine, "fields": "state,productOrderItem.id"}
        )
        by_id = await http.get(f"/productOrder/{numbers[0]}", params={"fields": "externalId"})
        bad_state = await http.get("/productOrder", params={"state": "finished"})
        too_many = await http.get("/productOrder", params={"limit": "1001"})
    assert (first.headers["x-total-count"], first.headers["x-result-count"]) == ("3", "2")
    assert (rest.headers["x-total-count"], rest.headers["x-result-count"]) == ("3", "1")
    assert sorted(o["id"] for o in first.json() + rest.json()) == numbers
    assert [o["id"] for o in one.json()] == [numbers[1]]
    assert running.json() == [] and running.headers["x-total-count"] == "0"
    for document in selected.json():
        assert set(document) == {"id", "href", "@type", "state", "productOrderItem"}
        assert document["productOrderItem"] == [
            {"id": i} for i in ("1", "1.1", "1.1.1", "1.1.2", "1.1.3")
        ]
    assert by_id.json() == {
        "id": numbers[0],
        "href": f"{ROOT}/productOrder/{numbers[0]}",
        "@type": "ProductOrder",
        "externalId": [{"id": numbers[0]}],
    }
    assert bad_state.status_code == 400 and "finished" in bad_state.json()["message"]
    assert too_many.status_code == 400


async def test_a_second_create_of_the_same_order_is_409_and_starts_nothing_more(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    body = tmf_body("broadband_only.json", order_number)
    async with worker(), tmf_api(client, settings) as http:
        assert (await http.post("/productOrder", json=body)).status_code == 201
        again = await http.post("/productOrder", json=body)
        await closed(client, order_number)
    assert again.status_code == 409, again.text
    assert order_number in again.json()["message"]
    runs = [
        r
        async for r in client.list_workflows(
            f"WorkflowId = '{ids.order_workflow_id(order_number)}'"
        )
    ]
    assert len(runs) == 1


async def test_bad_requests_are_refused_and_start_nothing(
    client: Client, settings: Settings, order_number: str
) -> None:
    unknown_class = tmf_body("broadband_only.json", f"{order_number}-class")
    unknown_class["productOrderItem"][2]["product"]["productCharacteristic"][1]["value"] = "Warp"
    async with tmf_api(client, settings) as http:
        malformed = await http.post(
            "/productOrder",
            content=b'{"externalId": [{"id": "%s-json"}], ' % order_number.encode(),
            headers={"content-type": "application/json"},
        )
        not_object = await http.post("/productOrder", json=[tmf_body("broadband_only.json")])
        wrong_media = await http.post(
            "/productOrder",
            content=json.dumps(tmf_body("broadband_only.json", f"{order_number}-media")),
            headers={"content-type": "text/plain"},
        )
        invalid = await http.post("/productOrder", json=unknown_class)
    assert (malformed.status_code, malformed.json()["reason"]) == (400, "Bad request")
    assert not_object.status_code == 400 and "not list" in not_object.json()["message"]
    assert wrong_media.status_code == 415
    assert invalid.status_code == 422
    assert invalid.json()["message"] == "line 1.1.1: unknown product class 'Warp'"
    for suffix in ("json", "media", "class"):
        assert await no_workflow(client, f"{order_number}-{suffix}")
    async with tmf_api(client, settings, "viewer") as viewer:
        forbidden = await viewer.post("/productOrder", json=tmf_body("broadband_only.json"))
    assert forbidden.status_code == 403


async def test_cancel_a_running_order(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    async with held_mid_flight(worker) as gate, tmf_api(client, settings) as http:
        posted = await http.post("/productOrder", json=tmf_body("triple_play.json", order_number))
        assert posted.status_code == 201, posted.text
        await gate.wait_reached()
        response = await http.post(
            "/cancelProductOrder",
            json={"productOrder": {"id": order_number}, "cancellationReason": "customer moved"},
        )
        assert response.status_code == 201, response.text
        task = response.json()
        assert (task["state"], task["cancellationReason"], task["productOrder"]["id"]) == (
            "acknowledged",
            "customer moved",
            order_number,
        )
        assert task["creationDate"] and response.headers["location"] == task["href"]
        gate.release()
        done = await get_when(http, f"/cancelProductOrder/{task['id']}", "done")
        order = await get_when(http, f"/productOrder/{order_number}", "cancelled")
    assert done["cancellationReason"] == "customer moved"
    assert {i["state"] for i in order["productOrderItem"]} == {"cancelled"}


async def test_cancel_a_completed_order_ends_with_the_reason(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    async with worker(), tmf_api(client, settings) as http:
        await http.post("/productOrder", json=tmf_body("broadband_only.json", order_number))
        await closed(client, order_number)
        response = await http.post(
            "/cancelProductOrder", json={"productOrder": {"id": order_number}}
        )
        again = await http.get(f"/cancelProductOrder/{response.json()['id']}")
        unknown = await http.post(
            "/cancelProductOrder", json={"productOrder": {"id": f"{order_number}-none"}}
        )
    assert response.status_code == 201, response.text
    reason = f"order {order_number} is completed: only a running order can be cancelled"
    for task in (response.json(), again.json()):
        assert task["state"] == "terminatedWithError"
        assert [e["message"] for e in task["errorMessage"]] == [reason]
    assert unknown.status_code == 422
