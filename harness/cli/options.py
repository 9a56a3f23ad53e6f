"""What several commands share: the `--store` option (its help written once) and opening the store
it names."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.paths import STORE_ENV

if TYPE_CHECKING:
    from harness.store.store import Store

DEFAULT_STORE = "reports/harness.sqlite"


def add_store(
    parser: argparse.ArgumentParser, default: str = DEFAULT_STORE, purpose: str = "the run store"
) -> None:
    """`--store`, with the forms a store may be named in and where it is when the option is left
    out."""
    parser.add_argument(
        "--store",
        help=(
            f"{purpose}: a SQLite path, a postgresql://USER@HOST:PORT/DATABASE URL, "
            "or env:NAME (a variable holding the URL; a password is read from there, "
            f"never shown) (default: ${STORE_ENV}, else {default})"
        ),
    )


def open_store(flag: str | None, writes: bool = False, create: bool = False) -> "Store":
    """The store a command names (--store, else HARNESS_STORE, else the default file), opened
    read-only unless the command `writes` (a command that only reads neither makes, upgrades nor
    changes a store); a writing command that reads runs refuses a SQLite path with no store, unless
    it may `create` one (a cache)."""
    from harness.store.location import locate
    from harness.store.store import Store
    from harness.store.upgrade import no_store

    location = locate(flag, Path(DEFAULT_STORE))
    if writes and not create and location.path is not None and not location.path.exists():
        raise no_store(location.shown, "no such file")
    return Store(location, read_only=not writes)
