"""RunOptions.from_cli: each option of a run is the command line's, else the config's, else the
default, merged once before anything starts (the table in harness.planning.options and
docs/commands.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.core.errors import HarnessError
from harness.core.paths import STORE_ENV
from harness.planning.config import SettleConfig
from harness.planning.options import RunOptions
from support.scenarios import PROMPT, Project, answer, tickets


def configured(project: Project, **extra: Any) -> Path:
    """A one-candidate config with `extra` top-level keys (the scenario's own `output_dir: reports`
    unless set)."""
    project.suite("tickets", ["json_valid"], tickets(4))
    path = project.config(
        [PROMPT],
        [{"candidate": "bare", "suite": "tickets", "metric": "json_valid", "min": 0.5}],
        [answer("{}")],
    )
    config = {**yaml.safe_load(path.read_text()), **extra}
    path.write_text(
        yaml.safe_dump({k: v for k, v in config.items() if v is not None}, sort_keys=False)
    )
    return path


def test_out_is_the_flag_else_output_dir_from_the_config_folder_else_reports(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = configured(project, output_dir="runs")
    assert RunOptions.from_cli(path, out=str(tmp_path / "flag")).out == tmp_path / "flag"
    assert RunOptions.from_cli(path).out == project.root / "runs"
    assert RunOptions.from_cli(configured(project, output_dir=None)).out == tmp_path / "reports"


def test_store_is_the_flag_else_the_variable_else_the_config_else_beside_the_run_folders(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)
    path = configured(project, store="configured.sqlite")
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "variable.sqlite"))
    assert (
        RunOptions.from_cli(path, store=str(tmp_path / "flag.sqlite")).store.path
        == tmp_path / "flag.sqlite"
    )
    assert RunOptions.from_cli(path).store.path == tmp_path / "variable.sqlite"
    monkeypatch.delenv(STORE_ENV)
    assert RunOptions.from_cli(path).store.path == project.root / "configured.sqlite"
    assert (
        RunOptions.from_cli(configured(project, store=None)).store.path
        == project.root / "reports" / "harness.sqlite"
    )


def test_against_is_the_flag_else_the_drift_pin_for_drift_else_none(project: Project) -> None:
    drift = configured(project, drift={"baseline": "prod"})
    assert RunOptions.from_cli(drift, against="run-1").against == "run-1"
    assert RunOptions.from_cli(drift, "drift").against == "prod"
    assert (
        RunOptions.from_cli(drift).against is None
    )  # a compare run of a drift config is the run to pin
    plain = configured(project, drift=None)
    assert RunOptions.from_cli(plain).against is None
    with pytest.raises(HarnessError, match="`harness drift` needs a `drift:` block"):
        RunOptions.from_cli(plain, "drift")


def test_stop_when_settled_is_the_flags_over_the_config_else_the_fixed_run(
    project: Project,
) -> None:
    settled = configured(project, stop_when_settled={"wave": 7})
    assert RunOptions.from_cli(settled).stop_when_settled == SettleConfig(wave=7)
    assert RunOptions.from_cli(settled, stop_when_settled=True).stop_when_settled == SettleConfig(
        wave=7
    )
    assert RunOptions.from_cli(settled, fail_fast=True).stop_when_settled == SettleConfig(
        wave=7, fail_fast=True
    )
    fixed = configured(project, stop_when_settled=None)
    assert RunOptions.from_cli(fixed).stop_when_settled is None
    assert RunOptions.from_cli(fixed, stop_when_settled=True).stop_when_settled == SettleConfig()
    assert RunOptions.from_cli(fixed, fail_fast=True).stop_when_settled == SettleConfig(
        fail_fast=True
    )


def test_resume_retrain_and_cache_are_the_flags_else_a_new_run_with_every_cache(
    project: Project,
) -> None:
    path = configured(project)
    default = RunOptions.from_cli(path)
    assert (default.mode, default.resume, default.retrain, default.use_cache) == (
        "compare",
        None,
        False,
        True,
    )
    asked = RunOptions.from_cli(path, resume="r1", retrain=True, use_cache=False)
    assert (asked.resume, asked.retrain, asked.use_cache, asked.config_path) == (
        "r1",
        True,
        False,
        path,
    )
