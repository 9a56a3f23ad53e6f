"""Where harness keeps things: what it can rebuild (converted models, adapters, indexes) and what it ships."""

from __future__ import annotations

import os
from pathlib import Path


def builtin_dir(name: str) -> Path:
    """Shipped data (suites/, judges/): inside an installed wheel the folder harness/builtin_<name> beside this
    module (the wheel maps it there); in a source checkout, the folder at the repo's top."""
    here = Path(__file__).resolve().parent
    packaged = here / f"builtin_{name}"
    return packaged if packaged.is_dir() else here.parent / name


def harness_home() -> Path:
    """The cache root: `$HARNESS_HOME`, else `~/.cache/harness`."""
    home = os.environ.get("HARNESS_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "harness"


def models_dir() -> Path:
    return harness_home() / "models"
