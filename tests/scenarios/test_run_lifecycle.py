"""A run's life in the store: `finished` only once its verdict and every report file are written,
each file whole; anything that stops it before (an exception in the gate or a report writer, a
SIGTERM, a file that cannot be written) ends it `failed` or `interrupted` with the reason, takes
back the report files, and `harness pin` refuses it. Faults are injected where the code cannot be
driven there from the outside: a writer that raises, a signal sent while a file is written."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

import pytest

from harness.cli import main
from support.scenarios import LORA, PROMPT, TICKET, Project, answer, tickets

REPORTS = ("results.json", "report.html", "junit.xml", "summary.md")


def shipping(project: Project, **extra: Any) -> None:
    """Five tickets the lora candidate answers exactly: a SHIP, unless something stops the run."""
    project.suite(
        "tickets", ["json_valid", {"type": "json_fields", "name": "exact_fields"}], tickets(5)
    )
    project.config(
        [PROMPT, LORA],
        [{"candidate": "lora", "suite": "tickets", "metric": "json_valid", "min": 0.5}],
        [answer(TICKET)],
        **extra,
    )


def stored(project: Project) -> dict[str, Any]:
    """The one run in the project's store: status, reason, verdict (as read by a second connection)."""
    with sqlite3.connect(project.store) as db:
        db.row_factory = sqlite3.Row
        [row] = db.execute("SELECT * FROM runs").fetchall()
    return {
        "run_id": row["run_id"],
        "status": row["status"],
        "verdict": row["verdict_json"],
        "reason": row["reason"] if "reason" in row.keys() else None,
    }


def run_folder(project: Project, run_id: str) -> list[str]:
    folder = project.root / "reports" / run_id
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def pin(project: Project, run_id: str) -> int:
    return main(["pin", run_id, "--as", "prod", "--store", str(project.store)])


def assert_whole(folder: Path) -> None:
    """Every report file there, each parsing as what it is, and no temporary file beside them."""
    assert sorted(p.name for p in folder.iterdir() if p.name in REPORTS) == sorted(REPORTS)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    json.loads((folder / "results.json").read_text())
    ET.parse(folder / "junit.xml")
    assert (folder / "report.html").read_text().rstrip().endswith("</html>")


def raising(error: BaseException) -> Callable[..., str]:
    """A stand-in for a stage's function that raises `error` whatever it is given."""

    def writer(*args: object, **kwargs: object) -> str:
        raise error

    return writer


@pytest.mark.parametrize(
    "where",
    ["harness.report.junit_xml", "harness.pipeline.decide"],
    ids=["a report writer", "the gate (once: the run stayed running)"],
)
def test_a_crash_fails_the_run_with_its_reason_and_pin_refuses_it(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    """numpy's error for `seed: -5` in the bootstrap, which once left a run `finished` / ship with
    an empty run folder (a report writer) or `running` for ever (the gate); a config error now, the
    fault is planted.
    """
    shipping(project)
    monkeypatch.setattr(where, raising(ValueError("expected non-negative integer")))
    assert project.run() == (2, None)
    run = stored(project)
    assert run["status"] == "failed" and run["verdict"] is None
    assert run["reason"] == "ValueError: expected non-negative integer"
    assert run_folder(project, run["run_id"]) == []
    capsys.readouterr()
    assert pin(project, run["run_id"]) == 2
    err = capsys.readouterr().err
    assert f"run {run['run_id']} is failed (ValueError: expected non-negative integer)" in err
    assert f"--resume {run['run_id']}" in err
    assert main(["runs", "--store", str(project.store)]) == 0
    assert "failed: ValueError: expected" in capsys.readouterr().out


def test_a_reason_that_quotes_a_key_is_stored_redacted(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-planted-lifecycle-0123456789"
    monkeypatch.setenv("JUDGE_KEY", key)
    shipping(
        project,
        judge={
            "endpoint": {
                "base_url": "http://127.0.0.1:9/v1",
                "model": "judge",
                "api_key_env": "JUDGE_KEY",
            }
        },
    )
    monkeypatch.setattr(
        "harness.pipeline.decide", raising(ValueError(f"the client said: bad key {key}"))
    )
    assert project.run()[0] == 2
    assert stored(project)["reason"] == "ValueError: the client said: bad key ***"
    assert not [
        p for p in project.store.parent.glob("harness.sqlite*") if key.encode() in p.read_bytes()
    ]


@pytest.mark.parametrize("fsyncs", [1, 3])
def test_a_sigterm_while_the_reports_are_written_interrupts_the_run_and_leaves_no_report(
    project: Project, monkeypatch: pytest.MonkeyPatch, fsyncs: int
) -> None:
    """SIGTERM while the first file is flushed, or the third (after two were renamed into place):
    the run is interrupted, exit 143, and the run folder holds no report, whole or half."""
    shipping(project)
    real, calls = os.fsync, {"n": 0}

    def fsync_then_term(fd: int) -> None:
        real(fd)
        calls["n"] += 1
        if calls["n"] == fsyncs:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(os, "fsync", fsync_then_term)
    assert project.run() == (143, None)
    run = stored(project)
    assert (run["status"], run["reason"], run["verdict"]) == ("interrupted", "Terminated", None)
    assert run_folder(project, run["run_id"]) == []
    assert pin(project, run["run_id"]) == 2


def test_a_sigterm_while_a_report_is_rendered_interrupts_the_run(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.report import summary_md

    shipping(project)

    def render_then_term(results: dict) -> str:
        text = summary_md(results)
        os.kill(os.getpid(), signal.SIGTERM)
        return text

    monkeypatch.setattr("harness.report.summary_md", render_then_term)
    assert project.run() == (143, None)
    run = stored(project)
    assert run["status"] == "interrupted" and run_folder(project, run["run_id"]) == []


def test_a_failed_run_resumed_finishes_with_every_report(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipping(project)
    with monkeypatch.context() as patch:
        patch.setattr("harness.report.render_html", raising(MemoryError()))
        assert project.run()[0] == 2
    run = stored(project)
    assert (run["status"], run["reason"]) == ("failed", "MemoryError")
    code, results = project.run("--resume", run["run_id"])
    assert code == 0 and results["run"]["status"] == "finished"
    assert stored(project)["status"] == "finished" and stored(project)["reason"] is None
    assert_whole(project.root / "reports" / run["run_id"])
    assert pin(project, run["run_id"]) == 0


def test_a_run_left_running_is_refused_with_the_command_that_finishes_it(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """As a `kill -9` leaves a run: `running`, with no reason stored."""
    shipping(project)
    code, results = project.run()
    assert code == 0
    with sqlite3.connect(project.store) as db:
        db.execute("UPDATE runs SET status = 'running', verdict_json = NULL, finished_at = NULL")
    capsys.readouterr()
    assert pin(project, results["run"]["id"]) == 2
    err = capsys.readouterr().err
    assert "is running (stopped without a word" in err
    assert f"harness compare {project.root / 'config.yaml'} --resume {results['run']['id']}" in err


def test_the_files_state_what_the_store_records_and_a_re_render_matches(project: Project) -> None:
    shipping(project)
    code, results = project.run()
    assert code == 0
    run_id = results["run"]["id"]
    with sqlite3.connect(project.store) as db:
        [(status, finished_at)] = db.execute("SELECT status, finished_at FROM runs").fetchall()
    assert (
        (results["run"]["status"], results["run"]["finished_at"])
        == (status, finished_at)
        == ("finished", finished_at)
    )
    folder = project.root / "reports" / run_id
    assert_whole(folder)
    assert f"· {status}</div>" in (folder / "report.html").read_text()
    stable = [
        name for name in REPORTS if name != "report.html"
    ]  # the HTML's CSP nonce is new each time
    before = {name: (folder / name).read_text() for name in stable}
    assert main(["report", run_id, "--store", str(project.store)]) == 0
    assert_whole(folder)
    assert {name: (folder / name).read_text() for name in stable} == before


def test_a_re_render_that_fails_leaves_the_old_files_whole(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipping(project)
    code, results = project.run()
    folder = project.root / "reports" / results["run"]["id"]
    for name in REPORTS:
        (folder / name).write_text(f"the {name} a reader has open")
    monkeypatch.setattr("harness.report.summary_md", raising(ValueError("no")))
    assert main(["report", results["run"]["id"], "--store", str(project.store)]) == 2
    assert {name: (folder / name).read_text() for name in REPORTS} == {
        name: f"the {name} a reader has open" for name in REPORTS
    }
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    assert stored(project)["status"] == "finished"


def test_re_rendering_a_failed_run_says_so(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shipping(project)
    with monkeypatch.context() as patch:
        patch.setattr("harness.pipeline.decide", raising(ValueError("boom")))
        assert project.run()[0] == 2
    run_id = stored(project)["run_id"]
    capsys.readouterr()
    assert main(["report", run_id, "--store", str(project.store)]) == 0
    assert "warning: run" in capsys.readouterr().err
    shown = json.loads((project.root / "reports" / run_id / "results.json").read_text())
    assert shown["run"]["status"] == "failed" and shown["verdict"] is None


def test_a_tracker_that_cannot_log_leaves_the_verdict_standing(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """MLflow logs after the run finished; a store it cannot create is a warning, and the SHIP
    stands."""
    pytest.importorskip("mlflow")
    blocker = project.root / "not-a-folder"
    blocker.write_text("a file where the tracking store would go")
    shipping(project, report={"mlflow": {"tracking_uri": (blocker / "mlruns").as_uri()}})
    code, results = project.run()
    assert code == 0 and stored(project)["status"] == "finished"
    assert "warning: the run was not logged to MLflow" in capsys.readouterr().err
    assert_whole(project.root / "reports" / results["run"]["id"])
