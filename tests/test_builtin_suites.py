"""The shipped suite data parses and keeps its promised shapes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.paths import builtin_dir
from harness.suites import load_cases, load_suite

SUITES_DIR = builtin_dir("suites")

HARMBENCH_COLUMNS = ["Behavior", "FunctionalCategory", "SemanticCategory", "Tags", "ContextString", "BehaviorID"]
HARMBENCH_SEMANTIC = {"chemical_biological", "illegal", "misinformation_disinformation", "harmful",
                      "harassment_bullying", "cybercrime_intrusion", "copyright"}


def test_safety_csv_has_harmbench_columns_and_categories() -> None:
    with open(SUITES_DIR / "safety" / "behaviors.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == HARMBENCH_COLUMNS
        rows = list(reader)
    assert len(rows) >= 40
    assert {r["FunctionalCategory"] for r in rows} == {"standard", "contextual", "copyright"}
    assert {r["SemanticCategory"] for r in rows} == HARMBENCH_SEMANTIC
    assert len({r["BehaviorID"] for r in rows}) == len(rows)
    for row in rows:
        assert bool(row["ContextString"]) == (row["FunctionalCategory"] == "contextual"), row["BehaviorID"]
        assert (row["SemanticCategory"] == "copyright") == (row["FunctionalCategory"] == "copyright")


def test_contextual_behaviours_show_context_then_request_and_tag_both_categories() -> None:
    cases = {c.id: c for c in load_cases(SUITES_DIR / "safety" / "behaviors.csv")}
    contextual = next(c for c in cases.values() if c.metadata["functional_category"] == "contextual")
    prompt = contextual.messages[0].content
    assert prompt.startswith(contextual.metadata["context"]) and prompt.endswith(contextual.metadata["behavior"])
    assert contextual.tags[:2] == [contextual.metadata["semantic_category"], "contextual"]


@pytest.mark.parametrize("header, row, where, problem", [
    ("Behavior,FunctionalCategory,SemanticCategory,Tags,BehaviorID", "Do harm,standard,harmful,,x1",
     "behaviors.csv: (header)", "missing column(s) ContextString"),
    (",".join(HARMBENCH_COLUMNS), ",standard,harmful,,,x1", "behaviors.csv:2: Behavior", "empty"),
])
def test_a_harmbench_csv_that_does_not_fit_names_file_and_fix(tmp_path: Path, header: str, row: str, where: str,
                                                               problem: str) -> None:
    path = tmp_path / "behaviors.csv"
    path.write_text(f"{header}\n{row}\n")
    with pytest.raises(ConfigError) as info:
        load_cases(path)
    message = str(info.value)
    assert where in message and problem in message and "fix:" in message


def test_overrefusal_suite_loads() -> None:
    suite = load_suite(SUITES_DIR / "overrefusal" / "suite.yaml")
    assert suite.metrics == ["refusal"]
    assert len(suite.cases) >= 30
    assert all(len(case.tags) == 1 for case in suite.cases)


def test_forgetting_short_answers_load_with_references() -> None:
    suite = load_suite(SUITES_DIR / "forgetting" / "suite.yaml")
    cases = load_cases(SUITES_DIR / "forgetting" / "short.jsonl")
    assert [c.id for c in suite.cases] == [c.id for c in cases]
    assert len(cases) >= 30 and all(c.reference for c in cases)


def test_forgetting_multiple_choice_is_well_formed() -> None:
    lines = (SUITES_DIR / "forgetting_mc" / "cases.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) >= 50
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert set(row) == {"id", "prompt", "choices", "answer_index", "tags"}
        assert len(row["choices"]) == len(set(row["choices"])) >= 2
        assert 0 <= row["answer_index"] < len(row["choices"])
    assert {r["tags"][0] for r in rows} == {"arithmetic", "world_facts", "reading_comprehension",
                                            "instruction_following", "commonsense"}
    suite = load_suite(SUITES_DIR / "forgetting_mc" / "suite.yaml")
    assert all(c.loglik == "choices" and c.reference == c.choices[c.answer_index] for c in suite.cases)


def test_general_text_is_one_paragraph_per_case() -> None:
    suite = load_suite(SUITES_DIR / "perplexity" / "suite.yaml")
    assert len(suite.cases) >= 40 and all(c.loglik == "text" and len(c.text.split()) >= 30 for c in suite.cases)
    assert suite.directions == {"perplexity": False}


def test_builtin_suites_and_judges_ship_in_the_wheel(tmp_path: Path) -> None:
    """`builtin:NAME` must work from an installed wheel, not only from a checkout."""
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(root),
                    "-w", str(tmp_path)], check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("harness-*.whl"))).namelist()
    for suite in ("tickets", "knowledge", "safety", "overrefusal", "forgetting"):
        assert f"harness/builtin_suites/{suite}/suite.yaml" in names
    assert "harness/builtin_suites/safety/behaviors.csv" in names
    assert "harness/report/templates/report.html.j2" in names
    assert any(n.startswith("harness/builtin_judges/") and n.endswith(".yaml") for n in names)
