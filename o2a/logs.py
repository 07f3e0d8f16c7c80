"""Logging for o2a's processes: set up once per process, human-readable text by default,
one JSON object per line with ``O2A_LOG_FORMAT=json`` (for a log shipper), the level from
``O2A_LOG_LEVEL``.

Every line from workflow and activity code names its order: ``workflow.logger`` and
``activity.logger`` put the workflow ID on the record (``temporal_workflow`` /
``temporal_activity``), and ``OrderFields`` turns it into ``order``, ``workflow_id`` and, in a
provisioning child or one of its activities, ``component`` (o2a/ids.py reads them back from
the ID). Other code names its order with ``extra={"order": ...}`` (the API's request line).
The current trace and span IDs go on every line too, so a log line leads to its trace.

What a line may say: IDs (order number, line, component, message IDs) and states, never the
customer's name, address or phone number (those stay in the order and its messages).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from temporalio import activity, workflow

from o2a import ids
from o2a.errors import InputError

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FIELDS = ("order", "workflow_id", "component", "trace_id", "span_id")
"""What ``OrderFields`` puts on every record (None where it does not apply)."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"

_handler: logging.Handler | None = None


def configure_logging(env: Mapping[str, str] | None = None) -> None:
    """Once per process (a second call changes nothing): a handler on stderr at the root.
    Raises InputError for an unknown format or level."""
    global _handler
    env = os.environ if env is None else env
    form = env.get("O2A_LOG_FORMAT", "text").strip().lower()
    if form not in FORMATS:
        raise InputError(f"O2A_LOG_FORMAT: unknown format {form!r} (one of {', '.join(FORMATS)})")
    level = env.get("O2A_LOG_LEVEL", "INFO").strip().upper()
    if level not in LEVELS:
        raise InputError(f"O2A_LOG_LEVEL: unknown level {level!r} (one of {', '.join(LEVELS)})")
    if _handler is not None:
        return
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter(TEXT_FORMAT))
    install(_handler, level)


def install(handler: logging.Handler, level: str | int = logging.INFO) -> None:
    """``handler`` on the root logger with the order fields; the SDK's loggers stop
    appending their info dict to the message, since the fields carry it."""
    handler.addFilter(OrderFields())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False


class OrderFields(logging.Filter):
    """Adds ``FIELDS`` to the record: from the Temporal workflow or activity that logged it,
    else from the record's own extra, and the current span's IDs."""

    def filter(self, record: logging.LogRecord) -> bool:
        temporal: dict[str, Any] = (
            getattr(record, "temporal_workflow", None)
            or getattr(record, "temporal_activity", None)
            or {}
        )
        workflow_id = temporal.get("workflow_id") or getattr(record, "workflow_id", None)
        order = getattr(record, "order", None)
        component = getattr(record, "component", None)
        known = ids.order_of_workflow(workflow_id) if workflow_id else None
        if known is not None:  # a child's ID names its component; else the line may
            order, of_workflow = known
            component = of_workflow or component
        elif workflow_id is None and order is not None:
            workflow_id = ids.order_workflow_id(order)
        record.order, record.workflow_id, record.component = order, workflow_id, component
        span = trace.get_current_span().get_span_context()
        record.trace_id = f"{span.trace_id:032x}" if span.is_valid else None
        record.span_id = f"{span.span_id:016x}" if span.is_valid else None
        return True


class TextFormatter(logging.Formatter):
    """The message, then the order fields that apply as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(
            f"{name}={value}" for name in FIELDS[:3] if (value := getattr(record, name, None))
        )
        record.context = f" [{fields}]" if fields else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the order fields that apply,
    and the exception's traceback as one string."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(
            (name, value) for name in FIELDS if (value := getattr(record, name, None)) is not None
        )
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
