"""Paired statistics against cases worked out by hand or by scipy."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, norm

from harness.verdict.stats import (
    binomial_bound,
    bootstrap_bound,
    compare_paired,
    detectable,
    holm,
    mcnemar_exact,
    mde_sentence,
    mde_unit,
    minimum_detectable_effect,
    paired_bootstrap,
    paired_proportion_bound,
    tango_interval,
    tango_statistic,
)

Z = norm.ppf(0.975) + norm.ppf(0.8)  # 2.8016: alpha 0.05 two-sided, power 0.8


def table(b: int, c: int, both: int = 0, neither: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pass arrays with b baseline-only passes, c candidate-only passes, and concordant pairs."""
    cand = [False] * b + [True] * c + [True] * both + [False] * neither
    base = [True] * b + [False] * c + [True] * both + [False] * neither
    return np.array(cand), np.array(base)


def test_mcnemar_textbook_table() -> None:
    result = mcnemar_exact(*table(b=1, c=9, both=30, neither=10))
    assert (result.b, result.c, result.n) == (1, 9, 50)
    assert result.p_value == pytest.approx(
        22 / 1024
    )  # 2 * (C(10,0) + C(10,1)) / 2**10 = 0.021484375


@pytest.mark.parametrize("b,c", [(0, 1), (2, 8), (5, 5), (3, 17), (40, 25), (0, 12), (7, 6)])
def test_mcnemar_matches_scipy_binomtest(b: int, c: int) -> None:
    expected = binomtest(c, b + c, 0.5).pvalue
    assert mcnemar_exact(*table(b, c, both=3)).p_value == pytest.approx(expected, rel=1e-9)


def test_mcnemar_no_difference() -> None:
    assert mcnemar_exact(*table(b=4, c=4)).p_value == 1.0
    assert mcnemar_exact(*table(b=0, c=0, both=5, neither=2)).p_value == 1.0  # no discordant pairs
    assert (
        mcnemar_exact(np.array([1, 0, 1]), np.array([1, 0, 1])).p_value == 1.0
    )  # 0/1 works like bool


def test_mcnemar_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        mcnemar_exact(np.array([], dtype=bool), np.array([], dtype=bool))
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_exact(np.array([0.5, 1.0]), np.array([1, 1]))
    with pytest.raises(ValueError, match="different lengths"):
        mcnemar_exact(np.array([True]), np.array([True, False]))


def test_bootstrap_constant_delta_collapses() -> None:
    base = np.linspace(0, 0.7, 25)
    result = paired_bootstrap(base + 0.3, base, resamples=2000)
    delta = (base + 0.3)[0] - base[0]
    assert result.delta == result.low == result.high == delta
    assert result.p_value == pytest.approx(2 / 2001)  # every resample on one side of 0
    zero = paired_bootstrap(base, base, resamples=2000)
    assert (zero.delta, zero.low, zero.high, zero.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(1)
    cand, base = rng.normal(0.6, 0.2, 200), rng.normal(0.55, 0.2, 200)
    first = paired_bootstrap(cand, base, resamples=2000, seed=7)
    assert paired_bootstrap(cand, base, resamples=2000, seed=7) == first
    other = paired_bootstrap(cand, base, resamples=2000, seed=8)
    assert (other.low, other.high) != (first.low, first.high)
    assert other.delta == first.delta  # the point estimate does not depend on resampling


def test_bootstrap_chunks_do_not_change_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    cand, base = rng.normal(size=50), rng.normal(size=50)
    whole = paired_bootstrap(cand, base, resamples=1000, seed=3)
    monkeypatch.setattr(
        "harness.verdict.stats._CHUNK_ENTRIES", 50 * 7
    )  # 7 resamples per block, a ragged last one
    assert paired_bootstrap(cand, base, resamples=1000, seed=3) == whole


def test_bootstrap_ci_covers_the_true_mean_at_about_the_stated_rate() -> None:
    rng = np.random.default_rng(11)
    covered, rejected_null = 0, 0
    for sim in range(200):
        base = rng.uniform(0, 1, 40)
        cand = base + rng.normal(0.05, 0.1, 40)  # true mean delta 0.05
        result = paired_bootstrap(cand, base, resamples=1000, seed=sim)
        covered += result.low <= 0.05 <= result.high
        null = paired_bootstrap(base + rng.normal(0, 0.1, 40), base, resamples=1000, seed=sim)
        rejected_null += null.p_value < 0.05
    assert 0.88 <= covered / 200 <= 0.99  # percentile CIs run a little short at n = 40
    assert rejected_null / 200 <= 0.12


def test_bootstrap_p_value_agrees_with_the_ci() -> None:
    rng = np.random.default_rng(4)
    base = rng.uniform(0, 1, 100)
    clear = paired_bootstrap(base + rng.normal(0.1, 0.1, 100), base, resamples=2000)
    assert clear.low > 0 and clear.p_value < 0.05
    noise = rng.normal(0, 0.1, 100)
    noise = paired_bootstrap(
        base + noise - noise.mean(), base, resamples=2000
    )  # observed mean delta 0
    assert noise.low < 0 < noise.high and noise.p_value > 0.05


def test_bootstrap_edge_cases() -> None:
    with pytest.raises(ValueError, match="empty"):
        paired_bootstrap(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="different lengths"):
        paired_bootstrap(np.array([1.0, 2.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="NaN"):
        paired_bootstrap(np.array([1.0, np.nan]), np.array([1.0, 0.0]))
    one = paired_bootstrap(np.array([0.9]), np.array([0.4]), resamples=100)
    assert one.n == 1 and one.low == one.high == one.delta == pytest.approx(0.5)
    assert one.p_value == 1.0  # one case is no evidence, however large its delta


def test_holm_textbook() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    results = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert [r.adjusted for r in results] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [r.reject for r in results] == [True, False, False, True]  # stops at 0.03 > 0.05 / 2
    assert [r.p_value for r in results] == [0.01, 0.04, 0.03, 0.005]


def test_holm_caps_at_one_and_handles_edges() -> None:
    assert [r.adjusted for r in holm([0.5, 0.6, 0.9])] == [1.0, 1.0, 1.0]
    assert holm([]) == []
    single = holm([0.04])[0]
    assert single.adjusted == 0.04 and single.reject
    with pytest.raises(ValueError):
        holm([0.1, 1.5])


def test_mde_formula_and_one_over_sqrt_n() -> None:
    rng = np.random.default_rng(5)

    def deltas(n: int) -> np.ndarray:  # sample sd exactly 0.2
        x = rng.normal(size=n)
        return (x - x.mean()) / x.std(ddof=1) * 0.2 + 0.01

    small, large = minimum_detectable_effect(deltas(100)), minimum_detectable_effect(deltas(400))
    assert small == pytest.approx(Z * 0.2 / 10)
    assert large / small == pytest.approx(0.5)


def test_mde_falls_back_when_the_data_cannot_say() -> None:
    assert minimum_detectable_effect(np.zeros(100)) == pytest.approx(Z * 0.5 / 10)  # nothing moved
    assert minimum_detectable_effect(np.array([0.01, 0.02, 0.03])) == pytest.approx(
        Z * 0.5 / math.sqrt(3)
    )
    assert minimum_detectable_effect(np.array([0.3])) == pytest.approx(Z * 0.5)
    assert minimum_detectable_effect(np.zeros(100), fallback_sd=2.0) == pytest.approx(Z * 2.0 / 10)
    with pytest.raises(ValueError, match="empty"):
        minimum_detectable_effect(np.array([]))


def test_mde_sentences() -> None:
    mde = minimum_detectable_effect(np.zeros(100))  # 2.8016 * 0.5 / 10 = 0.140 (14 points)
    # cases needed: 100 * (0.14008 / 0.02)**2 = 4905.6, rounded up
    assert not detectable(mde, 0.02) and detectable(mde, -0.2)
    assert mde_sentence(mde, 100) == "100 cases can detect a change of 14 points or more."
    assert (
        mde_sentence(mde, 100, 0.02)
        == "Too few cases to detect a change of 2 points: 100 cases detect 14 points or more; about"
        " 4906 would be needed."
    )
    assert mde_sentence(mde, 100, 0.2).startswith(
        "100 cases are enough to detect a change of 20 points"
    )
    assert mde_sentence(0.5, 1).startswith("1 case can")
    nats = mde_sentence(0.3, 50, 1.0, unit="nats", per_unit=1.0)
    assert nats.startswith("50 cases are enough to detect a change of 1 nats")


def test_effects_are_points_on_a_unit_scale_and_raw_units_elsewhere() -> None:
    assert mde_unit(pd.Series([0.0, 1.0, 0.5]), pd.Series([1.0, np.nan])) == ("points", 0.01)
    perplexity = (pd.Series([18.9, 21.2]), pd.Series([17.0, 19.5]))
    assert mde_unit(*perplexity) == ("units", 1.0)
    assert mde_sentence(0.9, 40, 2.0, unit="units", per_unit=1.0).startswith(
        "40 cases are enough to detect a change of 2 units (smallest detectable: 0.9 units)"
    )


def test_compare_binary_uses_mcnemar_and_aligns_by_case_id() -> None:
    cand_pass, base_pass = table(b=1, c=9, both=30, neither=10)
    ids = [f"case-{i:02d}" for i in range(50)]
    candidate = pd.Series(cand_pass.astype(float), index=ids)
    baseline = pd.Series(base_pass.astype(float), index=ids)
    # shuffle one side, add a case only the candidate has and one the baseline failed to score
    candidate = pd.concat([candidate.sample(frac=1, random_state=0), pd.Series({"extra": 1.0})])
    baseline = pd.concat([baseline, pd.Series({"unscored": np.nan})])
    result = compare_paired(candidate, baseline, resamples=1000)
    assert result.binary and result.test == "mcnemar_exact"
    assert (result.n, result.dropped) == (50, 2)
    assert result.p_value == pytest.approx(22 / 1024)
    assert result.delta == pytest.approx(8 / 50)
    assert (result.candidate_mean, result.baseline_mean) == (39 / 50, 31 / 50)
    assert (result.improved, result.regressed) == (9, 1) and result.worst_regressions == ["case-00"]
    assert result.ci_low <= result.delta <= result.ci_high


def test_compare_continuous_uses_the_bootstrap() -> None:
    ids = [f"c{i}" for i in range(30)]
    baseline = pd.Series(np.linspace(0.2, 0.8, 30), index=ids)
    drops = {"c3": 0.3, "c7": 0.5, "c9": 0.1, "c11": 0.2, "c20": 0.4, "c25": 0.05}
    candidate = baseline + 0.1 - pd.Series(drops).reindex(ids, fill_value=0.0)
    result = compare_paired(candidate, baseline, resamples=1000, seed=3)
    assert not result.binary and result.test == "paired_bootstrap"
    expected = paired_bootstrap(
        candidate.sort_index().to_numpy(), baseline.sort_index().to_numpy(), 1000, seed=3
    )
    assert (result.p_value, result.ci_low, result.ci_high) == (
        expected.p_value,
        expected.low,
        expected.high,
    )
    assert result.worst_regressions == [
        "c7",
        "c20",
        "c3",
        "c11",
    ]  # only cases that got worse, worst first
    assert result.dropped == 0 and result.mde > 0


def test_compare_is_json_serialisable_with_integer_ids() -> None:
    baseline = pd.Series([1, 1, 0, 1], index=[10, 11, 12, 13])
    candidate = pd.Series([0, 1, 1, 1], index=[10, 11, 12, 13])
    data = json.loads(json.dumps(compare_paired(candidate, baseline, resamples=200).as_dict()))
    assert data["worst_regressions"] == [10] and data["n"] == 4 and data["test"] == "mcnemar_exact"


def test_compare_binary_override_and_errors() -> None:
    ids = ["a", "b", "c"]
    forced = compare_paired(
        pd.Series([1.0, 0.0, 1.0], ids),
        pd.Series([0.0, 0.0, 1.0], ids),
        binary=False,
        resamples=200,
    )
    assert forced.test == "paired_bootstrap"
    with pytest.raises(ValueError, match="not 0 or 1"):
        compare_paired(
            pd.Series([0.5, 1.0, 0.0], ids), pd.Series([1.0, 1.0, 0.0], ids), binary=True
        )
    with pytest.raises(ValueError, match="no scored cases in common"):
        compare_paired(pd.Series([1.0], ["a"]), pd.Series([1.0], ["b"]))
    with pytest.raises(ValueError, match="duplicate case ids"):
        compare_paired(pd.Series([1.0, 0.0], ["a", "a"]), pd.Series([1.0], ["a"]))


def test_compare_one_case() -> None:
    result = compare_paired(pd.Series([0.9], ["a"]), pd.Series([0.2], ["a"]), resamples=200)
    assert result.n == 1 and result.delta == pytest.approx(0.7) and result.p_value == 1.0
    assert result.mde == pytest.approx(Z * 0.5)  # no spread to measure: the documented fallback


# --- the tests a gate decides with: exact where the metric is pass/fail -----------------------------


def passes(k: int, n: int) -> np.ndarray:
    return np.array([True] * k + [False] * (n - k))


def test_binomial_bound_textbook_ten_of_ten() -> None:
    """10 of 10 against min 0.95: p = P(X >= 10 | 0.95) = 0.95**10, one-sided 95% Clopper-Pearson
    0.05**0.1."""
    result = binomial_bound(passes(10, 10), 0.95, lower=True)
    assert result.test == "binomial_exact" and result.statistic == 1.0
    assert result.p_value == pytest.approx(0.95**10) == pytest.approx(0.5987, abs=1e-4)
    assert (
        result.low == pytest.approx(0.05**0.1) == pytest.approx(0.7411, abs=1e-4)
        and result.high == 1.0
    )


@pytest.mark.parametrize(
    "k, n, bound",
    [
        (0, 1, 0.5),
        (1, 1, 0.5),
        (7, 20, 0.2),
        (19, 20, 0.8),
        (55, 60, 0.9),
        (3, 3, 0.1),
        (0, 12, 0.05),
    ],
)
def test_binomial_bound_matches_scipy_both_directions(k: int, n: int, bound: float) -> None:
    at_least = binomial_bound(passes(k, n), bound, lower=True)
    at_most = binomial_bound(passes(k, n), bound, lower=False)
    assert at_least.p_value == pytest.approx(
        binomtest(k, n, bound, alternative="greater").pvalue, rel=1e-12
    )
    assert at_most.p_value == pytest.approx(
        binomtest(k, n, bound, alternative="less").pvalue, rel=1e-12
    )
    one_sided_low = (
        binomtest(k, n, bound, alternative="greater").proportion_ci(0.95, method="exact").low
    )
    one_sided_high = (
        binomtest(k, n, bound, alternative="less").proportion_ci(0.95, method="exact").high
    )
    assert at_least.low == pytest.approx(one_sided_low, abs=1e-12)
    assert at_most.high == pytest.approx(one_sided_high, abs=1e-12)


def test_binomial_bound_edges() -> None:
    assert binomial_bound(passes(5, 5), 1.0, lower=True).p_value == 1.0  # a rate can never exceed 1
    assert (
        binomial_bound(passes(0, 5), -0.1, lower=True).p_value == 0.0
    )  # nor fall below a negative bound
    assert binomial_bound(passes(0, 5), 0.0, lower=False).p_value == 1.0
    with pytest.raises(ValueError, match="0/1"):
        binomial_bound(np.array([0.5, 1.0]), 0.5, lower=True)


def test_tango_interval_textbook() -> None:
    """Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables, ch. 8 (Cavo et al.
    2012): 59 / 6 / 16 / 80, Tango asymptotic score CI -0.1240 to -0.0054 for a difference of
    -0.0621."""
    low, high = tango_interval(gained=6, lost=16, n=161)
    assert (round(low, 4), round(high, 4)) == (-0.1240, -0.0054)
    # the ends are where the score statistic crosses -/+ z
    z = norm.ppf(0.975)
    assert tango_statistic(6, 16, 161, low) == pytest.approx(z, abs=1e-6)
    assert tango_statistic(6, 16, 161, high) == pytest.approx(-z, abs=1e-6)


def test_tango_statistic_at_zero_is_the_asymptotic_mcnemar() -> None:
    for gained, lost in [(9, 1), (3, 7), (12, 0)]:
        assert tango_statistic(gained, lost, 50, 0.0) == pytest.approx(
            (gained - lost) / math.sqrt(gained + lost)
        )


def test_tango_interval_edges() -> None:
    none_moved = tango_interval(0, 0, 30)
    assert none_moved[0] < 0 < none_moved[1] and none_moved[0] == pytest.approx(-none_moved[1])
    assert tango_interval(30, 0, 30)[1] == 1.0 and tango_interval(0, 30, 30)[0] == -1.0
    low, high = tango_interval(1, 0, 1)  # one case: no evidence, a wide interval
    assert low < 0 and high == 1.0


def test_paired_proportion_uses_mcnemar_at_zero_margin_and_tango_elsewhere() -> None:
    cand, base = table(b=0, c=4, neither=26)  # 30 cases, 4 gained, 0 lost
    zero = paired_proportion_bound(cand, base, 0.0)
    assert (
        zero.test == "mcnemar_exact"
        and zero.p_value == pytest.approx(0.125) == binomtest(4, 4, 0.5).pvalue
    )
    assert zero.statistic == pytest.approx(4 / 30)
    margin = paired_proportion_bound(cand, base, 0.1)
    z = tango_statistic(4, 0, 30, 0.1)
    assert margin.test == "tango_score" and margin.p_value == pytest.approx(2 * norm.sf(abs(z)))
    assert (margin.low, margin.high) == (zero.low, zero.high) == tango_interval(4, 0, 30)
    same = paired_proportion_bound(*table(b=0, c=0, both=10, neither=10), 0.0)
    assert same.p_value == 1.0 and same.statistic == 0.0


def test_bootstrap_bound_is_one_sided_and_floored() -> None:
    constant = bootstrap_bound(np.full(20, 0.7), 0.5, lower=True, resamples=999)
    assert constant.p_value == pytest.approx(max(1 / 1000, 0.5**20))
    assert constant.low == pytest.approx(0.7) and constant.high == pytest.approx(0.7)
    wrong_side = bootstrap_bound(np.full(20, 0.7), 0.5, lower=False, resamples=999)
    assert wrong_side.p_value == 1.0
    rng = np.random.default_rng(3)
    values = rng.normal(0.6, 0.2, 50)
    result = bootstrap_bound(values, 0.55, lower=True, resamples=2000, seed=1)
    means = values[np.random.default_rng(1).integers(0, 50, size=(2000, 50))].mean(axis=1)
    assert result.p_value == pytest.approx((1 + np.count_nonzero(means <= 0.55)) / 2001)
    assert result.low == pytest.approx(np.quantile(means, 0.05))  # the one-sided 95% bound
    assert (
        bootstrap_bound(np.array([0.9]), 0.1, lower=True).p_value == 0.5
    )  # one case: floored at 0.5**1
