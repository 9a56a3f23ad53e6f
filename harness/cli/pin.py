"""`harness pin`: name a stored run as the baseline a drift config compares with."""

from __future__ import annotations

import argparse

from harness.cli.options import add_store, open_store
from harness.cli.output import out
from harness.core.console import console as err


def add(sub: argparse._SubParsersAction) -> None:
    pin = sub.add_parser("pin", help="mark a stored run as a named baseline for `harness drift`")
    pin.add_argument("run")
    pin.add_argument(
        "--as",
        dest="name",
        required=True,
        help="the pin name a config's `drift: {baseline: NAME}` uses",
    )
    add_store(pin)
    pin.add_argument(
        "--force",
        action="store_true",
        help="pin even a run whose verdict was ERROR (says so loudly)",
    )
    pin.set_defaults(func=pin_run)


def pin_run(args: argparse.Namespace) -> int:
    from harness.runs import pin

    with open_store(args.store, writes=True) as store:
        warning = pin(store, args.run, args.name, force=args.force)
    if warning:
        err.print(warning, style="bold yellow")
    out.print(f"pinned {args.run} as {args.name!r}")
    return 0
