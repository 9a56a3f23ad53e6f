"""Bad input exits 2 with one message naming the file, the line, the key path and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main

GOOD = """\
name: t
model: smollm2-135m-instruct
candidates:
  - name: a
    kind: prompt
suites:
  - ../suites/tickets
gates:
  - {candidate: a, suite: tickets, metric: json_valid, min: 0.5}
"""


def run_cli(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["compare", str(config)])
    return code, capsys.readouterr().err


def write(demo_copy: Path, text: str) -> Path:
    path = demo_copy / "configs" / "t.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("kind: prompt", "kind: prompt\n    sytem: hi"),
            [
                ":6",
                "candidates[0].sytem",
                "Extra inputs are not permitted",
                "fix: remove this key",
                "allowed keys: name, system, few_shot",
            ],
        ),
        (GOOD.replace("name: t", "name: t\nseed: many"), [":2", "seed", "valid integer"]),
        (
            GOOD.replace("kind: prompt", "kind: lora-ish"),
            [":5", "candidates[0].kind", "expected tags: 'endpoint', 'lora', 'prompt'"],
        ),
        (
            GOOD.replace("../suites/tickets", "../suites/nope"),
            [":7", "suites[0]", "not found", "fix:"],
        ),
        (
            GOOD.replace("metric: json_valid", "metric: accuracy"),
            [
                ":9",
                "gates[0].metric",
                "no metric 'accuracy'",
                "use one of: json_valid, json_schema",
            ],
        ),
        (
            GOOD.replace("candidate: a,", "candidate: b,"),
            [":9", "gates[0].candidate", "unknown candidate 'b'"],
        ),
        (
            GOOD.replace(
                "gates:\n  - {candidate: a, suite: tickets, metric: json_valid, min: 0.5}\n",
                "gates: []\n",
            ),
            ["gates", "at least 1"],
        ),
        (GOOD.replace(", min: 0.5", ""), ["gates[0]", "a gate needs a bound"]),
        (
            GOOD + "engine: {kind: vllm, max_concurrency: 0}\n",
            [":10", "engine.max_concurrency", "greater than or equal to 1"],
        ),
        ("name: [unclosed\n", ["t.yaml:", "not valid YAML"]),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "unknown-kind",
        "missing-suite",
        "unknown-metric",
        "unknown-candidate",
        "no-gates",
        "no-bound",
        "bad-engine-value",
        "bad-yaml",
    ],
)
def test_config_error(
    demo_copy: Path, capsys: pytest.CaptureFixture[str], text: str, expected: list[str]
) -> None:
    config = write(demo_copy, text)
    code, err = run_cli(config, capsys)
    assert code == 2
    assert str(config) in err
    for fragment in expected:
        assert fragment in err
    assert "Traceback" not in err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(tmp_path / "absent.yaml", capsys)
    assert code == 2 and "absent.yaml" in err and "file not found" in err


def test_debug_shows_traceback(demo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(demo_copy, GOOD.replace("name: t", "name: t\nbogus: 1"))
    assert main(["--debug", "compare", str(config)]) == 2
    assert "Traceback" in capsys.readouterr().err


def _suite(demo_copy: Path, scorers: str, cases: list[str] | None = None) -> Path:
    folder = demo_copy / "suites" / "custom"
    folder.mkdir()
    (folder / "suite.yaml").write_text(f"name: custom\ncases: cases.jsonl\nscorers:\n{scorers}")
    lines = (
        cases if cases is not None else [json.dumps({"id": "1", "prompt": "hi", "reference": "x"})]
    )
    (folder / "cases.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "suite.yaml"


SUITE_CONFIG = GOOD.replace("../suites/tickets", "../suites/custom").replace(
    "suite: tickets", "suite: custom"
)


@pytest.mark.parametrize(
    ("scorers", "cases", "expected"),
    [
        (
            "  - type: fuzzy\n",
            None,
            ["suite.yaml:4", "scorers[0].type", "unknown scorer type 'fuzzy'", "equals"],
        ),
        (
            "  - type: regex\n    pattern: '(['\n",
            None,
            ["suite.yaml:4", "not a valid regular expression"],
        ),
        ("  - type: regex\n", None, ["scorers[0].pattern", "Field required", "fix: add this key"]),
        (
            "  - type: contains\n    vaule: x\n",
            None,
            ["scorers[0].vaule", "remove this key", "allowed keys"],
        ),
        ("  - type: json_schema\n    schema_file: nope.json\n", None, ["schema_file", "not found"]),
        ("  - type: json_schema\n    schema: {type: objekt}\n", None, ["not a valid JSON Schema"]),
        (
            "  - json_valid\n",
            ['{"id": "1", "prompt": "a"}', '{"id": "2", "prompt": '],
            ["cases.jsonl:2", "not valid JSON"],
        ),
        ("  - json_valid\n", ['{"id": "1"}'], ["cases.jsonl:1", "exactly one of `messages`"]),
        (
            "  - json_valid\n",
            ['{"id": "1", "prompt": "a"}', '{"id": "1", "prompt": "b"}'],
            ["cases.jsonl:2", "repeats"],
        ),
        ("  - json_valid\n", [], ["cases.jsonl", "no cases"]),
        (
            "  - json_valid\n  - json_valid\n",
            None,
            ["metric names repeat: json_valid", "distinct `name:`"],
        ),
    ],
    ids=[
        "unknown-scorer",
        "bad-regex",
        "missing-param",
        "unknown-param",
        "missing-schema-file",
        "bad-schema",
        "bad-jsonl-line",
        "case-without-input",
        "duplicate-case-id",
        "empty-cases",
        "duplicate-metric",
    ],
)
def test_suite_error(
    demo_copy: Path,
    capsys: pytest.CaptureFixture[str],
    scorers: str,
    cases: list[str] | None,
    expected: list[str],
) -> None:
    _suite(demo_copy, scorers, cases)
    code, err = run_cli(write(demo_copy, SUITE_CONFIG), capsys)
    assert code == 2
    for fragment in expected:
        assert fragment in err
    assert "Traceback" not in err


def test_unknown_model(demo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(
        write(demo_copy, GOOD.replace("smollm2-135m-instruct", "./no-such-folder")), capsys
    )
    assert code == 2 and "no-such-folder" in err and "config.json" in err
