"""Where harness keeps things: what it can rebuild (converted models, adapters, indexes) and what it
ships."""

from __future__ import annotations

import os
from pathlib import Path

from harness.core.errors import HarnessError

STORE_ENV = (  # the store's path or URL (store.location reads it; the command line names it)
    "HARNESS_STORE"
)


def builtin_dir(name: str) -> Path:
    """Shipped data (suites/, judges/): inside an installed wheel the folder harness/builtin_<name>
    (the wheel maps it there); in a source checkout, the folder at the repo's top."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / f"builtin_{name}"
    return packaged if packaged.is_dir() else package.parent / name


def harness_home() -> Path:
    """The cache root: `$HARNESS_HOME`, else `~/.cache/harness`."""
    home = os.environ.get("HARNESS_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "harness"


def models_dir() -> Path:
    return harness_home() / "models"


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, refused unless it stays inside `folder` once both are resolved (no `..`, no
    absolute name, no link out): `name` may be text read from a store or a file, which is a name and
    never a path.
    """
    path = folder / name
    resolved, root = path.resolve(), folder.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise HarnessError(
            f"{name[:128]!r} would put a file outside {folder} (at {resolved})\n"
            "  fix: pass --out to choose where it goes, or name a run whose id is a plain name"
        )
    return path
