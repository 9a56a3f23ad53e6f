"""One stderr console for progress and logs: wide lines and no source paths when not a terminal,
so CI logs stay readable and greppable."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(stderr=True, log_path=False, width=None if sys.stderr.isatty() else 200)


def log(message: str) -> None:
    """console.log as a plain module-level function: what a child process can be handed as its logger."""
    console.log(message)
