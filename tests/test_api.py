"""The HTTP door's frame: health, readiness, keys and roles, TMF error bodies, the body
limit. A real uvicorn server and a real HTTP client against the session's dev server."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
from temporalio.client import Client

from o2a.config import Settings
from o2a.server import DevServer
from tests.conftest import free_port
from tests.support import API_KEYS, O2A, Background, cli_env, running_api, until_healthy


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


async def test_o2a_api_serves_until_sigterm(
    temporal_address: str, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = cli_env(temporal_address, settings, O2A_API_KEYS=API_KEYS)
    api = await Background.start("api", "--port", str(port), env=env, log=tmp_path / "api.log")
    try:
        await api.wait_for_output("o2a API on")
        await until_healthy(port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            orders = await http.get("/api/v1/orders", headers={"Authorization": "Bearer x"})
            assert orders.status_code == 401, orders.text
        api.signal(signal.SIGTERM)
        assert await api.wait(10) == 0, api.output()
        assert "o2a API stopped" in api.output() and "Traceback" not in api.output()
    finally:
        await api.stop()


async def test_o2a_api_starts_while_temporal_is_down_and_serves_once_it_is_up(
    settings: Settings, tmp_path: Path
) -> None:
    """Readiness, not a crash: /healthz answers, the rest is a 503 with the TMF body until
    Temporal answers, then the same process serves without a restart."""
    temporal = DevServer(db=None, port=free_port(), ui_port=None, log_file=tmp_path / "t.log")
    port = free_port()
    env = cli_env(temporal.address, settings, O2A_API_KEYS=API_KEYS)
    api = await Background.start("api", "--port", str(port), env=env, log=tmp_path / "api.log")
    key = {"Authorization": f"Bearer {API_KEYS.split(',')[0].split(':')[0]}"}
    try:
        await until_healthy(port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for path in ("/readyz", "/api/v1/orders"):
                down = await http.get(path, headers=key)
                assert down.status_code == 503, down.text
                assert down.json()["reason"] == "Temporal unavailable", down.text
            with temporal:
                await temporal.wait_ready()
                ready = await http.get("/readyz")
                assert ready.json() == {"status": "ready"}, ready.text
                orders = await http.get("/api/v1/orders", headers=key)
                assert orders.status_code == 200, orders.text
        assert "Traceback" not in api.output(), api.output()
    finally:
        await api.stop()


def _refused_start(env: dict[str, str]) -> list[str]:
    """What `o2a api` says as it refuses to start (exit 2)."""
    done = subprocess.run(
        [*O2A, "api", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    return done.stderr.splitlines()


def test_o2a_api_without_keys_refuses_to_start(temporal_address: str, settings: Settings) -> None:
    assert _refused_start(cli_env(temporal_address, settings)) == [
        "o2a: set O2A_API_KEYS (KEY:ROLE pairs, comma-separated; roles viewer, operator, "
        "integrator) to start the API"
    ]


def test_o2a_api_with_a_weak_console_secret_refuses_to_start(
    temporal_address: str, settings: Settings
) -> None:
    env = cli_env(temporal_address, settings, O2A_API_KEYS=API_KEYS, O2A_CONSOLE_SECRET="short")
    assert _refused_start(env) == [
        "o2a: O2A_CONSOLE_SECRET must be at least 32 bytes (it has 5); e.g. "
        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
    ]
