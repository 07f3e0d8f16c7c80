"""Payload encryption: AES-256-GCM under a ring of named keys, so Temporal stores no
customer name, address or phone number in clear.

Each encrypted payload is the inner payload serialized, sealed under a fresh 12-byte nonce
with the ring's active key; its metadata says ``encoding: binary/encrypted`` and names the
key (``encryption-key-id``), so any key of the ring opens it: a rotated ring (a new active
key, the old ones kept) still reads every order written before. A payload without that
encoding passes through, so histories recorded before encryption still read and replay.

Keys come from ``O2A_CODEC_KEYS`` (the key document inline) or ``O2A_CODEC_KEYS_FILE`` (its
path), else from ``var/codec-keys.json`` when that exists (`o2a up` makes it); never from
the repository. The document::

    {"active": "k2", "keys": {"k1": "<base64 of 32 bytes>", "k2": "..."}}

Modelled on samples-python ``encryption/codec.py``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from o2a.errors import InputError

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32
KEYS_VARIABLE = "O2A_CODEC_KEYS"
KEYS_FILE_VARIABLE = "O2A_CODEC_KEYS_FILE"
DEFAULT_KEYS_FILE = Path("var/codec-keys.json")
"""Relative to the working directory, as ``var/outbox`` is."""


log = logging.getLogger("o2a.encryption")


class DecryptionError(InputError):
    """A payload this ring cannot open: one line naming the key, not a traceback."""


@dataclass(frozen=True)
class KeyRing:
    keys: Mapping[str, bytes]
    active: str
    """The key ID new payloads are sealed with; every key of the ring opens."""

    @classmethod
    def parse(cls, text: str, source: str) -> KeyRing:
        """The key document; anything malformed is refused naming ``source`` and the key
        ID, never a key."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}: not JSON ({exc.msg}, line {exc.lineno})") from None
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, dict) or not keys:
            raise InputError(f'{source}: expected {{"active": ID, "keys": {{ID: base64 key}}}}')
        ring = {
            str(kid): _key_bytes(value, f"{source}: key {kid!r}") for kid, value in keys.items()
        }
        active = document.get("active", next(iter(ring)))
        if active not in ring:
            raise InputError(f"{source}: active key {active!r} is not among the keys")
        return cls(ring, str(active))

    def dump(self) -> str:
        keys = {kid: base64.b64encode(key).decode() for kid, key in self.keys.items()}
        return json.dumps({"active": self.active, "keys": keys}, indent=2) + "\n"

    def rotated(self) -> KeyRing:
        """A new random key, made active; the old ones stay to read what they sealed."""
        kid = next(f"k{n}" for n in range(1, len(self.keys) + 2) if f"k{n}" not in self.keys)
        return KeyRing({**self.keys, kid: AESGCM.generate_key(bit_length=256)}, kid)

    @classmethod
    def new(cls) -> KeyRing:
        return cls({"k1": AESGCM.generate_key(bit_length=256)}, "k1")


def _key_bytes(value: object, where: str) -> bytes:
    try:
        key = base64.b64decode(str(value), validate=True)
    except binascii.Error:
        raise InputError(f"{where} is not base64") from None
    if len(key) != KEY_BYTES:
        raise InputError(f"{where} is {len(key)} bytes; AES-256 needs {KEY_BYTES}")
    return key


class EncryptionCodec(PayloadCodec):
    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._ciphers = {kid: AESGCM(key) for kid, key in ring.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        kid = self._ring.active
        cipher = self._ciphers[kid]
        sealed = []
        for payload in payloads:
            nonce = secrets.token_bytes(NONCE_BYTES)
            data = nonce + cipher.encrypt(nonce, payload.SerializeToString(), None)
            sealed.append(Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=data))
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(p) for p in payloads]

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise DecryptionError(
                f"a payload is encrypted with key {kid!r}, which is not in the key ring "
                f"({', '.join(self._ring.keys)}); add it to {KEYS_FILE_VARIABLE} or {KEYS_VARIABLE}"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            return Payload.FromString(cipher.decrypt(nonce, sealed, None))
        except InvalidTag:
            raise DecryptionError(
                f"a payload under key {kid!r} does not open with that key (altered, or another "
                "key of the same ID)"
            ) from None


class ChainedCodec(PayloadCodec):
    """Encodes through each codec in order and decodes in reverse: compress, then encrypt
    (ciphertext does not compress)."""

    def __init__(self, *codecs: PayloadCodec) -> None:
        self._codecs = codecs

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        for codec in self._codecs:
            payloads = await codec.encode(payloads)
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        for codec in reversed(self._codecs):
            payloads = await codec.decode(payloads)
        return list(payloads)


def load_key_ring(environ: Mapping[str, str] = os.environ) -> KeyRing | None:
    """The configured ring; None: no keys anywhere, payloads are not encrypted."""
    inline = environ.get(KEYS_VARIABLE, "").strip()
    named = environ.get(KEYS_FILE_VARIABLE, "").strip()
    if inline and named:
        raise InputError(f"set {KEYS_VARIABLE} or {KEYS_FILE_VARIABLE}, not both")
    if inline:
        return KeyRing.parse(inline, KEYS_VARIABLE)
    path = Path(named) if named else DEFAULT_KEYS_FILE
    if not named and not path.exists():
        return None
    return KeyRing.parse(_read(path), f"{KEYS_FILE_VARIABLE} {path}" if named else str(path))


def warn_if_unencrypted() -> None:
    """A worker without keys stores customer data in clear: say so once, at start."""
    if load_key_ring() is None:
        log.warning(
            "payloads are NOT encrypted: no %s, %s or %s (`o2a keys new` makes one)",
            KEYS_VARIABLE,
            KEYS_FILE_VARIABLE,
            DEFAULT_KEYS_FILE,
        )


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None


def write_key_ring(path: Path, ring: KeyRing) -> None:
    """Readable by its owner only, replaced atomically so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(ring.dump())
    os.replace(partial, path)


def local_key_ring(environ: Mapping[str, str] = os.environ) -> tuple[KeyRing, str]:
    """For `o2a up`: the configured ring, else the local key file, made on first start so
    that every command run later from this directory finds it. Returns the ring and where
    it came from."""
    inline = environ.get(KEYS_VARIABLE, "").strip()
    named = environ.get(KEYS_FILE_VARIABLE, "").strip()
    if not inline and not named and not DEFAULT_KEYS_FILE.exists():
        write_key_ring(DEFAULT_KEYS_FILE, KeyRing.new())
    ring = load_key_ring(environ)
    assert ring is not None  # configured, or the key file exists now
    return ring, KEYS_VARIABLE if inline else named or str(DEFAULT_KEYS_FILE)


def add_key(path: Path) -> KeyRing:
    """`o2a keys new`: rotate the file's ring (made if missing)."""
    ring = KeyRing.parse(_read(path), str(path)).rotated() if path.exists() else KeyRing.new()
    write_key_ring(path, ring)
    return ring
