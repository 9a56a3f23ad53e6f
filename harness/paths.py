"""Where harness keeps things: what it can rebuild (converted models, adapters, indexes) and what it ships."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def builtin_dir(name: str) -> Path:
    """Shipped data (suites/, judges/): inside an installed wheel it is the package
    harness.builtin_<name>; in a source checkout, the folder at the repo's top."""
    try:
        return Path(str(resources.files(f"harness.builtin_{name}")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / name


def harness_home() -> Path:
    """The cache root: `$HARNESS_HOME`, else `~/.cache/harness`."""
    home = os.environ.get("HARNESS_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "harness"


def models_dir() -> Path:
    return harness_home() / "models"
