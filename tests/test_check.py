"""`harness check CONFIG`: everything the plan validates, every problem at once (not only the first), no model
started; exit 0 or 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.cli import main


def write(folder: Path, config: dict, suites: dict[str, dict]) -> Path:
    for name, spec in suites.items():
        spec = dict(spec)
        (folder / name).mkdir()
        (folder / name / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in spec.pop("cases")))
        (folder / name / "suite.yaml").write_text(yaml.safe_dump({"name": name, "cases": "cases.jsonl", **spec}))
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


QA = {"scorers": ["contains"], "cases": [{"id": "a", "prompt": "Capital of France?", "reference": "Paris"}]}


def test_a_config_with_many_problems_lists_them_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = {"name": "broken", "candidates": [
        {"name": "bare", "kind": "prompt"},
        {"name": "tuned", "kind": "lora", "adapter": "no-such-adapter"},
        {"name": "rag", "kind": "rag", "retrieval": {"documents": "no-such-docs"}},
        {"name": "other", "kind": "prompt", "model": "./no-such-model"}],
        "suites": ["qa", "missing-suite", "bad"],
        "gates": [{"candidate": "tuned", "suite": "qa", "metric": "no_such_metric", "min": 0.5},
                  {"candidate": "rag", "suite": "qa", "metric": "answer", "min": 0.5}]}
    bad = {"scorers": ["contains"], "cases": [{"id": "x", "prompt": "q"}]}  # contains needs a reference
    path = write(tmp_path, config, {"qa": QA, "bad": bad})
    capsys.readouterr()
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "problems in" in err
    for expected in ("missing-suite", "cases.jsonl:1", "no-such-model", "has no metric 'no_such_metric'",
                     "no-such-adapter", "no-such-docs"):
        assert expected in err, f"{expected!r} not reported:\n{err}"
    assert err.count("error: ") >= 6


def test_every_pydantic_problem_of_the_config_file_is_listed(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = {"name": "typos", "modle": "x", "candidates": [{"name": "bare", "kind": "prompt", "sytem": "hi"}],
              "suites": ["qa"], "gates": [{"candidate": "bare", "suite": "qa", "metric": "contains", "min": 2}]}
    path = write(tmp_path, config, {"qa": QA})
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "config.yaml:2: modle" in err and "sytem" in err and "error: " in err and err.count("error: ") >= 2


def test_a_sound_config_is_ok_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = {"name": "fine", "candidates": [{"name": "bare", "kind": "prompt"}, {"name": "b2", "kind": "prompt"}],
              "suites": ["qa", "builtin:release_notes"],
              "gates": [{"candidate": "b2", "suite": "qa", "metric": "contains", "max_drop": 0.1}]}
    path = write(tmp_path, config, {"qa": QA})
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
    assert "ok: " in capsys.readouterr().out and not list(tmp_path.glob("reports"))
