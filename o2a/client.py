"""The one place a Temporal client is made: data converter, tracing, connection settings.

Connection settings come from Temporal's own environment variables and config profiles
(TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*), so o2a points at a
dev server, a self-hosted cluster or Temporal Cloud without code changes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.envconfig import ClientConfig
from temporalio.exceptions import FailureError
from temporalio.service import RPCError

from o2a import metrics
from o2a.codec import CompressionCodec
from o2a.converter import PayloadConverter
from o2a.encryption import ChainedCodec, EncryptionCodec, KeyRing, load_key_ring
from o2a.telemetry import configure_tracing
from o2a.update_retry import UpdateRetryInterceptor

DEFAULT_ADDRESS = "localhost:7233"


def build_data_converter(ring: KeyRing | None) -> DataConverter:
    """Pydantic models as JSON, big payloads compressed (o2a/codec.py), then encrypted
    under ``ring`` (o2a/encryption.py; None: not encrypted). Encrypted, failure messages
    and stack traces go into the sealed payload too, since a fault's text may quote the
    order."""
    if ring is None:
        return DataConverter(
            payload_converter_class=PayloadConverter, payload_codec=CompressionCodec()
        )
    return DataConverter(
        payload_converter_class=PayloadConverter,
        payload_codec=ChainedCodec(CompressionCodec(), EncryptionCodec(ring)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


@cache
def data_converter() -> DataConverter:
    """The converter of every client and worker of this process, its keys read once from
    the environment (``load_key_ring``); a malformed key setting is an InputError."""
    return build_data_converter(load_key_ring())


async def failure_message(converter: DataConverter, failure: Failure) -> str:
    """A failure's message as it was raised: with encryption, history holds "Encoded
    failure" and the message is sealed in the failure's attributes."""
    sealed = Failure()
    sealed.CopyFrom(failure)  # decoding works in place
    error = await converter.decode_failure(sealed)
    return error.message if isinstance(error, FailureError) else str(error)


def interceptors() -> list[Interceptor]:
    return [TracingInterceptor(), UpdateRetryInterceptor()]


def connect_config() -> dict[str, Any]:
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", "default")
    return config


class ConnectionFailed(ConnectionError):
    """Temporal is not reachable: one line for the user, not a traceback."""


async def connect(service_name: str = "o2a", address: str | None = None) -> Client:
    """``address`` instead of the configured one (a server of a test's own)."""
    configure_tracing(service_name)
    config = connect_config()
    if address is not None:
        config["target_host"] = address
    converter = data_converter()  # bad keys: an InputError of their own, not "cannot reach"
    try:
        return await Client.connect(
            **config,
            data_converter=converter,
            interceptors=interceptors(),
            runtime=metrics.runtime(),
        )
    except (RuntimeError, RPCError, ValueError) as exc:  # ValueError: a malformed address
        raise ConnectionFailed(
            f"cannot reach Temporal at {config['target_host']}: {exc}. "
            "Is the server running (`make run` or `o2a server`)?"
        ) from exc
