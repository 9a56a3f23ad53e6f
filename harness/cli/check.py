"""`harness check`: every problem of a config at once, before any model starts."""

from __future__ import annotations

import argparse

from harness.cli.output import out
from harness.core.console import console as err


def add(sub: argparse._SubParsersAction) -> None:
    checking = sub.add_parser(
        "check",
        help=(
            "validate a config, its suites, rubrics, gates, models and data; every "
            "problem at once, no model started; exit 0 or 2"
        ),
    )
    checking.add_argument("config", help="path to a config YAML")
    checking.add_argument(
        "--stop-when-settled",
        action="store_true",
        help="also check what a settled run of it can do (the config's stop_when_settled does too)",
    )
    checking.set_defaults(func=check_config)


def check_config(args: argparse.Namespace) -> int:
    """Exit 0 when the config is ready to run, 2 with every problem listed."""
    from harness.planning.check import check

    checked = check(args.config, stop_when_settled=args.stop_when_settled)
    plan = checked.ready()
    for note in checked.notes:
        err.print(f"note: {note}", highlight=False)
    cases = sum(len(s.cases) for s in plan.suites)
    out.print(
        f"ok: {args.config}: {len(plan.config.candidates)} candidates, {len(plan.suites)} suites"
        f" ({cases} cases), {len(plan.config.gates)} gates; every suite, rubric, gate, model and"
        " data file checked, no model started",
        highlight=False,
    )
    return 0
