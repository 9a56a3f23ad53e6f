"""Progress in a CI log: plain lines at a steady interval when the console is not a terminal, and no
library's progress bar."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest
from rich.console import Console

from harness.core.models import ModelRef
from harness.core.progress import QUIET_ENV, StageProgress, duration, plain_line


def test_a_plain_line_says_done_total_rate_and_time_left() -> None:
    assert (
        plain_line("generate m", 120, 600, 60.0, "answers")
        == "generate m: 120/600 answers (20%), 1m00s elapsed, 2.00/s, 4m00s left"
    )
    assert (
        plain_line("generate m", 0, 600, 5.0, "answers")
        == "generate m: 0/600 answers (0%), 5s elapsed"
    )
    assert (
        plain_line("training", 15, 15, 159.0, "steps", "loss 0.09")
        == "training: 15/15 steps (100%), 2m39s elapsed, 0.09/s · loss 0.09"
    )
    assert (
        plain_line("starting vLLM", 0, None, 31.0, "", "log: x.log")
        == "starting vLLM: 31s elapsed · log: x.log"
    )
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
    assert lines[-1].startswith("generate m: 3/4 answers (75%)") and lines[-1].endswith(
        "· half way"
    )


def test_a_stage_that_fails_says_so_in_its_last_line() -> None:
    out = io.StringIO()
    try:
        with StageProgress(
            "judge", 2, console=Console(file=out, force_terminal=False), interval=60
        ) as progress:
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


# The libraries' own bars in a log: tqdm's carriage-return redraws, its rate and its bar characters.
BAR_MARKS = ("\r", "it/s", "s/it", "|█", "Loading weights")


def in_a_pty(code: str, env: dict[str, str]) -> str:
    """What `python -c code` prints with a terminal for its stdout and stderr, as a person running
    it sees."""
    main, child = pty.openpty()
    with os.fdopen(main, "rb", buffering=0) as reader:
        done = subprocess.run(
            [sys.executable, "-c", code], stdout=child, stderr=child, env=env, timeout=60
        )
        os.close(child)
        assert done.returncode == 0
        out = b""
        with suppress(OSError):  # the terminal's end reads EIO once everything written was read
            while chunk := reader.read(4096):
                out += chunk
    return out.decode()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the settings the harness makes (a test that ran `main`
    made them)."""
    return {**{k: v for k, v in os.environ.items() if k not in QUIET_ENV and k != "CI"}, **extra}


def test_library_bars_stay_in_a_terminal_and_go_under_ci() -> None:
    code = (
        "import os; from harness.core.progress import quiet_library_bars; quiet_library_bars(); "
        "print(os.environ.get('TQDM_DISABLE'))"
    )
    assert in_a_pty(code, clean_env()).strip() == "None"
    assert in_a_pty(code, clean_env(CI="true")).strip() == "1"


def test_bars_of_libraries_imported_before_are_turned_off_too(tmp_path: Path) -> None:
    """A library user who imported transformers and datasets before calling pipeline.run."""
    code = (
        "import datasets.utils, huggingface_hub.utils, transformers.utils.logging\nfrom"
        " harness.core.progress import quiet_library_bars\nquiet_library_bars()\nfor bar in"
        " (transformers.utils.logging.tqdm, huggingface_hub.utils.tqdm, datasets.utils.tqdm):\n   "
        " list(bar(range(3), desc='Loading weights'))\n"
    )
    log = tmp_path / "log"
    with log.open("w") as out:
        subprocess.run(
            [sys.executable, "-c", code],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            check=True,
            timeout=120,
        )
    assert log.read_text() == ""


SUITE = """\
name: tiny
cases: cases.jsonl
generation: {max_tokens: 2}
scorers: [equals]
"""
CONFIG = """\
name: tiny
engine: {kind: transformers}
candidates: [{name: a, kind: prompt}]
suites: [suite]
gates: [{candidate: a, suite: tiny, metric: equals, min: 0}]
output_dir: reports
"""


@pytest.mark.slow
def test_a_run_logged_to_a_file_carries_no_library_bar(model: ModelRef, tmp_path: Path) -> None:
    """The real model loaded by transformers in a real run, its output redirected as CI does:
    transformers 5's `Loading weights` bar wrote hundreds of carriage-return updates into one line
    here."""
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "suite.yaml").write_text(SUITE)
    (tmp_path / "suite" / "cases.jsonl").write_text(
        json.dumps(
            {"id": "a", "messages": [{"role": "user", "content": "Say yes."}], "reference": "yes"}
        )
        + "\n"
    )
    (tmp_path / "c.yaml").write_text(CONFIG)
    log = tmp_path / "log"
    with log.open("w") as out:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "harness"), "compare", "c.yaml"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            timeout=300,
        )
    text = (
        log.read_bytes().decode()
    )  # as written: read_text would turn each carriage return into a newline
    assert done.returncode == 0, text
    assert (
        "generate smollm2-135m-instruct (a): 1/1 answers" in text
    )  # the harness's own line: the model ran
    assert not [mark for mark in BAR_MARKS if mark in text], text
