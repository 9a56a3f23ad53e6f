"""`harness check CONFIG`: everything the plan validates, every problem at once (not only the
first), no model started; exit 0 or 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from harness.cli import main


def write(folder: Path, config: dict, suites: dict[str, dict]) -> Path:
    for name, spec in suites.items():
        spec = dict(spec)
        (folder / name).mkdir()
        (folder / name / "cases.jsonl").write_text(
            "".join(json.dumps(c) + "\n" for c in spec.pop("cases"))
        )
        (folder / name / "suite.yaml").write_text(
            yaml.safe_dump({"name": name, "cases": "cases.jsonl", **spec})
        )
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


QA = {
    "scorers": ["contains"],
    "cases": [{"id": "a", "prompt": "Capital of France?", "reference": "Paris"}],
}


def test_a_config_with_many_problems_lists_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "name": "broken",
        "candidates": [
            {"name": "bare", "kind": "prompt"},
            {"name": "tuned", "kind": "lora", "adapter": "no-such-adapter"},
            {"name": "rag", "kind": "rag", "retrieval": {"documents": "no-such-docs"}},
            {"name": "other", "kind": "prompt", "model": "./no-such-model"},
        ],
        "suites": ["qa", "missing-suite", "bad"],
        "gates": [
            {"candidate": "tuned", "suite": "qa", "metric": "no_such_metric", "min": 0.5},
            {"candidate": "rag", "suite": "qa", "metric": "answer", "min": 0.5},
        ],
    }
    bad = {
        "scorers": ["contains"],
        "cases": [{"id": "x", "prompt": "q"}],
    }  # contains needs a reference
    path = write(tmp_path, config, {"qa": QA, "bad": bad})
    capsys.readouterr()
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "problems in" in err
    for expected in (
        "missing-suite",
        "cases.jsonl:1",
        "no-such-model",
        "has no metric 'no_such_metric'",
        "no-such-adapter",
        "no-such-docs",
    ):
        assert expected in err, f"{expected!r} not reported:\n{err}"
    assert err.count("error: ") >= 6


def test_every_pydantic_problem_of_the_config_file_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "name": "typos",
        "modle": "x",
        "candidates": [{"name": "bare", "kind": "prompt", "sytem": "hi"}],
        "suites": ["qa"],
        "gates": [{"candidate": "bare", "suite": "qa", "metric": "contains", "min": 2}],
    }
    path = write(tmp_path, config, {"qa": QA})
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "config.yaml:2: modle" in err
        and "sytem" in err
        and "error: " in err
        and err.count("error: ") >= 2
    )


def test_a_sound_config_is_ok_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "name": "fine",
        "candidates": [{"name": "bare", "kind": "prompt"}, {"name": "b2", "kind": "prompt"}],
        "suites": ["qa", "builtin:release_notes"],
        "gates": [{"candidate": "b2", "suite": "qa", "metric": "contains", "max_drop": 0.1}],
    }
    path = write(tmp_path, config, {"qa": QA})
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
    assert "ok: " in capsys.readouterr().out and not list(tmp_path.glob("reports"))


# --- a config pydantic rejects: what can still be validated around the broken part is, every problem listed -----

JUDGED = {
    "scorers": [{"type": "judge", "rubric": "no-such-rubric.yaml"}],
    "cases": [{"id": "a", "prompt": "Capital of France?", "reference": "Paris"}],
}


def checked(
    folder: Path,
    text: str,
    capsys: pytest.CaptureFixture[str],
    command: str = "check",
    suites: dict[str, dict] | None = None,
) -> tuple[Path, list[str]]:
    """The config written as `text` (its lines are the ones the test names), the CLI's exit 2, and
    each problem it listed (the text after `error: `); the count it says is the number listed."""
    write(folder, {}, {"qa": QA, **(suites or {})})
    path = folder / "config.yaml"
    path.write_text(text)
    capsys.readouterr()
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "run with --debug" not in err, (
        err
    )  # a problem line, never a crash
    problems = err.split("error: ")[1:]
    assert f"{len(problems)} problem{'s' * (len(problems) > 1)} in {path}:" in err, err
    return path, problems


def at(path: Path, text: str, fragment: str, key: str) -> str:
    """How the problem at the one line of `text` holding `fragment`, under `key`, starts."""
    [line] = [i for i, row in enumerate(text.splitlines(), start=1) if fragment in row]
    return f"{path}:{line}: {key}: "


def assert_listed(problems: list[str], expected: list[tuple[str, str]]) -> None:
    """Exactly these problems (how each starts: file:line and key; what it says), in file order,
    each with a fix."""
    assert len(problems) == len(expected), "\n".join(problems)
    for problem, (start, says) in zip(problems, expected):
        assert problem.startswith(start), f"{start!r}:\n{problem}"
        assert says in problem and "\n  fix: " in problem, problem


ISSUE = """\
name: t
candidates:
  - {name: bare, kind: prompt}
  - {name: tuned, kind: lorra}
suites: [qa, missing-suite]
gates:
  - {candidate: ghost, suite: qa, metric: contains, min: 0.5}
  - {candidate: tuned, suite: qa, metric: contains, min: 0.5}
"""


@pytest.mark.parametrize("command", ["check", "compare"])
def test_a_schema_error_hides_no_other_problem(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    """Issue 22, item 2: an unknown kind, a suite path that does not exist and a gate on a candidate
    the config lacks are three problems; the gate on the candidate whose kind is misspelt is not a
    fourth. A run refuses with the same list, before any store is opened."""
    monkeypatch.chdir(tmp_path)
    path, problems = checked(tmp_path, ISSUE, capsys, command)
    assert_listed(
        problems,
        [
            (
                at(path, ISSUE, "lorra", "candidates[1].kind"),
                "expected tags: 'endpoint', 'lora', 'prompt'",
            ),
            (at(path, ISSUE, "missing-suite", "suites[1]"), "suite 'missing-suite' not found"),
            (at(path, ISSUE, "ghost", "gates[0].candidate"), "unknown candidate 'ghost'"),
        ],
    )
    assert not (tmp_path / "reports").exists()


def test_a_gate_schema_error_beside_a_missing_rubric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rubric's problem is the suite file's, listed at the suite's place in the config."""
    text = """\
name: t
candidates: [{name: bare, kind: prompt}]
suites: [qa, judged]
gates:
  - {candidate: bare, suite: qa, metric: contains, min: high}
  - {candidate: bare, suite: judged, metric: correctness, min: 3}
"""
    path, problems = checked(tmp_path, text, capsys, suites={"judged": JUDGED})
    assert_listed(
        problems,
        [
            (
                f"{tmp_path / 'judged' / 'suite.yaml'}:4: scorers[0]: ",
                "rubric 'no-such-rubric.yaml' not found",
            ),
            (at(path, text, "min: high", "gates[0].min"), "valid number"),
        ],
    )


def test_a_bad_model_alias_beside_a_bad_stats_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = """\
name: t
model: smollm-typo
candidates: [{name: bare, kind: prompt}, {name: b2, kind: prompt, model: ./no-such-folder}]
suites: [qa]
gates: [{candidate: b2, suite: qa, metric: contains, max_drop: 0.1}]
stats: {alpha: 2}
"""
    path, problems = checked(tmp_path, text, capsys)
    assert_listed(
        problems,
        [
            (
                at(path, text, "model: smollm-typo", "model"),
                "model 'smollm-typo' is neither a known alias",
            ),
            (
                at(path, text, "no-such-folder", "candidates[1].model"),
                "model './no-such-folder' is neither",
            ),
            (at(path, text, "alpha: 2", "stats.alpha"), "less than 1"),
        ],
    )


def test_two_bad_candidates_hide_neither_the_others_nor_the_gates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = """\
name: t
candidates:
  - {name: a, kind: prompt, sytem: hi}
  - {name: b, kind: lora}
  - {name: c, kind: prompt, model: ./no-such-folder}
  - {name: d, kind: rag, retrieval: {documents: no-such-docs}}
baseline: d
suites: [qa]
gates:
  - {candidate: a, suite: qa, metric: contains, min: 0.5}
  - {candidate: b, suite: qa, metric: contains, max_drop: 0.1}
  - {candidate: d, suite: qa, metric: no_such_metric, min: 0.5}
  - {candidate: c, suite: nowhere, metric: contains, min: 0.5}
  - {candidate: d, suite: qa, metric: contains, max_drop: 0.1}
"""
    path, problems = checked(tmp_path, text, capsys)
    assert_listed(
        problems,
        [
            (at(path, text, "sytem", "candidates[0].sytem"), "Extra inputs are not permitted"),
            (at(path, text, "kind: lora", "candidates[1]"), "exactly one of `adapter:`"),
            (at(path, text, "./no-such-folder", "candidates[2].model"), "neither a known alias"),
            (at(path, text, "no-such-docs", "candidates[3].retrieval.documents"), "does not exist"),
            (
                at(path, text, "no_such_metric", "gates[2].metric"),
                "suite 'qa' has no metric 'no_such_metric'",
            ),
            (at(path, text, "nowhere", "gates[3].suite"), "unknown suite 'nowhere'"),
            (
                at(path, text, "candidate: d, suite: qa, metric: contains", "gates[4]"),
                "compare 'd' with itself",
            ),
        ],
    )


def test_a_gate_on_an_unknown_candidate_is_a_problem_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the rest of the config valid, the plan's gate checks looked the candidate up and stopped
    (StopIteration) instead of listing the problem."""
    text = ISSUE.replace("  - {name: tuned, kind: lorra}\n", "").replace("qa, missing-suite", "qa")
    text = text.replace("candidate: tuned", "candidate: bare")
    path, problems = checked(tmp_path, text, capsys)
    assert_listed(
        problems, [(at(path, text, "ghost", "gates[0].candidate"), "unknown candidate 'ghost'")]
    )


HOSTILE = [  # (what follows `name:` in a config, a key that one of its problems names)
    (
        (
            "candidates: 5\nsuites: [qa]\ngates: [{candidate: bare, suite: qa, metric: contains,"
            " min: 0.5}]\n"
        ),
        "candidates",
    ),
    (
        (
            "candidates: [5, x, null, {kind: prompt}]\nsuites: [qa]\n"
            "gates: [{candidate: x, suite: qa, metric: contains, max_drop: 0.1}]\n"
        ),
        "candidates[3].name",
    ),
    (
        (
            "candidates: [{name: bare, kind: prompt}]\nsuites: 5\n"
            "gates: [{candidate: bare, suite: qa, metric: contains, min: 0.5}]\n"
        ),
        "suites",
    ),
    (
        (
            "candidates: [{name: bare, kind: nope}]\nsuites: [5, {suite: qa, candidates:"
            " [ghost]}]\ngates: [{candidate: bare, suite: qa, metric: contains, max_drop: 0.1}]\n"
        ),
        "suites[1].candidates",
    ),
    (
        (
            "candidates: [{name: bare, kind: prompt}, {name: b2, kind: prompt}]\nsuites:"
            " [qa]\ngates: 5\nbaseline: [x]\ndrift: 5\nreport: 5\njudge: 5\noutput_dir:"
            " [1]\nengine: 5\nmodel: 5\n"
        ),
        "output_dir",
    ),
    (
        (
            "candidates: [{name: bare}, {name: bare, kind: prompt}, {name: bare, kind:"
            " prompt}]\nsuites: [{suite: judged, candidates: [bare]}]\ngates: [{candidate: bare,"
            " suite: judged, metric: x, min: 0}]\nbaseline: nobody\n"
        ),
        "candidates[2].name",
    ),
    (
        (
            "candidates: []\nsuites: []\ngates: [{candidate: bare, suite: qa, metric: contains,"
            " min: 0.5}]\n"
        ),
        "suites",
    ),
    (
        (
            "candidates: [{kind: prompt, name: a}]\nsuites: [qa]\ngates: [5, [1], {candidate: a}]\n"
            "judge: {model: ./no-such-judge}\n"
        ),
        "gates[2].suite",
    ),
]


@pytest.mark.parametrize(
    ("body", "key"),
    HOSTILE,
    ids=[
        "candidates-not-a-list",
        "candidate-entries-not-mappings",
        "suites-not-a-list",
        "suite-entries-odd",
        "every-section-odd",
        "repeated-names",
        "empty-lists",
        "gate-entries-odd",
    ],
)
def test_hostile_shapes_around_a_schema_error_are_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, key: str
) -> None:
    """Each a problem at its file:line and key with a fix, none twice, none a crash: no entry is
    assumed to be a mapping, no list a list, no name to be there."""
    path, problems = checked(tmp_path, "name: t\n" + body, capsys, suites={"judged": JUDGED})
    assert all(re.match(r"\S+:\d+: \S+: ", p) and "\n  fix: " in p for p in problems), "\n".join(
        problems
    )
    assert any(p.startswith(f"{path}:") and f": {key}: " in p.split("\n")[0] for p in problems), (
        "\n".join(problems)
    )
    assert len(problems) == len(set(problems)), "\n".join(problems)
