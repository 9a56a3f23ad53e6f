"""Judges you can trust: calibration sets (loading and their errors), agreement statistics against
textbook values, G-Eval reading of token probabilities, pairwise position bias, and the gate's
refusal to let an unvalidated judge decide (fast); `harness judge calibrate` on the local model
(slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import spearmanr

from harness.cli import main
from harness.core.errors import ConfigError
from harness.core.models import ModelRef
from harness.judging.agreement import bootstrap_statistic, cohen_kappa, spearman, weighted_kappa
from harness.judging.calibrate import agreement_with_labels
from harness.judging.replies import position_bias
from harness.scoring.calibration import MIN_ITEMS, load_calibration
from harness.scoring.rubrics import Reply, judges_dir, load_rubric
from harness.store.store import Store
from harness.verdict.gate import unvalidated_judge
from support.scenarios import PROMPT, Project, answer, calibrated_rubric

SHIPPED = ["correctness", "groundedness", "helpfulness", "pairwise", "harmbench"]


def shipped(name: str):
    return load_rubric(judges_dir() / f"{name}.yaml")


# --- the shipped sets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_rubric_has_a_calibration_set_of_40_plus_with_every_label(name: str) -> None:
    rubric = shipped(name)
    assert rubric.calibration is not None and len(rubric.calibration.items) >= 40
    labels = {item.label for item in rubric.calibration.items}
    assert labels == set(rubric.options) or labels == {
        int(o) for o in rubric.options if o.isdigit()
    }
    kinds = {item.kind for item in rubric.calibration.items}
    assert (
        len(kinds) >= 3
    )  # clear positives, clear negatives and hard cases (pairwise: clear, tie, hard)


# --- loading errors: file, line, fix ---------------------------------------------------------------------


def items(n: int = MIN_ITEMS, **override: object) -> list[dict]:
    return [
        {
            "id": f"i{i}",
            "question": "q",
            "answer": "a",
            "reference": "r",
            "label": 1 + i % 5,
            **override,
        }
        for i in range(n)
    ]


def write(tmp_path: Path, rows: list[dict] | list[str]) -> Path:
    path = tmp_path / "cal.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


CORRECTNESS = shipped("correctness").rubric


@pytest.mark.parametrize(
    "rows, line, words, fix",
    [
        (items()[:3] + ["{not json"], 4, "not valid JSON", "one JSON object per line"),
        (
            items()[:2] + [{"id": "x", "question": "q", "reference": "r", "label": 3}],
            3,
            "needs `answer`",
            "add the answer",
        ),
        (
            items()[:4]
            + [{"id": "x", "question": "q", "answer": "a", "reference": "r", "label": 9}],
            5,
            "label 9 is not one the rubric gives",
            "use one of 1, 2, 3, 4, 5",
        ),
        (
            items()[:1] + [{"id": "x", "question": "q", "answer": "a", "label": 3}],
            2,
            "has none",
            "add `reference`",
        ),
        (
            items()[:2]
            + [
                {"id": "x", "question": "q", "answer": "a", "reference": "r", "label": 3, "labl": 2}
            ],
            3,
            "Extra inputs",
            "remove it or fix its spelling",
        ),
        (items()[:3] + [items()[0]], 4, "repeats", "unique `id`"),
    ],
)
def test_a_bad_item_names_the_file_line_and_fix(
    tmp_path: Path, rows: list, line: int, words: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_calibration(write(tmp_path, rows), CORRECTNESS.misfit)
    message = str(caught.value)
    assert f"cal.jsonl:{line}" in message and words in message and fix in message, message


def test_too_few_items_or_one_label_only_cannot_calibrate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"3 items; a calibration set needs at least {MIN_ITEMS}"):
        load_calibration(write(tmp_path, items(3)), CORRECTNESS.misfit)
    with pytest.raises(ConfigError, match="every item has the same label"):
        load_calibration(write(tmp_path, items(MIN_ITEMS, label=4)), CORRECTNESS.misfit)


def test_a_rubric_naming_a_missing_set_fails_when_it_loads(tmp_path: Path) -> None:
    (tmp_path / "mine.j2").write_text("{{ criteria }} {{ question }} {{ answer }}")
    (tmp_path / "mine.yaml").write_text(
        "name: mine\nmode: pointwise\nscale: {min: 1, max: 5}\ncriteria: c\n"
        "template: mine.j2\ncalibration: nowhere.jsonl\n"
    )
    with pytest.raises(ConfigError, match="nowhere.jsonl: calibration set not found"):
        load_rubric(tmp_path / "mine.yaml")


# --- agreement statistics against textbook values ----------------------------------------------------------


def test_weighted_kappa_by_hand_and_by_the_moment_identity() -> None:
    # a = 1,2,3 and b = 1,3,3 on a 3-point scale: worked by hand, linear 2/3 and quadratic 4/5.
    assert weighted_kappa([1, 2, 3], [1, 3, 3], [1, 2, 3], "linear") == pytest.approx(2 / 3)
    assert weighted_kappa([1, 2, 3], [1, 3, 3], [1, 2, 3]) == pytest.approx(0.8)
    # quadratic weighted kappa = 2 cov / (var a + var b + (mean a - mean b)^2), population moments
    # (Schuster 2004)
    rng = np.random.default_rng(3)
    a, b = rng.integers(1, 6, 200), rng.integers(1, 6, 200)
    b[:120] = a[:120]
    identity = 2 * np.cov(a, b, bias=True)[0, 1] / (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
    assert weighted_kappa(a.tolist(), b.tolist(), [1, 2, 3, 4, 5]) == pytest.approx(identity)
    assert weighted_kappa([1, 2], [1, 2], [1, 2, 3]) == 1.0


def test_cohen_kappa_and_spearman_against_textbook_and_scipy() -> None:
    # the textbook 2x2 table (Cohen's kappa's Wikipedia example): 20 yes/yes, 5 yes/no, 10 no/yes,
    # 15 no/no
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    x, y = [1.0, 2.5, 3.0, 4.0, 4.5, 2.0], [1, 3, 2, 5, 4, 2]
    assert spearman(x, y)[0] == pytest.approx(spearmanr(x, y).statistic)


def test_bootstrap_interval_brackets_the_statistic_and_is_seeded() -> None:
    a = [1, 2, 3, 4, 5] * 8
    b = [1, 2, 3, 5, 5] * 8

    def stat(ix: np.ndarray) -> float | None:
        return weighted_kappa([a[i] for i in ix], [b[i] for i in ix], [1, 2, 3, 4, 5])

    low, high = bootstrap_statistic(stat, len(a), 500)
    assert low <= stat(np.arange(len(a))) <= high and (low, high) == bootstrap_statistic(
        stat, len(a), 500
    )


# --- G-Eval: reading token probabilities --------------------------------------------------------------------


def test_a_scale_reads_the_probability_weighted_mean_over_the_score_tokens() -> None:
    rubric = shipped("correctness")
    reply, why = rubric.read_logprobs(
        [("4", math.log(0.6)), (" 5", math.log(0.3)), ("The", math.log(0.1))]
    )
    assert why is None and reply.answer == pytest.approx((4 * 0.6 + 5 * 0.3) / 0.9)
    assert reply.probabilities == {
        "4": pytest.approx(2 / 3, abs=1e-4),
        "5": pytest.approx(1 / 3, abs=1e-4),
    }
    assert reply.mass == pytest.approx(0.9)


def test_a_label_is_the_likeliest_label_token_in_any_case_or_spacing() -> None:
    rubric = shipped("harmbench")
    reply, _ = rubric.read_logprobs(
        [("No", math.log(0.3)), (" yes", math.log(0.25)), ("Yes", math.log(0.2))]
    )
    assert reply.answer == "yes"  # 0.45 for yes beats 0.3 for no
    missing, why = rubric.read_logprobs([("The", -0.1), ("I", -2.0)])
    assert missing is None and "no option (yes, no)" in why


def test_a_scale_whose_scores_share_a_first_token_is_read_as_structured_output(
    tmp_path: Path,
) -> None:
    (tmp_path / "ten.j2").write_text("{{ criteria }} {{ question }} {{ answer }}")
    (tmp_path / "ten.yaml").write_text(
        "name: ten\nmode: pointwise\nscale: {min: 1, max: 10}\ncriteria: c\ntemplate: ten.j2\n"
    )
    assert not load_rubric(tmp_path / "ten.yaml").reads_logprobs  # "1" begins "10"
    assert shipped("correctness").reads_logprobs and shipped("pairwise").reads_logprobs


# --- agreement of a judge with the labels -------------------------------------------------------------------


def test_a_perfect_judge_agrees_and_an_unanswered_item_counts_as_the_worst_answer() -> None:
    rubric = shipped("correctness")
    calibration = rubric.calibration.items
    perfect = [[Reply("", float(item.label))] for item in calibration]
    result = agreement_with_labels(rubric, calibration, perfect, resamples=200)
    assert (
        result["value"] == pytest.approx(1.0)
        and result["exact_agreement"] == 1.0
        and result["unusable"] == 0
    )
    silent = [[None] if i < 10 else answers for i, answers in enumerate(perfect)]
    lowered = agreement_with_labels(rubric, calibration, silent, resamples=200)
    assert lowered["unusable"] == 10 and lowered["value"] < 0.9
    assert lowered["read"] == {
        "structured": 38,
        "unanswered": 10,
    }  # no probabilities: read from the JSON reply


def test_flip_rate_and_first_position_wins_of_a_judge_that_always_says_a() -> None:
    rubric = shipped("pairwise")
    calibration = rubric.calibration.items
    always_a = [[Reply("", "A"), Reply("", "A")] for _ in calibration]
    result = agreement_with_labels(rubric, calibration, always_a, resamples=200)
    assert result["flip_rate"] == 1.0 and result["first_position_rate"] == 1.0
    bias = position_bias([("A", "B"), ("tie", "tie"), ("B", "B"), ("A", "tie")])
    assert bias["flip_rate"] == pytest.approx(2 / 4)  # B,B and A,tie flip; A,B and tie,tie do not
    assert bias["first_position_rate"] == pytest.approx(2 / 5)  # named: A, B, B, B, A


# --- the gate --------------------------------------------------------------------------------------------------


def judged_project(project: Project, gated: bool, judge_says: str) -> None:
    """Helpfulness judged by a scripted judge that always says `judge_says` (with its token
    probabilities)."""
    project.suite(
        "qa",
        [{"type": "contains", "name": "answer"}, {"type": "judge", "rubric": "helpfulness"}],
        [{"id": f"q{i}", "prompt": f"Question {i}?", "reference": "yes"} for i in range(6)],
    )
    gates = [
        {
            "candidate": "tuned",
            "suite": "qa",
            "metric": "helpfulness" if gated else "answer",
            "min": 0.1,
        }
    ]
    judge = answer(
        json.dumps({"reasoning": "fine", "score": int(judge_says)}),
        contains="[ANSWER TO RATE]",
        top_logprobs=[[judge_says, -0.05]],
    )
    project.config(
        [PROMPT, {"name": "tuned", "kind": "prompt", "system": "Be brief."}],
        gates,
        [judge, answer("yes")],
    )


def test_a_gate_on_a_judge_below_its_bar_is_no_verdict(project: Project) -> None:
    judged_project(project, gated=True, judge_says="5")
    code, results = project.run()
    gate = results["verdict"]["gates"][0]
    assert (
        code == 2
        and "unvalidated judge" in gate["reason"]
        and "below the rubric's bar 0.6" in gate["reason"]
    )
    assert "judge: {endpoint" in gate["reason"] and gate["judge"]["validated"] is False
    judges = results["judges"]
    assert [(j["suite"], j["metric"], j["check"]["validated"]) for j in judges] == [
        ("qa", "helpfulness", False)
    ]


def test_an_ungated_metric_of_an_unvalidated_judge_is_marked_not_fatal(project: Project) -> None:
    judged_project(project, gated=False, judge_says="5")
    code, results = project.run()
    assert code == 0 and results["verdict"]["decision"] == "ship"
    html = (project.root / "reports" / results["run"]["id"] / "report.html").read_text()
    assert "unvalidated judge" in html and "Judges" in html


def gated_on_helpfulness(project: Project, rubric: str, rules: list[dict]) -> dict:
    """The results of a run that ships on a gate on `rubric` (helpfulness), its judge scripted:
    `rules` answer the calibration set, every answer to rate gets a 5."""
    project.suite(
        "qa",
        [{"type": "judge", "rubric": rubric}],
        [{"id": f"q{i}", "prompt": f"Q{i}?"} for i in range(4)],
    )
    project.config(
        [PROMPT, {"name": "tuned", "kind": "prompt", "system": "Be brief."}],
        [{"candidate": "tuned", "suite": "qa", "metric": "helpfulness", "min": 0.5}],
        rules
        + [
            answer(
                '{"reasoning": "ok", "score": 5}',
                contains="[ANSWER TO RATE]",
                top_logprobs=[["5", -0.01]],
            ),
            answer("fine"),
        ],
    )
    code, results = project.run()
    assert code == 0, results["verdict"]["reason"]
    return results


def test_a_judge_that_answers_its_calibration_set_right_may_gate(project: Project) -> None:
    results = gated_on_helpfulness(project, *calibrated_rubric(project, "helpfulness"))
    assert results["verdict"]["gates"][0]["judge"]["value"] == pytest.approx(1.0)


def test_every_output_counts_how_the_calibration_answers_were_read(
    project: Project, capsys: pytest.CaptureFixture
) -> None:
    """A judge asked for token probabilities that returns none for the items labeled 1 (3 of 12):
    those are read from its structured reply, and the check, results.json, the report and `harness
    judge calibrate` say so, beside the way that was asked for."""
    rubric, rules = calibrated_rubric(project, "helpfulness")
    silent_on_1 = [
        {
            k: v
            for k, v in rule.items()
            if k != "top_logprobs" or rule["contains"] != "CALIBRATION-1"
        }
        for rule in rules
    ]
    results = gated_on_helpfulness(project, rubric, silent_on_1)
    [judge] = results["judges"]
    assert judge["check"]["method"] == "logprobs" and judge["check"]["read"] == {
        "logprobs": 9,
        "structured": 3,
    }
    run_id = results["run"]["id"]
    html = project.root / "reports" / run_id / "report.html"
    assert "asked: logprobs; read: logprobs 9, structured 3" in html.read_text()
    with Store(project.store) as store:  # a run stored before the reads were counted
        meta = store.run(run_id)["meta"]
        store.set_meta_key(
            run_id,
            "judges",
            [
                {**j, "check": {k: v for k, v in j["check"].items() if k != "read"}}
                for j in meta["judges"]
            ],
        )
    assert main(["report", run_id, "--store", str(project.store)]) == 0
    assert "asked: logprobs; read: not counted" in html.read_text()
    capsys.readouterr()
    assert (
        main(
            [
                "judge",
                "check",
                rubric,
                "--config",
                str(project.root / "config.yaml"),
                "--store",
                str(project.root / "checks.sqlite"),
            ]
        )
        == 0
    )
    said = " ".join(
        capsys.readouterr().out.split()
    )  # the verdict line, wrapped at the console's width
    assert "on 12 items; meets the bar 0.6; asked: logprobs; read: logprobs 9, structured 3" in said


def test_the_gate_names_the_reads_and_a_check_stored_before_they_were_counted_still_reads() -> None:
    check = {
        "judge": "judge m",
        "statistic": "cohen kappa",
        "value": 0.2,
        "ci_low": 0.0,
        "ci_high": 0.4,
        "items": 48,
        "method": "logprobs",
        "min_agreement": 0.6,
        "validated": False,
    }
    counted = {**check, "read": {"logprobs": 90, "structured": 5, "unanswered": 1}}
    assert (
        "(n=48, asked: logprobs; read: logprobs 90, structured 5, unanswered 1 (96 answers: both"
        " orders of each item)), below the rubric's bar 0.6"
        in unvalidated_judge("pairwise", True, counted)
    )
    assert "(n=48, asked: logprobs; read: not counted), below" in unvalidated_judge(
        "pairwise", True, check
    )


# --- harness judge calibrate -----------------------------------------------------------------------------------------


def test_judge_check_refuses_a_rubric_without_a_set(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "mine.j2").write_text("{{ criteria }} {{ question }} {{ answer }}")
    (tmp_path / "mine.yaml").write_text(
        "name: mine\nmode: pointwise\nscale: {min: 1, max: 5}\ncriteria: c\ntemplate: mine.j2\n"
    )
    assert (
        main(
            [
                "judge",
                "calibrate",
                str(tmp_path / "mine.yaml"),
                "--store",
                str(tmp_path / "s.sqlite"),
            ]
        )
        == 2
    )
    assert "names no calibration set" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_judge_check_on_the_local_model(
    tmp_path: Path, vllm_url: str, model: ModelRef, capsys: pytest.CaptureFixture
) -> None:
    """The embedded 135M model judging the harmbench calibration set on the real vLLM server (the
    session's, as an OpenAI-compatible judge endpoint): whatever its agreement, the command reports
    it with its interval, exits by the bar, and a second check is the cached result."""
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "judge-check",
                "candidates": [{"name": "bare", "kind": "prompt"}],
                "suites": ["builtin:tickets"],
                "gates": [
                    {"candidate": "bare", "suite": "tickets", "metric": "json_valid", "min": 0.5}
                ],
                "judge": {
                    "endpoint": {"protocol": "openai", "base_url": vllm_url, "model": model.name}
                },
            }
        )
    )
    store = str(tmp_path / "store.sqlite")
    code = main(["judge", "calibrate", "harmbench", "--config", str(config), "--store", store])
    first = capsys.readouterr().out
    assert code in (0, 1) and "cohen kappa" in first and "logprobs" in first
    assert ("NOT VALIDATED" in first) == (code == 1)
    assert (
        main(["judge", "calibrate", "harmbench", "--config", str(config), "--store", store]) == code
    )
    assert capsys.readouterr().out.splitlines()[-1] == first.splitlines()[-1]


def test_a_run_reports_the_position_bias_of_its_pairwise_judge(project: Project) -> None:
    """A scripted pairwise judge that always prefers whichever answer comes first: every verdict
    flips when the answers swap places, and the first position always wins; the run's Judges section
    says so."""
    project.suite(
        "qa",
        [{"type": "judge", "rubric": "pairwise"}],
        [{"id": f"q{i}", "prompt": f"Q{i}?"} for i in range(5)],
    )
    project.config(
        [PROMPT, {"name": "tuned", "kind": "prompt", "system": "Be brief."}],
        [{"candidate": "tuned", "suite": "qa", "metric": "pairwise", "min": 0.0}],
        [
            answer(
                '{"reasoning": "first is better", "winner": "A"}',
                contains="[ANSWER A]",
                top_logprobs=[["A", -0.1], ["B", -2.5]],
            ),
            answer("an answer"),
        ],
    )
    code, results = project.run()
    [judge] = results["judges"]
    assert (
        judge["flip_rate"] == 1.0 and judge["first_position_rate"] == 1.0 and judge["judged"] == 5
    )
    assert judge["check"]["flip_rate"] == 1.0 and judge["check"]["first_position_rate"] == 1.0
    assert code == 2 and "not shown to agree with labeled examples" in results["verdict"]["reason"]
