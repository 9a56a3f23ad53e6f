"""One stderr console for progress and logs: wide lines and no source paths when not a terminal,
so CI logs stay readable and greppable.

Names, ids, tags, reasons and model output are user data, and a terminal or a CI log obeys what it
reads: rich markup (`[/x]` crashes a print, `[green]` styles), an ESC sequence (the terminal's own
commands), a newline followed by `::error ...` (a GitHub Actions workflow command, or `##vso[...]`
on Azure). So a user value is never printed as it is: `inert()` writes every control character, line
break and bidi override as its Python escape (`\\n`, `\\x1b`), and the harness's consoles are safe
by default (`SafeConsole`): no markup or emoji codes, every string argument made inert, every line
it writes kept from starting with a CI command. The harness styles its own words with `style=`,
`styled()` or `Text`, never with markup.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Iterable

from rich.console import Console
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

# C0 and C1 controls (ESC, CR, LF, tab, DEL, CSI), Unicode line and paragraph separators, bidi
# embeddings, overrides and isolates (text that displays other than it reads), lone surrogates (no
# encoding can write them) and the two non-characters XML forbids
_UNSAFE = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff"
_UNSAFE_RE = re.compile(f"[{_UNSAFE}]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# a line that a CI runner reads as a command once it trims leading blanks (and any colour codes
# before it)
_COMMAND_LINE = re.compile(r"^((?:[ \t\f\v]|\x1b\[[0-9;]*m)*)([:#])(?=\2)", re.MULTILINE)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def inert(value: object, keep: str = "") -> str:
    """`value` as text that cannot break a line, move the cursor or reorder what is shown: each
    unsafe character (see _UNSAFE) written as its escape, except those in `keep` (say, "\\n" for a
    multi-line message whose newlines are the harness's own)."""
    text = str(value)
    if not keep:
        return _UNSAFE_RE.sub(_escape, text)
    return _UNSAFE_RE.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)


def no_commands(text: str) -> str:
    """Every line of `text` that would start with `::` or `##` (after blanks) with its first
    character escaped, so that no CI runner takes it for a workflow command: the harness's own
    annotations are printed by report.ci.publish_to_github alone, never through this."""
    return _COMMAND_LINE.sub(lambda m: f"{m.group(1)}\\x{ord(m.group(2)):02x}", text)


def inert_lines(text: object) -> str:
    """A multi-line message (an error with its `fix:` line) for a plain stream: its newlines kept,
    every other unsafe character escaped, and no line a CI command, whatever user text the message
    embeds.
    """
    return no_commands(inert(text, keep="\n"))


def styled(*parts: str | tuple[str, str]) -> Text:
    """One line from parts, each plain text or (text, style), every part made inert: the harness's
    own styling for text that embeds user values, with no markup to parse."""
    line = Text()
    for part in parts:
        text, style = part if isinstance(part, tuple) else (part, "")
        line.append(inert(text), style=style)
    return line


def _inert_args(objects: Iterable[Any]) -> list[Any]:
    return [inert(o) if isinstance(o, str) else o for o in objects]


class SafeConsole(Console):
    """A rich Console that no user text can style, crash, break a line in, or send an escape
    through: markup and emoji codes off, string arguments of print and log made inert (several lines
    are several arguments with sep="\\n"), and on the way out every text segment's control
    characters escaped (rich's own line breaks and cursor controls kept) and no line a CI command.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, emoji=False, **kwargs)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*_inert_args(objects), **kwargs)

    def log(self, *objects: Any, _stack_offset: int = 1, **kwargs: Any) -> None:
        super().log(
            *_inert_args(objects), _stack_offset=_stack_offset + 1, **kwargs
        )  # the caller's line, not ours

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        """Where rich turns segments into the text it writes (rich >= 13): the last point every
        output passes."""
        clean = (
            segment if segment.control else Segment(inert(segment.text, keep="\n"), segment.style)
            for segment in buffer
        )
        return no_commands(super()._render_buffer(clean))


class SafeTable(Table):
    """A rich Table whose string headers and cells are made inert (a newline in a name stays in its
    row); the harness styles a cell by passing a Text (see styled)."""

    def __init__(self, *headers: Any, **kwargs: Any) -> None:
        super().__init__(*_inert_args(headers), **kwargs)

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        super().add_row(*_inert_args(cells), **kwargs)


console = SafeConsole(stderr=True, log_path=False, width=None if sys.stderr.isatty() else 200)


def log(message: str) -> None:
    """console.log as a plain module-level function: what a child process can be handed as its
    logger."""
    console.log(message)
