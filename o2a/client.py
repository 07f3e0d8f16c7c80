"""The one place a Temporal client is made: data converter, tracing, connection settings.

Connection settings come from Temporal's own environment variables and config profiles
(TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*), so o2a points at a
dev server, a self-hosted cluster or Temporal Cloud without code changes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError

from o2a.codec import CompressionCodec
from o2a.telemetry import configure_tracing
from o2a.update_retry import UpdateRetryInterceptor

DEFAULT_ADDRESS = "localhost:7233"
DATA_CONVERTER: DataConverter = dataclasses.replace(
    pydantic_data_converter, payload_codec=CompressionCodec()
)
"""Pydantic models as JSON, big payloads compressed (o2a/codec.py)."""


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
    try:
        return await Client.connect(
            **config, data_converter=DATA_CONVERTER, interceptors=interceptors()
        )
    except (RuntimeError, RPCError, ValueError) as exc:  # ValueError: a malformed address
        raise ConnectionFailed(
            f"cannot reach Temporal at {config['target_host']}: {exc}. "
            "Is the server running (`make run` or `o2a server`)?"
        ) from exc
