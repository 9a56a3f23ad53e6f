"""Where commands print: results on stdout (wide when piped, so CI logs keep whole rows), problems
on stderr."""

from __future__ import annotations

import sys

from harness.core.console import SafeConsole

out = SafeConsole(width=None if sys.stdout.isatty() else 160)


def num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
