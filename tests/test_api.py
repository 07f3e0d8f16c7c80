"""The HTTP door's frame: health, readiness, keys and roles, TMF error bodies, the body
limit. A real uvicorn server and a real HTTP client against the session's dev server."""

from __future__ import annotations

import httpx
from temporalio.client import Client

from o2a.config import Settings
from tests.support import running_api


async def test_health_and_readiness_need_no_key(client: Client, settings: Settings) -> None:
    async with running_api(client, settings) as api, httpx.AsyncClient(base_url=api.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        spec = (await http.get("/openapi.json")).json()
        assert spec["info"]["title"] == "o2a"
        assert (await http.get("/docs")).status_code == 200


async def test_an_unknown_path_answers_with_the_tmf_error_body(
    client: Client, settings: Settings
) -> None:
    async with running_api(client, settings) as api, httpx.AsyncClient(base_url=api.url) as http:
        response = await http.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {
        "code": "404",
        "reason": "Not Found",
        "message": "Not Found",
        "status": "404",
    }


async def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(
    client: Client, settings: Settings
) -> None:
    async with (
        running_api(client, settings, max_body_bytes=1024) as api,
        httpx.AsyncClient(base_url=api.url) as http,
    ):
        response = await http.post("/healthz", content=b"x" * 2048)
    assert response.status_code == 413, response.text
    assert response.json()["reason"] == "Payload too large"
