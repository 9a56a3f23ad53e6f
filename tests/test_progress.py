"""Progress in a CI log: plain lines at a steady interval when the console is not a terminal."""

from __future__ import annotations

import io
import time

from rich.console import Console

from harness.progress import StageProgress, duration, plain_line


def test_a_plain_line_says_done_total_rate_and_time_left() -> None:
    assert plain_line("generate m", 120, 600, 60.0, "answers") == \
        "generate m: 120/600 answers (20%), 1m00s elapsed, 2.00/s, 4m00s left"
    assert plain_line("generate m", 0, 600, 5.0, "answers") == "generate m: 0/600 answers (0%), 5s elapsed"
    assert plain_line("training", 15, 15, 159.0, "steps", "loss 0.09") == \
        "training: 15/15 steps (100%), 2m39s elapsed, 0.09/s · loss 0.09"
    assert plain_line("starting vLLM", 0, None, 31.0, "", "log: x.log") == "starting vLLM: 31s elapsed · log: x.log"
    assert duration(3599.6) == "60m00s"


def test_outside_a_terminal_a_line_is_printed_every_interval_even_when_nothing_finishes() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with StageProgress("generate m", 4, unit="answers", console=console, interval=0.05) as progress:
        time.sleep(0.18)  # nothing finished: the log still hears from the stage
        progress.advance(3, note="half way")
        time.sleep(0.12)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 4, lines
    assert lines[0].startswith("generate m: 0/4 answers (0%)")
    assert lines[-1].startswith("generate m: 3/4 answers (75%)") and lines[-1].endswith("· half way")


def test_a_stage_that_fails_says_so_in_its_last_line() -> None:
    out = io.StringIO()
    try:
        with StageProgress("judge", 2, console=Console(file=out, force_terminal=False), interval=60) as progress:
            progress.advance()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert out.getvalue().strip().endswith("(stopped)")


def test_in_a_terminal_it_is_a_bar_and_prints_no_lines() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with StageProgress("generate m", 2, console=console, interval=0.01) as progress:
        progress.advance(2)
        time.sleep(0.05)
    assert "2/2" in out.getvalue() and "elapsed" not in out.getvalue()
