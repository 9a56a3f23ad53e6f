"""The command line answers without loading what its commands run: `harness --help` and every
command's --help build the parser only, and `harness check` reads a config without the statistics or
model libraries. Checked by what a fresh process holds in sys.modules afterwards, not by the clock
(bench/cli_startup.py times it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from harness.cli import build_parser
from support.helpers import endpoint_config

# each costs 0.1-2 s of import time on a 2-core box
HEAVY = {
    "scipy",
    "pandas",
    "sqlalchemy",
    "torch",
    "transformers",
    "vllm",
    "openai",
    "anthropic",
    "jinja2",
    "nltk",
}
PROBE = """
import contextlib, io, json, sys
from harness.cli import main
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    assert code in (0, None), (argv, code)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def imported(*argvs: list[str]) -> set[str]:
    """The top-level packages a fresh process holds after running these command lines, one after
    another."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


def commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every command line the parser knows (`store copy`, `judge calibrate`, ...), the bare one
    first."""
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*prefix, name))


def test_help_for_every_command_imports_no_heavy_library() -> None:
    every = [[*command, "--help"] for command in commands(build_parser())]
    assert len(every) > 15  # every command, subcommand and alias
    assert imported(*every) & HEAVY == set()


def test_check_on_an_endpoint_config_imports_no_statistics_or_model_library(tmp_path: Path) -> None:
    """SQLAlchemy (it parses the config's URLs) and jinja2 (its prompt templates) are what reading a
    config needs."""
    assert imported(["check", str(endpoint_config(tmp_path))]) & HEAVY == {"sqlalchemy", "jinja2"}
