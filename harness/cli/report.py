"""`harness report`: a stored run's report files, rendered again from the store alone."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.options import add_store, open_store
from harness.cli.output import out
from harness.core.console import console as err
from harness.core.errors import HarnessError


def add(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="re-render a stored run's report files")
    report.add_argument("run", help="run id (see `harness runs`)")
    add_store(report)
    report.add_argument(
        "--out",
        help=(
            "the folder for the run's files (default: RUN beside a SQLite store, else reports/RUN)"
        ),
    )
    report.set_defaults(func=render)


def render(args: argparse.Namespace) -> int:
    from harness.core.paths import inside
    from harness.report import write_reports
    from harness.runs import unfinished

    with open_store(args.store) as store:
        record = store.run(args.run)
        if record is None:
            known = ", ".join(store.runs()["run_id"].tolist()[-5:]) or "(none)"
            raise HarnessError(f"no run {args.run!r} in {store.where}\n  fix: one of: {known}")
        if record["status"] != "finished":
            what, resume = unfinished(record)
            err.print(
                f"warning: {what}: the reports show what is stored; finish it with: {resume}",
                style="bold yellow",
            )
        files = write_reports(
            store, args.run, Path(args.out) if args.out else inside(store.folder, args.run)
        )
    out.print(*(f"{kind}: {path}" for kind, path in files.items()), sep="\n")
    return 0
