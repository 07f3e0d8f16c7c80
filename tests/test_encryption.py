"""Encrypted payloads (o2a/encryption.py) and the codec server (o2a/api/codec_server.py):
Temporal stores no customer address or phone number, o2a still reads every order, a
rotated key ring reads old orders, the Web UI decodes through the API."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from o2a.client import build_data_converter, data_converter, interceptors
from o2a.codec import ENCODING as COMPRESSED
from o2a.config import Settings
from o2a.encryption import (
    ENCODING,
    KEY_ID,
    KEYS_FILE_VARIABLE,
    KEYS_VARIABLE,
    DecryptionError,
    EncryptionCodec,
    KeyRing,
    load_key_ring,
    warn_if_unencrypted,
)
from o2a.errors import InputError
from o2a.inbound import read_order_file
from o2a.models import OrderState
from tests.support import (
    CODEC_KEYS,
    SAMPLES,
    StartWorker,
    cli_env,
    finished,
    order_histories,
    quick_triple_play,
    running_api,
    set_spec,
    start,
    wait_for_state,
)
from tests.test_cli import o2a
from workers.worker import build_worker

ADDRESS = "Keizersgracht 221"
PHONES = ("+31201234567", "+31612345678")
"""The triple play's service address and the numbers it ports (samples/triple_play.xml)."""

TEST_RING = KeyRing.parse(CODEC_KEYS, "test")
ROTATED = TEST_RING.rotated()
"""A new active key beside the suite's one."""
WITHOUT_OLD = KeyRing({ROTATED.active: ROTATED.keys[ROTATED.active]}, ROTATED.active)


def payloads_of(event: HistoryEvent) -> list[Payload]:
    """Every payload an event holds, wherever it sits in the event."""
    found: list[Payload] = []

    def walk(message: object) -> None:
        if isinstance(message, Payload):
            found.append(message)
            return
        for field, value in message.ListFields():  # type: ignore[attr-defined]
            if field.type != field.TYPE_MESSAGE:
                continue
            if field.message_type.GetOptions().map_entry:
                values = value.values()
            elif hasattr(value, "ListFields"):
                values = [value]
            else:  # repeated
                values = value
            for item in values:
                walk(item)

    walk(event)
    return found


async def stored_events(address: str, order_number: str) -> list[HistoryEvent]:
    """The events of the order and of its SOM children as the server stores them: read by
    a client without the codec."""
    histories = await order_histories(await Client.connect(address), order_number)
    assert len(histories) > 1  # the order and its children
    return [event for history in histories for event in history.events]


# --- the codec ------------------------------------------------------------------------------


async def test_a_payload_is_sealed_under_the_active_key_with_a_fresh_nonce() -> None:
    codec = EncryptionCodec(TEST_RING)
    plain = Payload(metadata={"encoding": b"json/plain"}, data=f'"{ADDRESS}"'.encode())
    first, second = await codec.encode([plain, plain])
    assert first.metadata["encoding"] == ENCODING
    assert first.metadata[KEY_ID] == TEST_RING.active.encode()
    assert first.data != second.data  # a nonce of its own
    assert ADDRESS.encode() not in first.SerializeToString()
    assert await codec.decode([first, second]) == [plain, plain]


async def test_big_payloads_are_compressed_then_encrypted_and_come_back_equal() -> None:
    converter = build_data_converter(TEST_RING)
    order = read_order_file(SAMPLES / "business_200.xml")
    [payload] = await converter.encode([order])
    assert payload.metadata["encoding"] == ENCODING
    [inner] = await EncryptionCodec(TEST_RING).decode([payload])
    assert inner.metadata["encoding"] == COMPRESSED  # ciphertext would not compress
    assert payload.ByteSize() < len(order.model_dump_json()) // 10
    [back] = await converter.decode([payload], [type(order)])
    assert back == order


async def test_payloads_from_before_encryption_read_unchanged() -> None:
    [old] = await build_data_converter(None).encode([{"order": "TP-1"}])
    assert await build_data_converter(TEST_RING).decode([old], [dict]) == [{"order": "TP-1"}]


async def test_a_rotated_ring_reads_old_payloads_and_seals_new_ones_with_its_new_key() -> None:
    [old] = await EncryptionCodec(TEST_RING).encode([Payload(data=b"x")])
    rotated = EncryptionCodec(ROTATED)
    assert await rotated.decode([old]) == [Payload(data=b"x")]
    [new] = await rotated.encode([Payload(data=b"y")])
    assert new.metadata[KEY_ID] == ROTATED.active.encode() != old.metadata[KEY_ID]


async def test_a_ring_without_the_key_says_which_key_it_lacks() -> None:
    [old] = await EncryptionCodec(TEST_RING).encode([Payload(data=b"x")])
    with pytest.raises(DecryptionError, match=f"key '{TEST_RING.active}'"):
        await EncryptionCodec(WITHOUT_OLD).decode([old])
    tampered = Payload(metadata=old.metadata, data=old.data[:-1] + bytes([old.data[-1] ^ 1]))
    with pytest.raises(DecryptionError, match="does not open"):
        await EncryptionCodec(TEST_RING).decode([tampered])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nope", "not JSON"),
        ('{"keys": {}}', "expected"),
        ('{"keys": {"k1": "not base64!"}}', "key 'k1' is not base64"),
        ('{"keys": {"k1": "' + base64.b64encode(b"short").decode() + '"}}', "AES-256 needs 32"),
        ('{"active": "k9", "keys": ' + json.dumps(json.loads(CODEC_KEYS)["keys"]) + "}", "'k9'"),
    ],
)
def test_a_malformed_key_document_is_refused_in_one_line(text: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason) as refused:
        KeyRing.parse(text, KEYS_VARIABLE)
    assert "\n" not in str(refused.value)


def test_keys_come_from_the_environment_else_the_local_file_else_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_key_ring({}) is None  # not encrypted: the worker warns
    assert load_key_ring({KEYS_VARIABLE: CODEC_KEYS}) == TEST_RING
    with pytest.raises(InputError, match="not both"):
        load_key_ring({KEYS_VARIABLE: CODEC_KEYS, KEYS_FILE_VARIABLE: "k.json"})
    with pytest.raises(InputError, match=r"k\.json"):
        load_key_ring({KEYS_FILE_VARIABLE: "k.json"})


def test_a_worker_without_keys_says_once_that_payloads_are_not_encrypted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(KEYS_VARIABLE)
    warn_if_unencrypted()
    [record] = [r for r in caplog.records if r.name == "o2a.encryption"]
    assert record.levelname == "WARNING"
    assert "NOT encrypted" in record.getMessage()


async def test_o2a_keys_new_makes_an_owner_only_file_and_rotates_it(
    temporal_address: str, settings: Settings, tmp_path: Path
) -> None:
    env = cli_env(temporal_address, settings)
    path = tmp_path / "keys.json"
    made = await o2a("keys", "new", "--file", str(path), env=env)
    assert made.returncode == 0, made
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rotated = await o2a("keys", "new", "--file", str(path), env=env)
    assert rotated.returncode == 0, rotated
    assert "key 'k2' is now active (2 keys: k1, k2)" in rotated.stdout, rotated
    ring = KeyRing.parse(path.read_text(), str(path))
    assert (ring.active, list(ring.keys)) == ("k2", ["k1", "k2"])


async def test_a_malformed_key_setting_is_one_line_and_exit_2(
    temporal_address: str, settings: Settings, tmp_path: Path
) -> None:
    bad = cli_env(temporal_address, settings, O2A_CODEC_KEYS='{"keys": {"k1": "eHg="}}')
    run = await o2a("status", "T-ANY", env=bad)
    assert (run.returncode, run.stderr_lines) == (
        2,
        ["o2a: O2A_CODEC_KEYS: key 'k1' is 2 bytes; AES-256 needs 32"],
    ), run


# --- on a real server -----------------------------------------------------------------------


async def test_temporal_stores_no_address_or_phone_number_and_o2a_still_reads_the_order(
    client: Client,
    temporal_address: str,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
) -> None:
    async with worker():
        await finished(await start(client, settings, quick_triple_play(order_number)))
    events = await stored_events(temporal_address, order_number)
    stored = b"".join(event.SerializeToString() for event in events)
    for secret in (ADDRESS, *PHONES):
        assert secret.encode() not in stored, secret
    opened = await data_converter().payload_codec.decode(  # type: ignore[union-attr]
        [p for event in events for p in payloads_of(event)]
    )
    assert ADDRESS.encode() in b"".join(p.data for p in opened)  # so the check above meant it

    env = cli_env(temporal_address, settings)
    async with worker():  # a query on a closed order replays it on a worker
        status = await o2a("status", order_number, "--json", env=env)
    assert status.returncode == 0, status
    assert json.loads(status.stdout)["status"] == "COMPLETE"


async def test_a_fault_message_is_sealed_with_the_payloads(
    client: Client,
    temporal_address: str,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
) -> None:
    """A fulfillment system's fault text may quote the order: failure messages and stack
    traces go into the encrypted payload (``DefaultFailureConverterWithEncodedAttributes``)."""
    order = set_spec(quick_triple_play(order_number), "1.1.1", "SimulatedFault", "activate")
    async with worker():
        handle = await start(client, settings, order)
        [fallout] = (await wait_for_state(handle, OrderState.FAILED)).fallouts
    await handle.terminate("test done")
    assert "rejected activate of line 1.1.1" in fallout.message  # read through the codec
    stored = b"".join(
        e.SerializeToString() for e in await stored_events(temporal_address, order_number)
    )
    assert b"Encoded failure" in stored
    assert b"rejected activate" not in stored


async def test_a_rotated_ring_reads_old_orders_and_encrypts_new_ones_with_its_key(
    client: Client,
    temporal_address: str,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
) -> None:
    async with worker():
        await finished(await start(client, settings, quick_triple_play(order_number)))
    rotated = await Client.connect(
        temporal_address,
        data_converter=build_data_converter(ROTATED),
        interceptors=interceptors(),
    )
    newer = f"{order_number}-N"
    async with build_worker(rotated, settings):
        await finished(await start(rotated, settings, quick_triple_play(newer)))
        env = cli_env(temporal_address, settings, O2A_CODEC_KEYS=ROTATED.dump())
        status = await o2a("status", order_number, "--json", env=env)
        assert status.returncode == 0, status
        assert json.loads(status.stdout)["status"] == "COMPLETE"
    [history] = (await order_histories(client, newer))[:1]
    key_ids = {
        p.metadata[KEY_ID] for e in history.events for p in payloads_of(e) if KEY_ID in p.metadata
    }
    assert key_ids == {ROTATED.active.encode()}
    [old] = (await order_histories(client, order_number))[:1]
    sealed = [p for e in old.events for p in payloads_of(e)]
    with pytest.raises(DecryptionError, match=f"key '{TEST_RING.active}'"):
        await EncryptionCodec(WITHOUT_OLD).decode(sealed)


# --- the codec server -----------------------------------------------------------------------


def as_json(payloads: list[Payload]) -> dict[str, object]:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


async def test_the_codec_server_decodes_for_a_reader_and_only_for_the_ui_origin(
    client: Client, settings: Settings
) -> None:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=f'"{ADDRESS}"'.encode())
    sealed = await EncryptionCodec(TEST_RING).encode([plain])
    async with running_api(client, settings) as api, httpx.AsyncClient(base_url=api.url) as http:
        decoded = await http.post(
            "/codec/decode",
            json=as_json(sealed),
            headers=api.headers("viewer", **{"X-Namespace": "default"}),
        )
        assert decoded.status_code == 200, decoded.text
        assert decoded.json() == as_json([plain])

        encoded = await http.post(
            "/codec/encode", json=as_json([plain]), headers=api.headers("viewer")
        )
        assert encoded.status_code == 200, encoded.text
        [meta] = [p["metadata"] for p in encoded.json()["payloads"]]
        assert base64.b64decode(meta["encoding"]) == ENCODING

        anonymous = await http.post("/codec/decode", json=as_json(sealed))
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "401"

        bad = await http.post(
            "/codec/decode",
            content=b'{"payloads": 3}',
            headers=api.headers(**{"Content-Type": "application/json"}),
        )
        assert (bad.status_code, bad.json()["reason"]) == (400, "Bad request")
        form = await http.post(
            "/codec/decode", content=b"x", headers=api.headers(**{"Content-Type": "text/plain"})
        )
        assert form.status_code == 415
        [foreign] = await EncryptionCodec(WITHOUT_OLD).encode([plain])
        unknown = await http.post("/codec/decode", json=as_json([foreign]), headers=api.headers())
        assert unknown.status_code == 422
        assert f"key '{ROTATED.active}'" in unknown.json()["message"]

        def preflight(origin: str) -> dict[str, str]:
            return {
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            }

        allowed = await http.options("/codec/decode", headers=preflight(settings.ui_url))
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == settings.ui_url
        assert allowed.headers["access-control-allow-credentials"] == "true"
        refused = await http.options("/codec/decode", headers=preflight("http://evil.example"))
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        elsewhere = await http.options("/api/v1/orders", headers=preflight(settings.ui_url))
        assert "access-control-allow-origin" not in elsewhere.headers  # the codec routes only


async def test_the_web_ui_decodes_with_the_console_sign_in_the_browser_carries(
    client: Client, settings: Settings
) -> None:
    """The UI sends cookies ("Include cross-origin credentials"), not keys: a console
    sign-in sets a copy of its session cookie for /codec, and signing out ends it."""
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')
    [sealed] = await EncryptionCodec(TEST_RING).encode([plain])
    body = as_json([sealed])
    async with running_api(client, settings) as api, httpx.AsyncClient(base_url=api.url) as http:
        assert (await http.post("/codec/decode", json=body)).status_code == 401
        form = await http.get("/console/login")
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        await http.post("/console/login", data={"csrf": csrf, "key": api.keys["viewer"]})
        decoded = await http.post("/codec/decode", json=body, headers={"Origin": settings.ui_url})
        assert decoded.status_code == 200, decoded.text
        assert decoded.json() == as_json([plain])
        assert decoded.headers["access-control-allow-origin"] == settings.ui_url
        page = await http.get("/console/orders")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        await http.post("/console/logout", data={"csrf": csrf})
        assert (await http.post("/codec/decode", json=body)).status_code == 401
