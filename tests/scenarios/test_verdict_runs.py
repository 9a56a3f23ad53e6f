"""The verdict matrix, a run's life: pins refuse runs without a verdict, resume refuses changed
inputs and finishes what it can, scores land with their answer or not at all, an unwritable report
is no verdict.
"""

from __future__ import annotations

import sqlite3

import pytest

from support.scenarios import (
    LORA,
    PROMPT,
    TICKET,
    Project,
    answer,
    gate,
    main_pin,
    ticket_suite,
    tickets,
)


def test_pin_refuses_a_run_without_a_verdict(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    ticket_suite(project, 5)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.5)], [{"error": "down"}])
    code, results = project.run()
    assert code == 2
    assert (
        main_pin(project, results["run"]["id"]) == 2
        and "ended with no verdict" in capsys.readouterr().err
    )
    assert main_pin(project, results["run"]["id"], "--force") == 0
    assert "warning: pinning" in capsys.readouterr().err


def test_resume_refuses_changed_inputs(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    ticket_suite(project, 5)
    project.config(
        [PROMPT, LORA],
        [gate("json_valid", min=0.5)],
        [{"model": "lora", "error": "down"}, answer(TICKET)],
    )
    code, results = project.run()
    assert code == 2
    run_id = results["run"]["id"]
    cases = tickets(5)
    cases[0]["prompt"] = "Ticket 00: edited between attempts"
    project.suite("tickets", ["json_valid", {"type": "json_fields", "name": "exact_fields"}], cases)
    assert project.run("--resume", run_id)[0] == 2
    err = capsys.readouterr().err
    assert "cannot be resumed" in err and "suite 'tickets'" in err


def test_resume_refuses_a_changed_adapter(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    ticket_suite(project, 5)
    project.config(
        [PROMPT, LORA],
        [gate("json_valid", min=0.5)],
        [{"model": "lora", "error": "down"}, answer(TICKET)],
    )
    code, results = project.run()
    (project.root / "adapter" / "adapter_model.safetensors").write_bytes(b"retrained")
    assert project.run("--resume", results["run"]["id"])[0] == 2
    assert "adapter 'lora'" in capsys.readouterr().err


def test_resume_finishes_a_run_and_redoes_answers_without_scores(project: Project) -> None:
    ticket_suite(project, 5)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.5)], [answer(TICKET)])
    code, results = project.run()
    assert code == 0
    run_id = results["run"]["id"]
    with sqlite3.connect(project.store) as db:  # as a crash (or an older harness's crash) left it:
        # lora's last answers never stored, and one of bare's answers stored without its scores
        db.execute(
            "DELETE FROM responses WHERE run_id = ? AND candidate = 'lora' AND case_id > 't02'",
            (run_id,),
        )
        db.execute(
            "DELETE FROM scores WHERE run_id = ? AND candidate = 'lora' AND case_id > 't02'",
            (run_id,),
        )
        db.execute(
            "DELETE FROM scores WHERE run_id = ? AND candidate = 'bare' AND case_id = 't00'",
            (run_id,),
        )
        db.execute("UPDATE runs SET status = 'failed' WHERE run_id = ?", (run_id,))
    code, results = project.run("--resume", run_id)
    assert code == 0, results["verdict"]["reason"]
    assert len(results["cases"]) == 10 and results["run"]["status"] == "finished"
    assert all(r["metrics"] == {"json_valid": 1.0, "exact_fields": 1.0} for r in results["cases"])


def test_scores_land_with_their_answer_or_not_at_all(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while an answer is written leaves neither the answer nor part of its scores."""
    from harness.store.store import Store

    ticket_suite(project, 3)
    project.config([PROMPT], [gate("json_valid", candidate="bare", min=0.5)], [answer(TICKET)])
    real = Store.put_score
    calls = {"n": 0}

    def crash_on_second(self: Store, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "put_score", crash_on_second)
    assert project.run()[0] == 130
    with sqlite3.connect(project.store) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone() == (0,)


def test_a_report_that_cannot_be_written_is_no_verdict_and_cannot_be_pinned(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Gates that pass, then summary.md cannot be written (a folder stands in its place): exit 2,
    the run failed with the reason and no verdict, the report files already renamed into place taken
    back, pin refused.
    """
    ticket_suite(project, 5)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.5)], [answer(TICKET)])
    monkeypatch.setattr("harness.pipeline.new_run_id", lambda name: "planted-run")
    folder = project.root / "reports" / "planted-run"
    (folder / "summary.md").mkdir(parents=True)
    (folder / "summary.md" / "keep").write_text("a folder is not a file")
    assert project.run() == (2, None)
    with sqlite3.connect(project.store) as db:
        [(status, reason, verdict)] = db.execute(
            "SELECT status, reason, verdict_json FROM runs"
        ).fetchall()
    assert status == "failed" and reason.startswith("IsADirectoryError: ") and verdict is None
    assert sorted(p.name for p in folder.iterdir()) == ["summary.md"]
    capsys.readouterr()
    assert (
        main_pin(project, "planted-run") == 2
        and "run planted-run is failed (IsADirectoryError" in capsys.readouterr().err
    )
