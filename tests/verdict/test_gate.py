"""Gate rules and the verdict, on per-case scores."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.core.errors import ConfigError
from harness.planning.config import Config, load_config
from harness.store.meta import JudgeRecord
from harness.verdict.evidence import Evidence
from harness.verdict.gate import DO_NOT_SHIP, ERROR, EXIT_CODES, SHIP, decide


def config(*gates: dict, policy: str = "warn", **stats: float) -> Config:
    return Config.model_validate(
        {
            "name": "t",
            "suites": ["s"],
            "gates": list(gates),
            "stats": {"resamples": 2000, **stats},
            "candidates": [{"name": "base", "kind": "prompt"}, {"name": "new", "kind": "prompt"}],
            "gate_policy": {"ungated_regressions": policy},
        }
    )


def scores(per_candidate: dict[str, list[float]], metric: str = "m") -> pd.DataFrame:
    rows = [
        {"candidate": c, "suite": "s", "case_id": f"c{i:03d}", "metric": metric, "value": v}
        for c, values in per_candidate.items()
        for i, v in enumerate(values)
    ]
    return pd.DataFrame(rows)


BASE = [1.0] * 30 + [0.0] * 30  # 50%
BETTER = [1.0] * 30 + [1.0] * 24 + [0.0] * 6  # 90%: 24 cases fixed, none broken
SAME = [1.0] * 29 + [0.0] + [1.0] + [0.0] * 29  # 50%: one case swapped each way


def gate(**rule: object) -> dict:
    return {"candidate": "new", "suite": "s", "metric": "m", **rule}


def test_absolute_bounds() -> None:
    verdict = decide(
        config(gate(min=0.9), gate(max=0.95)),
        Evidence(scores({"base": BASE, "new": BETTER}), 0, 120),
    )
    assert verdict.decision == SHIP and EXIT_CODES[SHIP] == 0
    assert verdict.gates[0].value == pytest.approx(0.9) and verdict.gates[0].n == 60
    failing = decide(
        config(gate(min=0.95)), Evidence(scores({"base": BASE, "new": BETTER}), 0, 120)
    )
    assert failing.decision == DO_NOT_SHIP and EXIT_CODES[DO_NOT_SHIP] == 1
    assert "mean 0.900 is below 0.95" in failing.reason and "new / s / m >= 0.95" in failing.reason


def test_min_delta_with_evidence() -> None:
    data = scores({"base": BASE, "new": BETTER})
    verdict = decide(config(gate(min_delta=0.2, significant=True)), Evidence(data, 0, 120))
    result = verdict.gates[0]
    assert verdict.decision == SHIP, verdict.reason
    assert result.baseline == "base" and result.delta == pytest.approx(0.4)
    assert result.ci_low < 0.4 < result.ci_high
    # a non-zero margin on a pass/fail metric: Tango's score test of H0: delta = 0.2 decides, and is
    # shown
    check = result.checks[0]
    assert result.test == check.test == "tango_score" and result.p_value == check.p_value < 0.01
    assert check.p_adjusted == check.p_value and check.passed


def test_significance_needs_more_than_a_point_estimate() -> None:
    few_base, few_new = (
        [0.0, 1.0, 0.0, 1.0, 0.0],
        [
            1.0,
            1.0,
            0.0,
            1.0,
            0.0,
        ],
    )  # +0.2 from a single case
    data = scores({"base": few_base, "new": few_new})
    assert decide(config(gate(min_delta=0.0)), Evidence(data, 0, 10)).decision == SHIP
    strict = decide(config(gate(min_delta=0.0, significant=True)), Evidence(data, 0, 10))
    assert strict.decision == DO_NOT_SHIP
    assert "does not clear" in strict.reason or "not significant" in strict.reason
    assert "Too few cases" not in (
        strict.gates[0].mde_note or ""
    )  # min_delta 0 names no effect size


def test_max_drop_catches_a_regression_and_names_the_cases() -> None:
    worse = [1.0] * 20 + [0.0] * 40
    verdict = decide(
        config(gate(max_drop=0.05)), Evidence(scores({"base": BASE, "new": worse}), 0, 120)
    )
    result = verdict.gates[0]
    assert verdict.decision == DO_NOT_SHIP and result.delta == pytest.approx(-1 / 6)
    assert "Δ -0.167 is below -0.05" in result.reason
    assert result.worst_regressions == ["c020", "c021", "c022", "c023", "c024"]
    assert (
        decide(
            config(gate(max_drop=0.05)), Evidence(scores({"base": BASE, "new": SAME}), 0, 120)
        ).decision
        == SHIP
    )


def test_mde_says_when_the_suite_is_too_small() -> None:
    verdict = decide(
        config(gate(min_delta=0.02)), Evidence(scores({"base": BASE, "new": SAME}), 0, 120)
    )
    assert "Too few cases to detect a change of 2 points" in verdict.gates[0].mde_note


def test_holm_across_the_run() -> None:
    """Two significant checks: each one's adjusted p is at least its raw p, and Holm's step-down
    holds."""
    data = pd.concat(
        [scores({"base": BASE, "new": BETTER}), scores({"base": BASE, "new": SAME}, metric="k")]
    )
    cfg = config(
        gate(min_delta=0.0, significant=True), gate(metric="k", min_delta=0.0, significant=True)
    )
    verdict = decide(cfg, Evidence(data, 0, 240))
    strong, weak = (g.checks[0] for g in verdict.gates)
    assert strong.p_adjusted == pytest.approx(min(1.0, 2 * min(strong.p_value, weak.p_value)))
    assert weak.p_adjusted >= weak.p_value and weak.p_adjusted == pytest.approx(
        max(strong.p_adjusted, weak.p_value)
    )
    assert [g.passed for g in verdict.gates] == [True, False]


def test_failed_requests_mean_no_verdict() -> None:
    verdict = decide(config(gate(min=0.1)), Evidence(scores({"base": BASE, "new": BETTER}), 2, 122))
    assert verdict.decision == ERROR and EXIT_CODES[ERROR] == 2
    assert "2 of 122 requests failed" in verdict.reason


def test_gate_without_scores_is_no_verdict() -> None:
    verdict = decide(config(gate(min=0.1)), Evidence(scores({"base": BASE}), 0, 60))
    assert (
        verdict.decision == ERROR and verdict.gates[0].value is None and not verdict.gates[0].passed
    )
    assert "60 of 60 rows of new / s / m have no value" in verdict.reason


def test_relative_gate_on_the_baseline_itself_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: t\nsuites: [s]\ncandidates:\n  - {name: base, kind: prompt}\n"
        "gates:\n  - {candidate: base, suite: s, metric: m, min_delta: 0}\n"
    )
    with pytest.raises(ConfigError, match="compare 'base' with itself"):
        load_config(path)


def test_relative_bounds_follow_a_lower_is_better_metric() -> None:
    """TER, perplexity, attack success: a rise is the regression `max_drop` limits."""
    base = [10.0] * 20
    risen, fallen = [13.0] * 20, [7.0] * 20
    rule = config(gate(max_drop=2.0))
    lower = {("s", "m"): False}
    assert (
        decide(
            rule, Evidence(scores({"base": base, "new": fallen}), 0, 40, directions=lower)
        ).decision
        == SHIP
    )
    failing = decide(rule, Evidence(scores({"base": base, "new": risen}), 0, 40, directions=lower))
    assert (
        failing.decision == DO_NOT_SHIP
        and "Δ +3.000 is above +2 (lower is better)" in failing.reason
    )
    assert failing.gates[0].rule == "new / s / m rise <= 2"
    assert failing.gates[0].delta == pytest.approx(
        3.0
    )  # the reported delta stays candidate - baseline
    # read as higher-is-better, the same numbers pass: the direction is what decides
    assert decide(rule, Evidence(scores({"base": base, "new": risen}), 0, 40)).decision == SHIP
    improve = config(gate(min_delta=2.0))
    assert (
        decide(
            improve, Evidence(scores({"base": base, "new": fallen}), 0, 40, directions=lower)
        ).decision
        == SHIP
    )
    short = decide(
        improve, Evidence(scores({"base": base, "new": [9.0] * 20}), 0, 40, directions=lower)
    )
    assert (
        short.gates[0].rule == "new / s / m Δ <= -2"
        and "Δ -1.000 is above -2 (lower is better)" in short.reason
    )


def test_a_missing_value_on_a_gated_metric_is_no_verdict() -> None:
    """A judge error is a NULL score: never a 0, and never a rule decided on the cases that were
    judged."""
    data = scores({"base": BASE, "new": BETTER})
    data.loc[data.index[-1], "value"] = None
    data["detail"] = ""
    data.loc[data.index[-1], "detail"] = "judge error: no usable answer after 3 attempt(s)"
    verdict = decide(config(gate(min=0.5)), Evidence(data, 0, 120))
    assert verdict.decision == ERROR and verdict.errors == 1 and "judge error" in verdict.reason
    assert verdict.gates[0].n == 59  # the missing value is dropped, not counted as a failure
    data.loc[data.index[-1], "value"] = 0.0
    ungated = pd.DataFrame(
        [
            {
                "candidate": "new",
                "suite": "s",
                "case_id": "c000",
                "metric": "other",
                "value": None,
                "detail": "judge error",
            }
        ]
    )
    assert (
        decide(config(gate(min=0.5)), Evidence(pd.concat([data, ungated]), 0, 120)).decision == SHIP
    )  # not gated


def test_absent_rows_on_either_side_are_no_verdict() -> None:
    """Rows simply missing (not NaN) count as missing: a gate decided on 10 of 60 cases is no
    decision."""
    data = scores({"base": BASE, "new": BETTER})
    partial = data[~((data.candidate == "new") & (data.case_id > "c009"))]
    verdict = decide(config(gate(max_drop=0.05)), Evidence(partial, 0, 70))
    assert (
        verdict.decision == ERROR
        and "50 of 60 rows of new / s / m have no value (c010, c011" in verdict.reason
    )
    base_nan = data.copy()
    base_nan.loc[(base_nan.candidate == "base") & (base_nan.case_id == "c003"), "value"] = None
    verdict = decide(config(gate(max_drop=0.05)), Evidence(base_nan, 0, 120))
    assert (
        verdict.decision == ERROR
        and "1 of 60 rows of base / s / m have no value (c003)" in verdict.reason
    )
    absolute = decide(config(gate(min=0.5)), Evidence(base_nan, 0, 120))
    assert absolute.decision == SHIP  # an absolute rule needs no baseline


def test_the_plans_rows_are_what_must_be_there() -> None:
    """A case neither side has is still missing when the plan expects it."""
    data = scores({"base": BASE, "new": BETTER})
    ids = sorted(set(data.case_id)) + ["c999"]
    expected = {("new", "s", "m"): ids, ("base", "s", "m"): ids}
    verdict = decide(config(gate(max_drop=0.05)), Evidence(data, 0, 120, expected=expected))
    assert (
        verdict.decision == ERROR and verdict.gates[0].missing == 2 and "(c999)" in verdict.reason
    )


def test_pinned_side_missing_is_no_verdict() -> None:
    cfg = Config.model_validate(
        {
            "name": "t",
            "suites": ["s"],
            "drift": {"baseline": "prod"},
            "candidates": [{"name": "new", "kind": "prompt"}],
            "gates": [gate(max_drop=0.05)],
            "stats": {"resamples": 500},
        }
    )
    now = scores({"new": BETTER})
    pinned = scores({"new": BETTER[:50]})
    verdict = decide(cfg, Evidence(now, 0, 60, pinned=pinned))
    assert (
        verdict.decision == ERROR and "10 of 60 rows of new (pinned run) / s / m" in verdict.reason
    )


def test_fallback_share_over_the_limit_is_no_verdict() -> None:
    data = scores({"base": BASE, "new": BETTER})
    data["meta_json"] = None
    data.loc[data.index[-15:], "meta_json"] = '{"fallback": true}'
    verdict = decide(config(gate(min=0.5)), Evidence(data, 0, 120))
    assert verdict.decision == ERROR and verdict.gates[0].fallbacks == 15
    assert (
        "15 of 60 values decided by the judge's refusal fallback (25%; limit 20%)" in verdict.reason
    )
    lenient = config(gate(min=0.5))
    lenient.judge.max_fallback_share = 0.3
    assert decide(lenient, Evidence(data, 0, 120)).decision == SHIP


def test_mde_of_a_margin_gate_speaks_beyond_the_margin_at_the_adjusted_alpha() -> None:
    cfg = config(gate(min_delta=0.2, significant=True), gate(metric="k", min=0.1, significant=True))
    data = pd.concat(
        [scores({"base": BASE, "new": BETTER}), scores({"base": BASE, "new": SAME}, metric="k")]
    )
    note = decide(cfg, Evidence(data, 0, 240)).gates[0].mde_note
    assert "beyond the +0.2 margin" in note and "α = 0.025 after Holm" in note


def test_lower_is_better_pass_fail_uses_exact_tests_in_the_gain_direction() -> None:
    """attack_success: 1 is the bad outcome; 6 cases newly attacked, none fixed: McNemar p = 2 *
    0.5**6."""
    base = [0.0] * 40
    worse = [1.0] * 6 + [0.0] * 34
    lower = {("s", "m"): False}
    verdict = decide(
        config(gate(max_drop=0.0, significant=True)),
        Evidence(scores({"base": base, "new": worse}), 0, 80, directions=lower),
    )
    check = verdict.gates[0].checks[0]
    assert (
        verdict.decision == DO_NOT_SHIP
        and check.test == "mcnemar_exact"
        and check.statistic == pytest.approx(-0.15)
    )
    better = decide(
        config(gate(min_delta=0.0, significant=True)),
        Evidence(scores({"base": worse, "new": base}), 0, 80, directions=lower),
    )
    assert better.decision == SHIP and better.gates[0].p_value == pytest.approx(2 * 0.5**6)


BROKEN = [0.0] * 30 + [0.0] * 30  # every case BASE passed now fails: McNemar p = 2 * 0.5**30
SIX_BROKEN = (
    [0.0] * 6 + [1.0] * 24 + [0.0] * 30
)  # 6 of BASE's passes broken, none fixed: p = 2 * 0.5**6


def test_an_ungated_significant_regression_is_a_warning_that_keeps_the_verdict() -> None:
    """The gate on m covers m whatever its bound (here a loose one that m's own drop passes); k has
    no gate."""
    data = pd.concat(
        [
            scores({"base": BASE, "new": SIX_BROKEN}),
            scores({"base": BASE, "new": BROKEN}, metric="k"),
        ]
    )
    verdict = decide(config(gate(max_drop=0.5)), Evidence(data, 0, 240))
    assert verdict.decision == SHIP and verdict.reason == "all 1 gates pass"
    [warning] = verdict.ungated_regressions
    assert (warning.candidate, warning.baseline, warning.suite, warning.metric) == (
        "new",
        "base",
        "s",
        "k",
    )
    assert warning.delta == pytest.approx(-0.5) and warning.ci_low < warning.ci_high < 0
    assert warning.test == "mcnemar_exact" and warning.p_value == pytest.approx(2 * 0.5**30)
    assert warning.p_adjusted == pytest.approx(warning.p_value) and not warning.blocks
    assert (warning.baseline_mean, warning.candidate_mean, warning.n) == (0.5, 0.0, 60)
    assert verdict.as_dict()["ungated_regressions"][0]["metric"] == "k"


def test_under_the_fail_policy_an_ungated_regression_is_do_not_ship_but_never_hides_an_error() -> (
    None
):
    data = pd.concat(
        [scores({"base": BASE, "new": BETTER}), scores({"base": BASE, "new": BROKEN}, metric="k")]
    )
    verdict = decide(config(gate(min=0.5), policy="fail"), Evidence(data, 0, 240))
    assert verdict.decision == DO_NOT_SHIP and verdict.ungated_regressions[0].blocks
    assert verdict.reason.startswith(
        "a significant regression no gate covers (gate_policy.ungated_regressions: "
        "fail): new / s / k: 0.500 → 0.000, Δ -0.500 ["
    )
    assert "vs base over 60 cases, mcnemar_exact p = 1.86e-09 (Holm 1.86e-09)" in verdict.reason
    failing = decide(config(gate(min=0.95), policy="fail"), Evidence(data, 0, 240))
    assert failing.decision == DO_NOT_SHIP and failing.reason.startswith(
        "new / s / m >= 0.95: mean 0.900"
    )
    assert failing.reason.endswith(
        "; and 1 significant regression no gate covers (gate_policy.ungated_regressions: fail)"
    )
    errored = decide(config(gate(min=0.5), policy="fail"), Evidence(data, 3, 243))
    assert errored.decision == ERROR and "3 of 243 requests failed" in errored.reason
    assert [r.metric for r in errored.ungated_regressions] == ["k"]
    covered = decide(
        config(gate(min=0.5), gate(metric="k", min=0.0), policy="fail"), Evidence(data, 0, 240)
    )
    assert covered.decision == SHIP and covered.ungated_regressions == []


def test_only_a_change_for_the_worse_in_the_metrics_direction_is_a_regression() -> None:
    base, risen, fallen = [10.0] * 20, [13.0] * 20, [7.0] * 20
    lower = {("s", "m"): True, ("s", "ppl"): False}
    gated = scores({"base": BASE[:20], "new": BASE[:20]})
    rising = pd.concat([gated, scores({"base": base, "new": risen}, metric="ppl")])
    [warning] = decide(
        config(gate(min=0.0)), Evidence(rising, 0, 80, directions=lower)
    ).ungated_regressions
    assert (
        warning.metric == "ppl"
        and not warning.higher_is_better
        and warning.delta == pytest.approx(3.0)
    )
    assert warning.test == "paired_bootstrap"
    falling = pd.concat([gated, scores({"base": base, "new": fallen}, metric="ppl")])
    assert (
        decide(
            config(gate(min=0.0)), Evidence(falling, 0, 80, directions=lower)
        ).ungated_regressions
        == []
    )
    improved = pd.concat(
        [gated, scores({"base": BASE, "new": BETTER}, metric="k")]
    )  # significant, but better
    assert decide(config(gate(min=0.0)), Evidence(improved, 0, 100)).ungated_regressions == []


def test_holm_runs_across_the_ungated_comparisons_only() -> None:
    """p = 0.031 alone is a regression; beside two ungated metrics with p = 1 it is 3 * 0.031 =
    0.094 after Holm, and is not. Gated comparisons are not in that family: gating the two brings it
    back."""
    alone = pd.concat(
        [scores({"base": BASE, "new": BASE}), scores({"base": BASE, "new": SIX_BROKEN}, metric="k")]
    )
    [warning] = decide(config(gate(min=0.0)), Evidence(alone, 0, 240)).ungated_regressions
    assert warning.p_value == pytest.approx(2 * 0.5**6) and warning.p_adjusted == pytest.approx(
        warning.p_value
    )
    crowd = pd.concat([alone] + [scores({"base": BASE, "new": BASE}, metric=m) for m in ("x", "y")])
    assert decide(config(gate(min=0.0)), Evidence(crowd, 0, 480)).ungated_regressions == []
    gated = config(gate(min=0.0), gate(metric="x", min=0.0), gate(metric="y", max=1.0))
    assert [r.metric for r in decide(gated, Evidence(crowd, 0, 480)).ungated_regressions] == ["k"]


def test_regressions_are_listed_in_candidate_then_plan_order_and_skip_unvalidated_judges() -> None:
    cfg = Config.model_validate(
        {
            "name": "t",
            "suites": ["s"],
            "stats": {"resamples": 2000},
            "gates": [gate(metric="g", min=0.0)],
            "candidates": [
                {"name": "base", "kind": "prompt"},
                {"name": "new", "kind": "prompt"},
                {"name": "alt", "kind": "prompt"},
            ],
        }
    )
    data = pd.concat(
        [scores({"base": BASE, "new": BASE, "alt": BASE}, metric="g")]
        + [
            scores({"base": BASE, "new": BROKEN, "alt": BROKEN}, metric=m)
            for m in ("z", "a", "judged")
        ]
    )
    plan_order = {("s", "g"): True, ("s", "z"): True, ("s", "a"): True, ("s", "judged"): True}
    listed = decide(cfg, Evidence(data, 0, 720, directions=plan_order)).ungated_regressions
    assert [(r.candidate, r.metric) for r in listed] == [
        (c, m) for c in ("new", "alt") for m in ("z", "a", "judged")
    ]
    check = {
        "validated": False,
        "value": 0.1,
        "statistic": "kappa",
        "judge": "j",
        "items": 12,
        "method": "logprobs",
        "min_agreement": 0.6,
    }
    judges = {
        ("s", "judged"): JudgeRecord(
            suite="s", metric="judged", rubric="correctness", calibrated=True, check=check
        )
    }
    listed = decide(
        cfg, Evidence(data, 0, 720, directions=plan_order, judges=judges)
    ).ungated_regressions
    assert [(r.candidate, r.metric) for r in listed] == [
        (c, m) for c in ("new", "alt") for m in ("z", "a")
    ]


def test_in_drift_each_candidate_is_compared_with_its_pinned_self() -> None:
    cfg = Config.model_validate(
        {
            "name": "t",
            "suites": ["s"],
            "drift": {"baseline": "prod"},
            "candidates": [{"name": "new", "kind": "prompt"}],
            "gates": [gate(max_drop=0.05)],
            "stats": {"resamples": 500},
            "gate_policy": {"ungated_regressions": "fail"},
        }
    )
    now = pd.concat([scores({"new": BASE}), scores({"new": BROKEN}, metric="k")])
    pinned = pd.concat([scores({"new": BASE}), scores({"new": BASE}, metric="k")])
    verdict = decide(cfg, Evidence(now, 0, 120, pinned=pinned))
    [warning] = verdict.ungated_regressions
    assert (warning.candidate, warning.baseline, warning.metric) == ("new", "new (pinned)", "k")
    assert verdict.decision == DO_NOT_SHIP and "new / s / k: 0.500 → 0.000" in verdict.reason
