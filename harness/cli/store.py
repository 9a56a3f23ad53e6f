"""`harness store copy|info|upgrade`: the run store itself, moved between backends, shown, or
upgraded."""

from __future__ import annotations

import argparse

from harness.cli.options import add_store, open_store
from harness.cli.output import out
from harness.core.console import SafeTable as Table
from harness.core.console import console as err


def add(sub: argparse._SubParsersAction) -> None:
    stores = sub.add_parser("store", help="the run store").add_subparsers(
        dest="store_command", required=True
    )
    copying = stores.add_parser(
        "copy",
        help=(
            "copy runs, pins, history, cached answers and judge checks from one store "
            "to another (SQLite and PostgreSQL, either way); idempotent"
        ),
    )
    copying.add_argument(
        "source", metavar="FROM", help="a SQLite path, a postgresql:// URL, or env:NAME (only read)"
    )
    copying.add_argument(
        "target", metavar="TO", help="the same kinds; made (or upgraded) when needed"
    )
    copying.set_defaults(func=copy)
    info = stores.add_parser(
        "info",
        help=(
            "where the store is, its schema version and its rows per table "
            "(read-only: an older store is shown as it is)"
        ),
    )
    add_store(info)
    info.set_defaults(func=show)
    upgrading = stores.add_parser(
        "upgrade",
        help=(
            "bring an older store to this harness's schema in place, as any "
            "writing command does (commands that only read never do)"
        ),
    )
    add_store(upgrading)
    upgrading.set_defaults(func=upgrade)


def copy(args: argparse.Namespace) -> int:
    from harness.store.copy import copy_between
    from harness.store.location import parse

    source, target = parse(args.source, "FROM"), parse(args.target, "TO")
    copied = copy_between(
        source, target, lambda table, rows: err.log(f"{table}: {rows} rows copied")
    )
    if copied.skipped:
        err.print(
            f"warning: {len(copied.skipped)} run(s) not copied, their ids not plain names (a run's"
            " files go to a folder named by its id):"
            f" {', '.join(sorted(map(repr, copied.skipped)))}",
            style="bold yellow",
            soft_wrap=True,
            highlight=False,
        )
    table = Table("table", "rows copied", f"rows in {target.shown}")
    for name, rows in copied.rows.items():
        table.add_row(name, str(rows), str(copied.there[name]))
    out.print(table)
    out.print(
        f"copied {sum(copied.rows.values())} rows from {source.shown} to {target.shown}",
        highlight=False,
    )
    return 0


def show(args: argparse.Namespace) -> int:
    """Read-only: an older store is shown as it is, with the command that upgrades it."""
    from harness.store.copy import counts
    from harness.store.schema import SCHEMA_VERSION

    with open_store(args.store) as store:
        rows = counts(store)
        older = (
            f"; this harness writes {SCHEMA_VERSION}: `harness store upgrade` brings it there"
            if store.version < SCHEMA_VERSION
            else ""
        )
        out.print(
            f"store: {store.where} ({store.location.engine}, schema {store.version}{older})",
            highlight=False,
        )
    _print_counts(rows)
    return 0


def upgrade(args: argparse.Namespace) -> int:
    """An older store brought to this harness's schema in place (what any writing command does on
    opening it)."""
    from harness.store.copy import counts
    from harness.store.schema import SCHEMA_VERSION

    with open_store(args.store, writes=True) as store:
        rows = counts(store)
        had = (
            ""
            if store.upgraded_from == SCHEMA_VERSION
            else f", upgraded from {store.upgraded_from}"
        )
        out.print(
            f"store: {store.where} ({store.location.engine}, schema {SCHEMA_VERSION}{had})",
            highlight=False,
        )
    _print_counts(rows)
    return 0


def _print_counts(rows: dict[str, int]) -> None:
    table = Table("table", "rows")
    for name, count in rows.items():
        table.add_row(name, str(count))
    out.print(table)
