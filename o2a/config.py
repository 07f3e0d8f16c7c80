"""Project settings from the environment; connection settings follow Temporal's own."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TASK_QUEUE = "o2a"
DEFAULT_OUTBOX_DIR = "var/outbox"
DEFAULT_UI_URL = "http://localhost:8233"


@dataclass(frozen=True)
class Settings:
    task_queue: str
    outbox_dir: Path
    catalog_path: Path | None
    ui_url: str

    @classmethod
    def from_env(cls) -> Settings:
        catalog = os.environ.get("O2A_CATALOG")
        return cls(
            task_queue=os.environ.get("O2A_TASK_QUEUE", DEFAULT_TASK_QUEUE),
            outbox_dir=Path(os.environ.get("O2A_OUTBOX_DIR", DEFAULT_OUTBOX_DIR)),
            catalog_path=Path(catalog) if catalog else None,
            ui_url=os.environ.get("O2A_UI_URL", DEFAULT_UI_URL).rstrip("/"),
        )
