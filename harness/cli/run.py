"""`harness compare` and `harness drift`: the same pipeline (drift compares with a pinned run); the
exit code is the verdict."""

from __future__ import annotations

import argparse
import os

from rich.text import Text

from harness.cli.options import add_store
from harness.cli.output import out
from harness.core.console import SafeTable as Table
from harness.core.console import styled

HELP = {
    "compare": "run every candidate on every suite, gate, report; exit code = verdict",
    "drift": "run the config's suites and compare with the pinned run (`drift: {baseline: PIN}`)",
}


def add(sub: argparse._SubParsersAction) -> None:
    for name, text in HELP.items():
        command = sub.add_parser(name, help=text)
        command.add_argument("config", help="path to a config YAML (see configs/)")
        command.add_argument(
            "--out",
            help=(
                "folder for run folders and the store "
                "(default: the config's output_dir, else ./reports)"
            ),
        )
        add_store(command, default="the config's `store:`, else <output folder>/harness.sqlite")
        command.add_argument(
            "--no-cache",
            action="store_true",
            help="ignore cached responses and generate everything",
        )
        command.add_argument(
            "--retrain",
            action="store_true",
            help="train LoRA adapters even when a cached one matches",
        )
        command.add_argument(
            "--resume",
            metavar="RUN",
            help="continue a crashed or killed run; stored rows are not redone",
        )
        command.add_argument(
            "--stop-when-settled",
            action="store_true",
            help=(
                "run cases in a seeded random order, in waves, and stop once every gate is settled "
                "by an anytime-valid sequence (as `stop_when_settled: true` in the config)"
            ),
        )
        command.add_argument(
            "--fail-fast",
            action="store_true",
            help="with --stop-when-settled: stop at the first gate that fails decisively",
        )
        if name == "compare":
            command.add_argument(
                "--against",
                metavar="RUN",
                help=(
                    "a stored run (id or pin name) whose scores are the baseline side of relative"
                    " gates: each candidate compared with itself there (its suites must be"
                    " unchanged)"
                ),
            )
        command.set_defaults(func=run_and_decide)


def run_and_decide(args: argparse.Namespace) -> int:
    from harness.pipeline import run
    from harness.planning.options import RunOptions
    from harness.report.ci import FAIL, NO_DATA, PASS, gate_status
    from harness.runs import publish_to_ci
    from harness.verdict.gate import (
        DO_NOT_SHIP,
        ERROR,
        EXIT_CODES,
        LABELS,
        SHIP,
        regression_text,
        regressions_heading,
        ungated,
    )

    outcome = run(
        RunOptions.from_cli(
            args.config,
            args.command,
            out=args.out,
            store=args.store,
            against=getattr(args, "against", None),
            stop_when_settled=args.stop_when_settled,
            fail_fast=args.fail_fast,
            resume=args.resume,
            retrain=args.retrain,
            use_cache=not args.no_cache,
        )
    )
    verdict, results = outcome.verdict, outcome.results
    style = {SHIP: "bold green", DO_NOT_SHIP: "bold red", ERROR: "bold yellow"}[verdict.decision]
    colour = {PASS: "green", FAIL: "red", NO_DATA: "yellow"}
    table = Table("gate", "value", "result", "why")
    for gate in results["verdict"]["gates"]:
        status = gate_status(gate)
        table.add_row(
            gate["rule"],
            "—" if gate["value"] is None else f"{gate['value']:.3f}",
            Text(status, style=colour[status]),
            gate["reason"],
        )
    out.print(table)
    out.print(styled((LABELS[verdict.decision], style), f": {verdict.reason}"))
    regressions = ungated(results["verdict"])
    if regressions:
        out.print(
            styled(
                (
                    regressions_heading(regressions),
                    "bold red" if regressions[0]["blocks"] else "bold yellow",
                )
            )
        )
        out.print(*(f"  {regression_text(r)}" for r in regressions), sep="\n")
    out.print(*(f"{kind}: {path}" for kind, path in outcome.files.items()), sep="\n")
    publish_to_ci(outcome, os.environ, lambda line: print(line, flush=True))
    return EXIT_CODES[verdict.decision]
