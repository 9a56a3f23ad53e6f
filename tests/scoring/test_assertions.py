"""Golden assertions on fixed strings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.scoring.assertions import parse_json
from harness.scoring.registry import ScoreInput, build_scorer


def score(
    raw: dict | str, output: str, reference: str | None = None, suite_dir: Path = Path(".")
) -> tuple[float, bool | None, str]:
    spec = build_scorer(raw, suite_dir / "suite.yaml", 1, "scorers[0]")
    result = spec(ScoreInput(output=output, reference=reference))
    return result.value, result.passed, result.detail


@pytest.mark.parametrize(
    ("raw", "output", "reference", "passed"),
    [
        ({"type": "equals"}, "  Paris \n", "Paris", True),
        ({"type": "equals"}, "paris", "Paris", False),
        ({"type": "equals", "ignore_case": True}, "paris", "Paris", True),
        ({"type": "equals", "strip": False}, "Paris ", "Paris", False),
        ({"type": "equals", "value": "42"}, "42", "ignored", True),
        ({"type": "contains", "value": "refund"}, "We will refund you.", None, True),
        ({"type": "contains", "value": "Refund"}, "We will refund you.", None, False),
        (
            {"type": "contains", "value": "Refund", "ignore_case": True},
            "We will refund you.",
            None,
            True,
        ),
        ({"type": "contains"}, "the answer is 7.", "7", True),
        ({"type": "regex", "pattern": r"^\d{3}-\d{4}$"}, "555-1234", None, True),
        ({"type": "regex", "pattern": r"^\d{3}-\d{4}$"}, "call 555-1234", None, False),
        ({"type": "regex", "pattern": "yes", "ignore_case": True}, "YES", None, True),
        ("json_valid", '{"a": 1}', None, True),
        ("json_valid", '```json\n{"a": 1}\n```', None, True),
        ({"type": "json_valid", "strip_fences": False}, '```json\n{"a": 1}\n```', None, False),
        ("json_valid", '{"a": 1', None, False),
        ("json_valid", 'Sure! {"a": 1}', None, False),
        (
            {"type": "json_fields", "fields": ["category"]},
            '{"category": "billing", "priority": "low"}',
            '{"category": "billing", "priority": "high"}',
            True,
        ),
        (
            {"type": "json_fields"},
            '{"category": "billing", "priority": "low"}',
            '{"category": "billing", "priority": "high"}',
            False,
        ),
        (
            {"type": "json_fields"},
            '{"priority": "high", "category": "billing"}',
            '{"category": "billing", "priority": "high"}',
            True,
        ),
        ({"type": "json_fields", "fields": ["missing"]}, '{"a": 1}', '{"a": 1}', True),
        ({"type": "json_fields", "fields": ["a"]}, "[1, 2]", '{"a": 1}', False),
        ({"type": "json_fields"}, '{"a": 1}', "not json", False),
    ],
)
def test_assertion(raw: dict | str, output: str, reference: str | None, passed: bool) -> None:
    value, ok, detail = score(raw, output, reference)
    assert ok is passed
    assert value == (1.0 if passed else 0.0)
    assert (detail == "") is passed


SCHEMA = {
    "type": "object",
    "properties": {"priority": {"enum": ["low", "high"]}},
    "required": ["priority"],
}


def test_json_schema_inline() -> None:
    assert score({"type": "json_schema", "schema": SCHEMA}, '{"priority": "low"}')[1] is True
    value, ok, detail = score({"type": "json_schema", "schema": SCHEMA}, '{"priority": "urgent"}')
    assert not ok and "priority" in detail and "urgent" in detail
    assert "not JSON" in score({"type": "json_schema", "schema": SCHEMA}, "nope")[2]


def test_json_schema_file(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    raw = {"type": "json_schema", "schema_file": "s.json"}
    assert score(raw, '{"priority": "high"}', suite_dir=tmp_path)[1] is True
    assert score(raw, "{}", suite_dir=tmp_path)[1] is False


def test_metric_name_override() -> None:
    spec = build_scorer(
        {"type": "json_fields", "name": "category_match", "fields": ["category"]},
        Path("s.yaml"),
        1,
        "k",
    )
    assert spec.metric == "category_match" and spec.type == "json_fields"


def test_parse_json_reports_position() -> None:
    value, why = parse_json('{"a": }')
    assert value is None and "line 1 column 7" in why


def test_a_case_without_a_reference_is_an_error_not_a_zero() -> None:
    """The suite loader rejects such cases first; a scorer that still meets one raises."""
    from harness.core.errors import HarnessError

    spec = build_scorer({"type": "equals"}, Path("suite.yaml"), 1, "scorers[0]")
    with pytest.raises(HarnessError, match="no `reference`"):
        spec(ScoreInput(output="x", reference=None))
