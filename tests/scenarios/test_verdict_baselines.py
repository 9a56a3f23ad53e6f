"""The verdict matrix, baselines: drift against a pinned run (other cases refused, missing rows no
verdict), and ungated regressions against the baseline or the pinned self, warned or blocking by
policy.
"""

from __future__ import annotations

import pytest

from support.scenarios import (
    LORA,
    TICKET,
    Project,
    answer,
    drift_project,
    gate,
    main_pin,
    ticket_suite,
    ungated_regression,
)


def test_drift_against_a_pinned_run_of_other_cases_is_refused_before_it_runs(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    drift_project(project)
    code, first = project.run()
    assert code == 0
    assert main_pin(project, first["run"]["id"]) == 0
    assert project.run(command="drift")[0] == 0
    ticket_suite(project, 12)  # two new cases the pinned run never answered
    capsys.readouterr()
    code, _ = project.run(command="drift")
    err = capsys.readouterr().err
    assert (
        code == 2
        and "cannot be the baseline: suite 'tickets' changed since run" in err
        and "fix:" in err
    )


def test_drift_against_a_pinned_run_missing_rows_is_no_verdict(project: Project) -> None:
    """A pinned run of the same suites whose rows are missing (its requests failed, pinned with
    --force)."""
    drift_project(project)
    project.config(
        [LORA],
        [gate("json_valid", max_drop=0.1)],
        [answer(TICKET, contains="Ticket 00"), {"error": "down"}],
        drift={"baseline": "prod"},
    )
    code, first = project.run()
    assert code == 2 and main_pin(project, first["run"]["id"], "--force") == 0
    drift_project(project)
    code, results = project.run(command="drift")
    assert (
        code == 2
        and "of 10 rows of lora (pinned run) / tickets / json_valid have no value"
        in results["verdict"]["reason"]
    )


@pytest.mark.parametrize("policy, code", [(None, 0), ("warn", 0), ("fail", 1)])
def test_an_ungated_significant_regression_warns_and_blocks_only_under_the_policy(
    project: Project, capsys: pytest.CaptureFixture[str], policy: str | None, code: int
) -> None:
    ungated_regression(
        project, **({} if policy is None else {"gate_policy": {"ungated_regressions": policy}})
    )
    exit_code, results = project.run()
    out = capsys.readouterr().out
    verdict = results["verdict"]
    [regression] = verdict["ungated_regressions"]
    assert exit_code == code and regression["blocks"] == (policy == "fail")
    assert (regression["candidate"], regression["baseline"], regression["metric"]) == (
        "lora",
        "bare",
        "exact_fields",
    )
    assert regression["test"] == "mcnemar_exact" and regression["p_adjusted"] <= 0.05
    told = "lora / tickets / exact_fields: 1.000 → 0.000, Δ -1.000 ["
    assert "1 significant regression no gate covers" in out and told in out
    if policy == "fail":
        assert verdict["decision"] == "do_not_ship" and told in verdict["reason"]
        assert "DO NOT SHIP: a significant regression no gate covers" in out
    else:
        assert verdict["decision"] == "ship" and "warnings, the verdict stands" in out


def test_drift_warns_of_a_regression_against_the_pinned_self_that_no_gate_covers(
    project: Project,
) -> None:
    """The pinned run answered every field right; now the endpoint gets them all wrong and keeps the
    JSON valid."""
    drift_project(project)
    code, first = project.run()
    assert (
        code == 0
        and first["verdict"]["ungated_regressions"] == []
        and main_pin(project, first["run"]["id"]) == 0
    )
    project.config(
        [LORA],
        [gate("json_valid", max_drop=0.1)],
        [answer('{"category": "shipping"}')],
        drift={"baseline": "prod"},
    )
    code, results = project.run("--no-cache", command="drift")
    [regression] = results["verdict"]["ungated_regressions"]
    assert code == 0 and (regression["baseline"], regression["metric"]) == (
        "lora (pinned)",
        "exact_fields",
    )
    project.config(
        [LORA],
        [gate("json_valid", max_drop=0.1)],
        [answer('{"category": "shipping"}')],
        drift={"baseline": "prod"},
        gate_policy={"ungated_regressions": "fail"},
    )
    code, results = project.run(command="drift")
    assert (
        code == 1 and "lora / tickets / exact_fields: 1.000 → 0.000" in results["verdict"]["reason"]
    )
