"""Compare with any earlier run: `harness compare CONFIG --against RUN` (the stored run's scores as
the baseline side of relative gates, each candidate against itself there) and `harness diff RUN_A
RUN_B`."""

from __future__ import annotations

import pytest

from harness.cli import main
from support.scenarios import LORA, PROMPT, TICKET, Project, answer, tickets

RULE = {"candidate": "lora", "suite": "tickets", "metric": "json_valid", "max_drop": 0.1}


def tickets_project(project: Project, lora_answer: str, n: int = 20) -> None:
    project.suite(
        "tickets", ["json_valid", {"type": "json_fields", "name": "exact_fields"}], tickets(n)
    )
    project.config(
        [PROMPT, LORA], [RULE], [answer(lora_answer, model="lora"), answer("no json here")]
    )


def test_against_an_earlier_run_compares_each_candidate_with_itself_there(project: Project) -> None:
    tickets_project(project, TICKET)
    code, first = project.run()
    assert code == 0  # against the prompt-only baseline: no drop
    run_id = first["run"]["id"]
    code, same = project.run("--against", run_id)
    assert code == 0 and same["run"]["against"] == run_id and same["run"]["kind"] == "compare"
    [gate] = same["verdict"]["gates"]
    assert gate["baseline"] == "lora (pinned run)" and gate["delta"] == 0.0
    assert {c["baseline"] for c in same["comparisons"]} == {"bare (pinned)", "lora (pinned)"}

    tickets_project(project, "Sure! The category is billing.")  # the new fine-tune lost the format
    code, worse = project.run("--against", run_id, "--no-cache")
    assert code == 1 and worse["verdict"]["gates"][0]["delta"] == -1.0


def test_against_a_run_of_other_suites_or_none_is_a_clear_error(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    tickets_project(project, TICKET)
    _, first = project.run()
    tickets_project(project, TICKET, n=22)  # two more cases: not the same suite any more
    capsys.readouterr()
    code, _ = project.run("--against", first["run"]["id"])
    err = capsys.readouterr().err
    assert (
        code == 2
        and "suite 'tickets' changed since run" in err
        and "fix: compare against a run of the same" in err
    )
    code, _ = project.run("--against", "no-such-run")
    assert code == 2 and "no run or pin named 'no-such-run'" in capsys.readouterr().err


def test_a_run_with_no_verdict_is_a_baseline_only_once_pinned_with_force(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one rule `pin` and `--against` share: an ERROR run's scores are partial, so naming it is
    refused; pinned with --force (which says so) it is taken, and the next run is compared with it.
    """
    project.suite("tickets", ["json_valid"], tickets(4))
    project.config([PROMPT, LORA], [RULE], [answer(TICKET, model="lora"), {"error": "down"}])
    code, first = project.run()
    assert code == 2 and first is not None and first["verdict"]["decision"] == "error"
    run_id = first["run"]["id"]
    capsys.readouterr()
    assert project.run("--against", run_id)[0] == 2
    assert (
        f"run {run_id} is finished with no verdict (ERROR): its scores are partial"
        in capsys.readouterr().err
    )
    store = ["--store", str(project.store)]
    assert (
        main(["pin", run_id, "--as", "last", *store]) == 2
        and "ended with no verdict" in capsys.readouterr().err
    )
    assert main(["pin", run_id, "--as", "last", "--force", *store]) == 0
    assert f"warning: pinning {run_id}, whose verdict was ERROR" in capsys.readouterr().err
    _, second = project.run("--against", "last")
    assert second is not None and second["run"]["against"] == run_id
    assert "its scores are partial" not in capsys.readouterr().err


def test_diff_prints_deltas_with_intervals_and_writes_the_html(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    tickets_project(project, TICKET)
    _, first = project.run()
    tickets_project(project, "Sure! The category is billing.")
    _, second = project.run("--no-cache")
    capsys.readouterr()
    out = project.root / "diff.html"
    code = main(
        [
            "diff",
            first["run"]["id"],
            second["run"]["id"],
            "--store",
            str(project.store),
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    lora_json = next(
        line for line in printed.splitlines() if "lora" in line and "json_valid" in line
    )
    assert "-1.000" in lora_json and "worse" in lora_json and "mcnemar" in lora_json
    html = out.read_text()
    assert "Candidates × suites" in html and "json_valid" in html and "Δ -1.000" in html


def test_diff_leaves_out_a_changed_suite_and_refuses_when_nothing_is_shared(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    tickets_project(project, TICKET)
    _, first = project.run()
    tickets_project(project, TICKET, n=22)
    _, second = project.run("--no-cache")
    code = main(["diff", first["run"]["id"], second["run"]["id"], "--store", str(project.store)])
    assert code == 2 and "share no suite with the same content" in capsys.readouterr().err
