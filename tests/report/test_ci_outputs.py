"""CI-native output: under GitHub Actions the summary lands in the job's step summary and each gate
becomes an annotation (::error when it failed, ::notice when it passed), each ungated regression one
too (::warning, or ::error when it blocks); elsewhere nothing extra is printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report.ci import github_annotations
from support.scenarios import LORA, PROMPT, TICKET, Project, answer, tickets, ungated_regression

GATES = [
    {"candidate": "lora", "suite": "tickets", "metric": "json_valid", "min": 0.9},
    {"candidate": "lora", "suite": "tickets", "metric": "exact_fields", "min": 0.9},
]


def run_under_actions(
    project: Project, monkeypatch: pytest.MonkeyPatch, summary: Path | None
) -> int:
    project.suite(
        "tickets", ["json_valid", {"type": "json_fields", "name": "exact_fields"}], tickets(6)
    )
    project.config(
        [PROMPT, LORA], GATES, [answer('{"category": "other"}', model="lora"), answer("no")]
    )
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    if summary is not None:
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    return project.run()[0]


def test_under_github_actions_each_gate_is_an_annotation_and_the_summary_is_appended(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = project.root / "step-summary.md"
    summary.write_text("earlier step\n")
    assert run_under_actions(project, monkeypatch, summary) == 1
    out = capsys.readouterr().out.splitlines()
    notices = [line for line in out if line.startswith("::notice ")]
    errors = [line for line in out if line.startswith("::error ")]
    assert len(notices) == 1 and notices[0].startswith(
        "::notice title=harness gate lora / tickets / json_valid >= "
        "0.9::pass: mean 1.000 over 6 cases"
    )
    assert len(errors) == 1 and errors[0].startswith(
        "::error title=harness gate lora / tickets / exact_fields >= 0.9"
    )
    assert "::FAIL: " in errors[0]
    text = summary.read_text()
    assert (
        text.startswith("earlier step\n")
        and "DO NOT SHIP" in text
        and "| lora / tickets / exact_fields" in text
    )


@pytest.mark.parametrize("policy, level, code", [("warn", "warning", 0), ("fail", "error", 1)])
def test_under_github_actions_each_ungated_regression_is_an_annotation(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    policy: str,
    level: str,
    code: int,
) -> None:
    summary = project.root / "step-summary.md"
    ungated_regression(project, gate_policy={"ungated_regressions": policy})
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert project.run()[0] == code
    out = capsys.readouterr().out.splitlines()
    [line] = [
        line for line in out if line.startswith(f"::{level} title=harness ungated regression")
    ]
    assert line.startswith(
        f"::{level} title=harness ungated regression lora / tickets / exact_fields::lora / "
        "tickets / exact_fields: 1.000 → 0.000, Δ -1.000 ["
    )
    assert [line for line in out if line.startswith("::notice ")]  # the gate itself passed
    assert "1 significant regression no gate covers" in summary.read_text()


def test_outside_github_actions_nothing_extra_is_printed(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    project.suite("tickets", ["json_valid"], tickets(3))
    project.config([PROMPT, LORA], GATES[:1], [answer(TICKET)])
    assert project.run()[0] == 0
    assert "::notice" not in capsys.readouterr().out


def test_annotations_escape_newlines_and_percent_and_say_when_there_is_no_verdict() -> None:
    results = {
        "run": {"name": "demo"},
        "verdict": {
            "decision": "error",
            "reason": "2 of 10 requests failed\nsee the log",
            "gates": [{"rule": "a, b: c", "passed": False, "reason": "100% off\nline two"}],
        },
    }
    lines = github_annotations(results)
    assert lines[0] == "::error title=harness gate a%2C b%3A c::FAIL: 100%25 off%0Aline two"
    assert (
        lines[1] == "::error title=ERROR%3A NO VERDICT demo::2 of 10 requests failed%0Asee the log"
    )
