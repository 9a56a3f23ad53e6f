"""Progress of long stages that reads well in a terminal and in a CI log.

In a terminal: a rich bar. Anywhere else (CI, a pipe, a file) a bar renders nothing until it ends,
so a log would go silent for minutes: there a plain line is printed every
`HARNESS_PROGRESS_INTERVAL_S` seconds (default 10) from a timer thread, whether or not anything
finished meanwhile, with done/total, the rate and the time left, and one last line when the stage
ends.

The libraries' own bars (tqdm: transformers' `Loading weights`, the GGUF conversion,
huggingface_hub, datasets, peft, accelerate) redraw one line with carriage returns: in a file that
is one line of hundreds of updates. Outside a terminal `quiet_library_bars` turns them all off (the
harness's plain lines say what is going on); in a terminal they stay, since there they redraw in
place and are the only sign of life while a model loads or converts, which the harness cannot count
itself.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.core.console import console as default_console
from harness.core.console import inert

DEFAULT_INTERVAL_S = 10.0
# What each library reads when it is imported: tqdm's default for every bar (so peft's and the GGUF
# reader's plain tqdm too), huggingface_hub's (transformers starts from it), datasets'.
QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}
# ... and the switch of each that was imported already (module, function): a library user's process.
QUIET_LOADED = (
    ("transformers.utils.logging", "disable_progress_bar"),
    ("huggingface_hub.utils", "disable_progress_bars"),
    ("datasets.utils.tqdm", "disable_progress_bars"),
)


def in_terminal() -> bool:
    """Whether a person watches the output: stdout and stderr both terminals, and no CI runner (they
    set `CI`; some give their jobs a pseudo-terminal whose log is still a file)."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false")
    return sys.stdout.isatty() and sys.stderr.isatty() and not ci


def quiet_library_bars() -> None:
    """Outside a terminal, no library's progress bar writes to the log. Called first by the command
    line and by pipeline.run; in a process that imported tqdm before, the libraries without a switch
    of their own (peft, the GGUF reader) keep theirs. Child processes (the vLLM server) inherit the
    setting."""
    if in_terminal():
        return
    os.environ.update(QUIET_ENV)
    for module, switch in QUIET_LOADED:
        if module in sys.modules:
            getattr(sys.modules[module], switch)()


def interval_s() -> float:
    value = os.environ.get("HARNESS_PROGRESS_INTERVAL_S", "")
    try:
        return max(float(value), 0.1) if value else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def plain_line(
    label: str, done: int, total: int | None, elapsed: float, unit: str, note: str = ""
) -> str:
    """`label: 120/636 requests (19%), 2m10s elapsed, 2.1/s, 4m05s left` (rate and time left once
    something is done); with no total (a wait), only the time so far."""
    if total is None:
        return f"{label}: {duration(elapsed)} elapsed{f' · {note}' if note else ''}"
    share = f" ({100 * done / total:.0f}%)" if total else ""
    line = f"{label}: {done}/{total} {unit}{share}, {duration(elapsed)} elapsed"
    if done and elapsed > 0:
        rate = done / elapsed
        line += f", {rate:.2f}/s" if rate < 10 else f", {rate:.0f}/s"
        if total > done:
            line += f", {duration((total - done) / rate)} left"
    return f"{line}{f' · {note}' if note else ''}"


class StageProgress:
    """`with StageProgress("generate smollm2", total=636) as p: p.advance()`; `note` shows extra
    text (a loss, a rate) after the counts; `total=None` is a wait with no count (a server
    starting). Thread-safe: engines may advance it from their worker threads."""

    def __init__(
        self,
        label: str,
        total: int | None,
        unit: str = "requests",
        console: Console | None = None,
        interval: float | None = None,
        note: str = "",
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.console = console or default_console
        self.interval = interval_s() if interval is None else interval
        self.done = 0
        self.note = note
        self.started = time.perf_counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> "StageProgress":
        self.started = time.perf_counter()
        if self.console.is_terminal:
            # labels and notes carry candidate and model names: shown as text, never parsed as
            # markup
            self._bar = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}", markup=False),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                inert(self.label), total=self.total, note=inert(self.note)
            )
        else:
            self._thread = threading.Thread(target=self._beat, name="harness-progress", daemon=True)
            self._thread.start()
        return self

    def advance(self, n: int = 1, note: str | None = None) -> None:
        with self._lock:
            self.done += n
            if note is not None:
                self.note = note
        if self._bar is not None:
            self._bar.update(self._task, advance=n, note=inert(self.note))

    def line(self) -> str:
        """The plain line, made inert: its label and note name candidates and models."""
        with self._lock:
            done, note = self.done, self.note
        return inert(
            plain_line(
                self.label, done, self.total, time.perf_counter() - self.started, self.unit, note
            )
        )

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.console.print(self.line(), highlight=False, markup=False)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, exc, tb)
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.total is not None:
            self.console.print(
                self.line() + ("" if kind is None else " (stopped)"), highlight=False, markup=False
            )
