"""The command line: one module per command, each registering its arguments and importing what it
runs only when it runs, over shared options (options.py). Here: parse, run the command, map what
happened to the exit code: the command's own (0 ship or ready, 1 do not ship), else 2 for any error,
130 interrupted, 143 terminated."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from typing import Callable

from harness.cli import check, diff, judge, models, pin, report, run, runs, serve, store, train
from harness.core.console import console as err
from harness.core.console import inert_lines, styled
from harness.core.errors import HarnessError, ProblemsFound
from harness.core.progress import quiet_library_bars

# In the order `harness --help` lists them. Each registers its arguments and imports what it runs
# when it runs (the stages import torch, transformers, scipy and vLLM's client), so `harness --help`
# answers at once.
COMMANDS = (run, check, train, pin, diff, report, runs, store, judge, serve, models)
EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 130, 143


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so every `finally` (server shutdown) runs."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description="Decide whether a fine-tuned LLM is good enough to ship."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(sub)
    return parser


def _debug(args: argparse.Namespace) -> None:
    """With --debug, the traceback: as inert as any error (its last line quotes the message)."""
    if args.debug:
        print(inert_lines(traceback.format_exc()), end="", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    quiet_library_bars()  # before any command imports a library that reads its setting once
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    # `harness check`, or a run refusing its config: each problem on its own
    except ProblemsFound as exc:
        _debug(args)
        err.print(styled((str(exc), "bold red"), ":"))
        for problem in exc.problems:
            print(inert_lines(f"error: {problem}"), file=sys.stderr)
        return EXIT_ERROR
    except HarnessError as exc:
        _debug(args)
        print(inert_lines(f"error: {exc}"), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:  # an unexpected failure is still exit 2, with the details on request
        _debug(args)
        if not args.debug:
            print(
                inert_lines(
                    f"error: {type(exc).__name__}: {exc}\n  (run with --debug for the traceback)"
                ),
                file=sys.stderr,
            )
        return EXIT_ERROR
