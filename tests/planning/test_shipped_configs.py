"""Every config and example the project ships is valid as shipped."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from harness.planning.config import load_config
from support.paths import REPO

CONFIGS = REPO / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_config_validates(path: Path) -> None:
    loaded = load_config(path)
    assert loaded.config.gates and len(loaded.hash) == 64


def test_drift_example_names_a_pin_and_tolerances() -> None:
    config = load_config(CONFIGS / "drift.yaml").config
    assert config.drift is not None and all(g.max_drop is not None for g in config.gates)
    assert config.candidates[0].kind == "endpoint" and config.candidates[0].api_key_env


def harness_commands(workflow: dict) -> list[list[str]]:
    """Every `.venv/bin/harness ...` a workflow runs, parsed by the real command line (a typo fails
    here)."""
    from harness.cli import build_parser

    runs = [
        s["run"]
        for job in workflow["jobs"].values()
        for s in job["steps"]
        if "harness " in s.get("run", "")
    ]
    commands = [shlex.split(r.split(".venv/bin/harness", 1)[1]) for r in runs]
    for command in commands:
        build_parser().parse_args(command)
    return commands


def assert_the_store_is_shared(workflow: dict) -> None:
    """Every step that runs harness reads HARNESS_STORE from the CI's secrets (a URL with its
    password is never written in the file), and no step caches a SQLite store: a cache entry is
    evicted, taking pins and history.
    """
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "harness " in step.get("run", ""):
                store = {**job.get("env", {}), **step.get("env", {})}.get("HARNESS_STORE", "")
                assert re.fullmatch(r"\$\{\{\s*secrets\.\w+\s*\}\}", store), (step, store)
            if step.get("uses", "").startswith("actions/cache"):
                assert ".sqlite" not in step["with"]["path"], step


def test_the_compare_workflow_gates_every_pull_request_and_keeps_the_report() -> None:
    workflow = yaml.safe_load((CONFIGS / "ci" / "compare-workflow.yml").read_text())
    assert "pull_request" in workflow[True]
    [job] = workflow["jobs"].values()
    assert not any(s.get("continue-on-error") for s in job["steps"])  # exit 1 or 2 fails the job
    commands = harness_commands(workflow)
    assert ["check", "configs/demo.yaml", "--stop-when-settled"] in commands
    assert (
        commands[-1][:2] == ["compare", "configs/demo.yaml"]
        and "--stop-when-settled" in commands[-1]
    )
    upload = next(
        s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")
    )
    assert upload["if"] == "always()" and "report.html" in upload["with"]["path"]
    assert_the_store_is_shared(workflow)
    assert any(
        s.get("uses", "").startswith("actions/cache") for s in job["steps"]
    )  # models, adapters, indexes


def test_schedule_examples() -> None:
    workflow = yaml.safe_load((CONFIGS / "ci" / "drift-workflow.yml").read_text())
    assert harness_commands(workflow) == [["drift", "configs/drift.yaml"]]
    triggers = workflow[True]  # YAML 1.1 (PyYAML) reads the key `on` as the boolean true
    assert triggers["schedule"][0]["cron"] == "0 6 * * *" and "workflow_dispatch" in triggers
    steps = workflow["jobs"]["drift"]["steps"]
    assert any("harness drift configs/drift.yaml" in s.get("run", "") for s in steps)
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in steps)
    assert_the_store_is_shared(workflow)
    cron = [
        line
        for line in (CONFIGS / "drift.crontab").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert (
        len(cron) == 1
        and len(cron[0].split()[:5]) == 5
        and "harness drift configs/drift.yaml" in cron[0]
    )
