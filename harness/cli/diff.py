"""`harness diff`: two stored runs side by side, metric by metric, with an HTML page of the same."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.options import add_store, open_store
from harness.cli.output import num, out
from harness.core.console import SafeTable as Table
from harness.core.console import console as err


def add(sub: argparse._SubParsersAction) -> None:
    diff = sub.add_parser(
        "diff",
        help=(
            "per-metric deltas with CIs between two stored runs (B minus A, each "
            "candidate paired with itself, case by case); writes an HTML page too"
        ),
    )
    diff.add_argument("run_a", help="the earlier run id")
    diff.add_argument("run_b", help="the later run id")
    add_store(diff)
    diff.add_argument("--out", help="where to write the HTML (default: beside the store)")
    diff.set_defaults(func=diff_two)


def diff_two(args: argparse.Namespace) -> int:
    from harness.core.paths import inside
    from harness.report.diff import diff_runs, render_diff_html

    with open_store(args.store) as store:
        diff = diff_runs(store, args.run_a, args.run_b)
    table = Table(
        "candidate",
        "suite",
        "metric",
        f"A {args.run_a[-9:]}",
        f"B {args.run_b[-9:]}",
        "Δ B-A [CI]",
        "p (test)",
        "n",
        "reads",
    )
    for row in diff.rows:
        table.add_row(
            row["candidate"],
            row["suite"],
            row["metric"],
            num(row["baseline_mean"]),
            num(row["candidate_mean"]),
            f"{row['delta']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]",
            f"{row['p_value']:.3g} ({row['test']})" if row["p_value"] is not None else "—",
            str(row["n"]),
            row["outcome"],
        )
    out.print(table)
    for skipped in diff.skipped:
        err.print(f"not compared: {skipped}", highlight=False)
    path = (
        Path(args.out) if args.out else inside(store.folder, f"diff-{args.run_a}-{args.run_b}.html")
    )
    path.write_text(render_diff_html(diff))
    out.print(f"html: {path}")
    return 0
