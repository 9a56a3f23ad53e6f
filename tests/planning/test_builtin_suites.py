"""The shipped suite data parses and keeps its promised shapes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.core.errors import ConfigError
from harness.core.paths import builtin_dir
from harness.planning.suites import load_cases, load_suite
from support.paths import REPO

SUITES_DIR = builtin_dir("suites")

HARMBENCH_COLUMNS = [
    "Behavior",
    "FunctionalCategory",
    "SemanticCategory",
    "Tags",
    "ContextString",
    "BehaviorID",
]
HARMBENCH_SEMANTIC = {
    "chemical_biological",
    "illegal",
    "misinformation_disinformation",
    "harmful",
    "harassment_bullying",
    "cybercrime_intrusion",
    "copyright",
}


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
        assert bool(row["ContextString"]) == (row["FunctionalCategory"] == "contextual"), row[
            "BehaviorID"
        ]
        assert (row["SemanticCategory"] == "copyright") == (
            row["FunctionalCategory"] == "copyright"
        )


def test_contextual_behaviours_show_context_then_request_and_tag_both_categories() -> None:
    cases = {c.id: c for c in load_cases(SUITES_DIR / "safety" / "behaviors.csv")}
    contextual = next(
        c for c in cases.values() if c.metadata["functional_category"] == "contextual"
    )
    prompt = contextual.messages[0].content
    assert prompt.startswith(contextual.metadata["context"]) and prompt.endswith(
        contextual.metadata["behavior"]
    )
    assert contextual.tags[:2] == [contextual.metadata["semantic_category"], "contextual"]


@pytest.mark.parametrize(
    "header, row, where, problem",
    [
        (
            "Behavior,FunctionalCategory,SemanticCategory,Tags,BehaviorID",
            "Do harm,standard,harmful,,x1",
            "behaviors.csv: (header)",
            "missing column(s) ContextString",
        ),
        (
            ",".join(HARMBENCH_COLUMNS),
            ",standard,harmful,,,x1",
            "behaviors.csv:2: Behavior",
            "empty",
        ),
    ],
)
def test_a_harmbench_csv_that_does_not_fit_names_file_and_fix(
    tmp_path: Path, header: str, row: str, where: str, problem: str
) -> None:
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
    assert {r["tags"][0] for r in rows} == {
        "arithmetic",
        "world_facts",
        "reading_comprehension",
        "instruction_following",
        "commonsense",
    }
    suite = load_suite(SUITES_DIR / "forgetting_mc" / "suite.yaml")
    assert all(
        c.loglik == "choices" and c.reference == c.choices[c.answer_index] for c in suite.cases
    )


def test_general_text_is_one_paragraph_per_case() -> None:
    suite = load_suite(SUITES_DIR / "perplexity" / "suite.yaml")
    assert len(suite.cases) >= 40 and all(
        c.loglik == "text" and len(c.text.split()) >= 30 for c in suite.cases
    )
    assert suite.directions == {"perplexity": False}


ROOT = REPO
WHEEL_CONFIG = """\
name: from-the-wheel
candidates: [{name: bare, kind: prompt}, {name: terse, kind: prompt, system: Be brief.}]
suites: [builtin:tickets, builtin:release_notes, builtin:forgetting_mc]
gates: [{candidate: terse, suite: tickets, metric: json_valid, min: 0.5}]
"""


def build_wheel(folder: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(ROOT),
            "-w",
            str(folder),
        ],
        check=True,
        capture_output=True,
    )
    return next(folder.glob("harness-*.whl"))


def test_builtin_suites_and_judges_ship_in_the_wheel(tmp_path: Path) -> None:
    """`builtin:NAME` must work from an installed wheel, not only from a checkout."""
    names = zipfile.ZipFile(build_wheel(tmp_path)).namelist()
    for suite in (p.name for p in (ROOT / "suites").iterdir() if (p / "suite.yaml").is_file()):
        assert f"harness/builtin_suites/{suite}/suite.yaml" in names
    shipped = {
        f"harness/builtin_suites/{p.relative_to(ROOT / 'suites')}"
        for p in (ROOT / "suites").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    shipped |= {
        f"harness/builtin_judges/{p.relative_to(ROOT / 'judges')}"
        for p in (ROOT / "judges").rglob("*")
        if p.is_file()
    }
    assert shipped <= set(names), sorted(shipped - set(names))[:5]
    assert "harness/report/templates/report.html.j2" in names


def test_a_wheel_in_a_clean_venv_checks_a_config_of_builtin_suites(tmp_path: Path) -> None:
    """Installed from the wheel (not the checkout) into a fresh venv whose only other packages are
    the dependencies, `harness check` finds the built-in suites, rubrics and calibration sets and
    starts nothing.
    """
    wheel = build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    site = next(venv.glob("lib/python*/site-packages"))
    deps = next(
        p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "pydantic").exists()
    )
    (site / "dependencies.pth").write_text(
        f"{deps}\n"
    )  # the dependencies, but not the checkout's editable path
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    (tmp_path / "config.yaml").write_text(WHEEL_CONFIG)
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            (
                "import harness.core.paths as p; "
                "print(p.builtin_dir('suites'), p.builtin_dir('judges'))"
            ),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.split() == [
        str(site / "harness" / "builtin_suites"),
        str(site / "harness" / "builtin_judges"),
    ]
    done = subprocess.run(
        [str(venv / "bin" / "harness"), "check", "config.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ok: config.yaml: 2 candidates, 3 suites" in done.stdout
