"""Project settings from the environment; connection settings follow Temporal's own."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from o2a.errors import InputError
from o2a.metrics import configured_port
from o2a.models import DEFAULT_FULFILLMENT_DEADLINE
from o2a.versioning import DEFAULT_DEPLOYMENT_NAME

DEFAULT_TASK_QUEUE = "o2a"
DEFAULT_OUTBOX_DIR = "var/outbox"
DEFAULT_UI_URL = "http://localhost:8233"
DEFAULT_SINKS = ("outbox",)
DEFAULT_FULFILLMENT = "simulator"
BUS_SINKS = ("nats",)
BUS_FULFILLMENT = "bus"
DEFAULT_SUBJECT_PREFIX = "o2a"
DEFAULT_MAX_CACHED_WORKFLOWS = 250
"""Orders a worker keeps in memory between their workflow tasks (the sticky cache): memory
per cached order against replay cost. An order evicted replays its history at its next
task instead: cheap for an order that waits (a dozen events, once, when its date comes or
someone asks), costly for one under way. 250 holds every order a busy worker runs at once
(concurrency 40 is some 160 workflows with their SOM children) and keeps a worker holding
10,000 future-dated orders within 300 MB: measured with `o2a bench --hold 10000` against
`o2a up` on 2026-11-26, 206 MiB RSS at 250 and 475 MiB at 1,000 (about 0.3 MiB a cached
order)."""


@dataclass(frozen=True)
class Settings:
    task_queue: str
    outbox_dir: Path
    catalog_path: Path | None
    ui_url: str
    sinks: tuple[str, ...] = DEFAULT_SINKS
    """MessageBus adapters by name; the worker checks them at start (o2a.adapters)."""
    fulfillment: str = DEFAULT_FULFILLMENT
    """The FulfillmentSystem adapter by name."""
    fulfillment_deadline: float = DEFAULT_FULFILLMENT_DEADLINE
    """Seconds a system on the bus has to answer a step before it is fallout
    (``O2A_FULFILLMENT_DEADLINE``)."""
    nats_url: str | None = None
    """The bus (``O2A_NATS_URL``); None: no bus, messages to the outbox, systems inline."""
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    """Of every bus subject and stream (``O2A_SUBJECT_PREFIX``), so installations can share
    a NATS cluster."""
    max_cached_workflows: int = DEFAULT_MAX_CACHED_WORKFLOWS
    """The worker's sticky cache, in workflows (``O2A_MAX_CACHED_WORKFLOWS``, at least 1,
    ``sticky_cache``); memory per cached order against replay cost, see
    ``DEFAULT_MAX_CACHED_WORKFLOWS``."""
    metrics_port: int | None = None
    """The worker's Prometheus endpoint (``O2A_METRICS_PORT``, o2a/metrics.py); None: none."""
    deployment_name: str = DEFAULT_DEPLOYMENT_NAME
    """The Worker Deployment the worker is a version of (``O2A_DEPLOYMENT_NAME``)."""
    build_id: str | None = None
    """The worker's version in it (``O2A_BUILD_ID``); None: unversioned (o2a.versioning)."""

    def __post_init__(self) -> None:
        """Settings built in code (tests, the bench's own workers) hold the same sticky
        cache rule as those read from the environment or the command line."""
        sticky_cache(self.max_cached_workflows, "max_cached_workflows")

    @classmethod
    def from_env(cls) -> Settings:
        """Names are only read here: every command reads settings, and an unknown adapter
        is refused by the worker that would wire it, as one clear line. Where a bus is
        configured, messages and fulfillment systems go over it unless told otherwise."""
        catalog = os.environ.get("O2A_CATALOG")
        sinks = os.environ.get("O2A_SINKS", "").lower().split(",")
        nats_url = os.environ.get("O2A_NATS_URL", "").strip() or None
        on_bus = nats_url is not None
        return cls(
            task_queue=os.environ.get("O2A_TASK_QUEUE", DEFAULT_TASK_QUEUE),
            outbox_dir=Path(os.environ.get("O2A_OUTBOX_DIR", DEFAULT_OUTBOX_DIR)),
            catalog_path=Path(catalog) if catalog else None,
            ui_url=os.environ.get("O2A_UI_URL", DEFAULT_UI_URL).rstrip("/"),
            sinks=tuple(dict.fromkeys(s.strip() for s in sinks if s.strip()))
            or (BUS_SINKS if on_bus else DEFAULT_SINKS),
            fulfillment=os.environ.get("O2A_FULFILLMENT", "").strip().lower()
            or (BUS_FULFILLMENT if on_bus else DEFAULT_FULFILLMENT),
            fulfillment_deadline=_seconds("O2A_FULFILLMENT_DEADLINE", DEFAULT_FULFILLMENT_DEADLINE),
            nats_url=nats_url,
            subject_prefix=os.environ.get("O2A_SUBJECT_PREFIX", "").strip()
            or DEFAULT_SUBJECT_PREFIX,
            max_cached_workflows=_cache_from_env("O2A_MAX_CACHED_WORKFLOWS"),
            metrics_port=configured_port(),
            deployment_name=os.environ.get("O2A_DEPLOYMENT_NAME", "").strip()
            or DEFAULT_DEPLOYMENT_NAME,
            build_id=os.environ.get("O2A_BUILD_ID", "").strip() or None,
        )


def _seconds(variable: str, default: float) -> float:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"{variable} must be a number of seconds above 0, got {raw!r}")
    return seconds


def sticky_cache(size: int, source: str) -> int:
    """A cache size of at least 1. Without a cache the SDK evicts an order at the end of
    each activation, and replays its whole history for the next; an order of a build
    from before ``com-without-local-activities`` also loses its local activities still in
    flight and waits out a workflow task timeout (10 s) before it goes on. Seen in the
    metrics test on temporalio 1.35 (sdk-rust #1304 and #1482 are about it)."""
    if size < 1:
        raise InputError(
            f"{source} must be 1 or more, got {size}: without a sticky cache every workflow "
            "task replays the order's whole history"
        )
    return size


def _cache_from_env(variable: str) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return DEFAULT_MAX_CACHED_WORKFLOWS
    if not raw.isdecimal():
        raise InputError(f"{variable} must be a whole number of 1 or more, got {raw!r}")
    return sticky_cache(int(raw), variable)
