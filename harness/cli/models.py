"""`harness models pull|list`: the embedded models, fetched and converted once into the model cache."""

from __future__ import annotations

import argparse

from harness.cli.output import out
from harness.core.console import SafeTable as Table
from harness.core.console import console as err
from harness.core.models import DEFAULT_MODEL, cached, pull


def add(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model cache").add_subparsers(
        dest="models_command", required=True
    )
    pull = models.add_parser("pull", help="fetch and convert embedded models (idempotent)")
    pull.add_argument("alias", nargs="*", default=[DEFAULT_MODEL])
    pull.set_defaults(func=pull_models)
    models.add_parser("list", help="show cached models").set_defaults(func=list_models)


def pull_models(args: argparse.Namespace) -> int:
    for alias in args.alias:
        pull(alias, log=err.log)
    return 0


def list_models(args: argparse.Namespace) -> int:
    table = Table("alias", "source", "size (MB)", "fingerprint", "path")
    for m in cached():
        table.add_row(m["alias"], m["source"], str(m["size_mb"]), m["fingerprint"][:16], m["path"])
    out.print(table)
    return 0
