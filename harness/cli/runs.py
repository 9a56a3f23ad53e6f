"""`harness runs`: the stored runs, newest last."""

from __future__ import annotations

import argparse

from rich.table import Column

from harness.cli.options import add_store, open_store
from harness.cli.output import out
from harness.core.console import SafeTable as Table


def add(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="list stored runs")
    add_store(runs)
    runs.set_defaults(func=list_runs)


def list_runs(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        runs = store.runs()
    table = Table("name", "kind", "created", "status", "verdict", "against")
    table.columns.insert(0, Column("run", no_wrap=True))
    for r in runs.itertuples(index=False):
        status = f"{r.status}: {r.reason.splitlines()[0][:100]}" if r.reason else r.status
        table.add_row(
            r.run_id, r.name, r.kind, r.created_at, status, r.decision or "—", r.against or ""
        )
    out.print(table)
    return 0
