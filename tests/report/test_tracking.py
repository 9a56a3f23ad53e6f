"""Experiment trackers, optional: a run logged to MLflow (a local file store) and read back; nothing
without the config block; a clear config error when the extra is missing."""

from __future__ import annotations

import importlib.util

import pytest

from support.scenarios import LORA, PROMPT, TICKET, Project, answer, tickets

mlflow = pytest.importorskip(
    "mlflow", reason="the mlflow extra is part of the test setup (scripts/setup_env.sh)"
)

RULES = [{"candidate": "lora", "suite": "tickets", "metric": "json_valid", "min": 0.9}]


def tracked_project(project: Project, **report: object) -> None:
    project.suite(
        "tickets", ["json_valid", {"type": "json_fields", "name": "exact_fields"}], tickets(6)
    )
    project.config(
        [PROMPT, LORA],
        RULES,
        [answer(TICKET, model="lora"), answer("no json")],
        **({"report": report} if report else {}),
    )


def test_a_run_lands_in_mlflow_with_config_metrics_verdict_and_report(project: Project) -> None:
    uri = (project.root / "mlruns").as_uri()
    tracked_project(project, mlflow={"tracking_uri": uri, "experiment": "gate"})
    code, results = project.run()
    assert code == 0
    client = mlflow.tracking.MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("gate").experiment_id])
    assert run.info.run_name == results["run"]["id"]
    assert (
        run.data.params["config_hash"] == results["run"]["config_hash"]
        and run.data.params["candidates"] == "bare,lora"
    )
    assert (
        run.data.metrics["lora/tickets/json_valid"] == 1.0
        and run.data.metrics["bare/tickets/json_valid"] == 0.0
    )
    assert run.data.metrics["verdict_exit_code"] == 0 and run.data.tags["verdict"] == "ship"
    assert run.data.tags["gate/lora / tickets / json_valid __ 0.9"].startswith("pass: ")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {
        "report/report.html",
        "report/results.json",
        "report/junit.xml",
        "report/summary.md",
    } <= artifacts
    assert "config.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_without_the_block_nothing_is_logged_and_a_missing_extra_is_a_config_error(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tracked_project(project)
    assert project.run()[0] == 0 and not (project.root / "mlruns").exists()
    tracked_project(project, mlflow={"tracking_uri": (project.root / "mlruns").as_uri()})
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    capsys.readouterr()
    assert project.run()[0] == 2
    err = capsys.readouterr().err
    assert "report.mlflow: MLflow is not installed" in err and "harness[mlflow]" in err
