"""Paired statistics for comparing a candidate with the baseline on the same cases.

Every test here is paired: both models answered the same cases, so the per-case difference
removes the spread between easy and hard cases, and a suite of a few hundred cases can resolve
changes that unpaired means could not. Everything is seeded: the same scores give the same numbers,
so a stored run re-renders to the same report.

Conventions: scores are per case, higher is better, and a delta is candidate minus baseline.
A "point" is 0.01 on a 0..1 metric (a pass rate of 0.62 is 62 points).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import binom, binomtest, norm

# Bootstrap index blocks are capped at this many entries (32 MB of int64) so that
# 5000 cases x 10000 resamples runs in bounded memory instead of a 400 MB index matrix.
_CHUNK_ENTRIES = 1 << 22

# The sd assumed for a per-case delta when the data cannot give one: the sd of a pass/fail
# score at a 50% pass rate, the widest a single 0..1 score can spread around its mean.
PASS_FAIL_SD = 0.5


@dataclass(frozen=True)
class Interval:
    """A paired bootstrap result: mean delta, its percentile CI and a two-sided p-value for delta !=
    0."""

    delta: float
    low: float
    high: float
    p_value: float
    confidence: float
    resamples: int
    n: int


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test. b: baseline passed, candidate failed; c: candidate passed, baseline
    failed."""

    b: int
    c: int
    n: int
    p_value: float


@dataclass(frozen=True)
class BoundTest:
    """The evidence that one bound of a gate holds: the statistic, an interval from the same test
    (so "p <= alpha" and "the interval clears the bound" tell one story), p, and the test's name."""

    statistic: float
    low: float
    high: float
    p_value: float
    test: str


@dataclass(frozen=True)
class HolmResult:
    p_value: float
    adjusted: float
    reject: bool


@dataclass(frozen=True)
class Comparison:
    """Candidate vs baseline on one (suite, metric): the evidence a gate rule and the report need."""

    n: int
    dropped: int
    binary: bool
    candidate_mean: float
    baseline_mean: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    test: str
    mde: float
    improved: int
    regressed: int
    worst_regressions: list[str | int]

    def as_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(
    candidate: np.ndarray,
    baseline: np.ndarray,
    resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of the mean per-case delta, resampling cases with replacement.

    p-value: the percentile CI inverted, p = 2 * min(share of resampled means <= 0, share >= 0),
    with the usual +1 in numerator and denominator so a finite number of resamples never reports
    p = 0. Being the CI inverted, p < 1 - confidence where the CI excludes 0 (up to that +1 and
    quantile interpolation), so a report's p and CI tell the same story. Ties at 0 count on both
    sides, which is conservative for discrete metrics.

    The bootstrap knows nothing about small samples (one case resamples to itself every time), so
    p is floored at 2 / 2**n: the smallest p the exact sign-flip test on n paired cases can give,
    reached only when every case moved the same way. One case therefore gives p = 1; below about
    6 cases this floor, not the (too narrow) CI, is what keeps p honest.
    """
    deltas = _paired_deltas(candidate, baseline)
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    n = len(deltas)
    # Shifting by one observed delta keeps sums small (less rounding) and makes a constant delta
    # resample to exactly itself: its shifted values are all exactly 0.
    shift = float(deltas[0])
    shifted = deltas - shift
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ENTRIES // n)
    means = (
        np.concatenate(
            [
                shifted[rng.integers(0, n, size=(min(rows, resamples - start), n))].mean(axis=1)
                for start in range(0, resamples, rows)
            ]
        )
        + shift
    )
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    below, above = int(np.count_nonzero(means <= 0)), int(np.count_nonzero(means >= 0))
    p_boot = 2 * (1 + min(below, above)) / (resamples + 1)
    p = min(1.0, max(p_boot, 2 * 0.5**n))
    return Interval(
        delta=shift + float(shifted.mean()),
        low=float(low),
        high=float(high),
        p_value=p,
        confidence=confidence,
        resamples=resamples,
        n=n,
    )


def mcnemar_exact(candidate_pass: np.ndarray, baseline_pass: np.ndarray) -> McNemar:
    """Exact (binomial) McNemar: under no difference each discordant pair is a fair coin flip."""
    cand, base = (
        _as_pass(candidate_pass, "candidate_pass"),
        _as_pass(baseline_pass, "baseline_pass"),
    )
    if cand.shape != base.shape:
        raise ValueError(
            f"candidate and baseline have different lengths ({len(cand)} vs {len(base)})"
        )
    b, c = int(np.count_nonzero(base & ~cand)), int(np.count_nonzero(cand & ~base))
    p = 1.0 if b + c == 0 else min(1.0, 2 * float(binom.cdf(min(b, c), b + c, 0.5)))
    return McNemar(b=b, c=c, n=len(cand), p_value=p)


def minimum_detectable_effect(
    deltas: np.ndarray,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    fallback_sd: float = PASS_FAIL_SD,
    min_cases_for_sd: int = 10,
) -> float:
    """Smallest |mean delta| a two-sided paired test at `alpha` finds with probability `power`.

    Normal approximation: (z_{1-alpha/2} + z_power) * sd(delta) / sqrt(n). The observed sd is
    replaced by the larger of it and `fallback_sd` when it is 0 (usually: nothing changed, which
    says nothing about how much things *could* change) or when fewer than `min_cases_for_sd`
    cases make it an unreliable estimate. Without that, a suite on which both models happened to
    agree everywhere would claim it can detect any change at all. The default fallback suits
    0..1 metrics; pass the scale's own spread (e.g. the baseline's sd) for other metrics.
    """
    values = _finite_1d(deltas, "deltas")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be between 0 and 1, got {alpha} and {power}")
    n = len(values)
    sd = float(values.std(ddof=1)) if n > 1 else 0.0
    if sd == 0 or n < min_cases_for_sd:
        sd = max(sd, fallback_sd)
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * sd / math.sqrt(n))


def detectable(mde: float, effect: float) -> bool:
    """Whether a true change of `effect` (either sign) is within what the suite can detect."""
    return abs(effect) >= mde


def mde_unit(*series: pd.Series) -> tuple[str, float]:
    """The unit an effect is told in: points (0.01) for metrics on a 0..1 scale (pass/fail, rates,
    ROUGE), the metric's own units for the rest (BLEU, TER, perplexity), where "points" would
    mislead."""
    values = np.concatenate([np.asarray(s, dtype=float) for s in series])
    values = values[~np.isnan(values)]
    return (
        ("points", 0.01)
        if values.size and values.min() >= 0 and values.max() <= 1
        else ("units", 1.0)
    )


def mde_sentence(
    mde: float, n: int, effect: float | None = None, *, unit: str = "points", per_unit: float = 0.01
) -> str:
    """One honest line for the report. `per_unit` is one `unit` in metric terms (a point = 0.01).

    The cases needed use MDE ~ 1/sqrt(n): n * (mde / effect)**2.
    """
    cases = f"{n} case{'s' if n != 1 else ''}"
    smallest = f"{mde / per_unit:.3g} {unit}"
    if effect is None:
        return f"{cases} can detect a change of {smallest} or more."
    if effect == 0:
        raise ValueError("effect must be non-zero: no suite can detect a change of 0")
    size = f"{abs(effect) / per_unit:.3g} {unit}"
    if detectable(mde, effect):
        return f"{cases} are enough to detect a change of {size} (smallest detectable: {smallest})."
    needed = math.ceil(n * (mde / effect) ** 2)
    return (
        f"Too few cases to detect a change of {size}: {cases} detect {smallest} or more; "
        f"about {needed} would be needed."
    )


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[HolmResult]:
    """Holm-Bonferroni step-down, in the input order.

    Controls the chance of any false "significant" across all comparisons in a run (candidates x
    suites x metrics) without Bonferroni's full penalty. Adjusted p: the running maximum of
    (m - rank) * p over the ascending p-values, capped at 1; reject where adjusted <= alpha,
    which is the step-down rule exactly (it stops at the first p that fails).
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(
            f"p-values must be a flat sequence of numbers in [0, 1], got {list(p_values)}"
        )
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return [
        HolmResult(p_value=float(pi), adjusted=float(a), reject=bool(a <= alpha))
        for pi, a in zip(p, adjusted)
    ]


def binomial_bound(
    passes: np.ndarray, bound: float, lower: bool, confidence: float = 0.95
) -> BoundTest:
    """Exact one-sided binomial test of a pass rate against an absolute bound.

    H1 is "the rule holds": rate > bound for `min` (lower=True), rate < bound for `max`. The
    interval is the equal-tailed Clopper-Pearson interval at level 2*confidence - 1, so its end on
    the bound's side is the one-sided Clopper-Pearson bound at `confidence`: 10 passes of 10 against
    min 0.95 gives p = 0.95**10 = 0.60 and a 95% lower bound of 0.05**(1/10) = 0.74.
    """
    values = _as_pass(passes, "passes")
    k, n = int(values.sum()), len(values)
    low, high = _clopper_pearson(k, n, 2 * confidence - 1)
    if lower:
        p = (
            0.0
            if bound < 0
            else 1.0
            if bound >= 1
            else binomtest(k, n, bound, alternative="greater").pvalue
        )
    else:
        p = (
            0.0
            if bound > 1
            else 1.0
            if bound <= 0
            else binomtest(k, n, bound, alternative="less").pvalue
        )
    return BoundTest(statistic=k / n, low=low, high=high, p_value=float(p), test="binomial_exact")


def _clopper_pearson(k: int, n: int, level: float) -> tuple[float, float]:
    if level <= 0:
        return k / n, k / n
    ci = binomtest(k, n, 0.5).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def tango_statistic(gained: int, lost: int, n: int, delta0: float) -> float:
    """Tango's (1998) score statistic for H0: p(gained) - p(lost) = delta0 in a paired 2x2 table.

    `gained`: cases the candidate passed and the baseline failed; `lost`: the reverse. The variance
    is taken at the restricted maximum-likelihood estimate of p(lost) under H0, the root of a
    quadratic.
    """
    a = 2 * n
    b = -gained - lost + (2 * n - gained + lost) * delta0
    c = -lost * delta0 * (1 - delta0)
    p_lost = (math.sqrt(max(b * b - 4 * a * c, 0.0)) - b) / (2 * a)
    variance = n * (2 * p_lost + delta0 * (1 - delta0))
    excess = gained - lost - n * delta0
    if variance <= 0:
        return 0.0 if excess == 0 else math.copysign(math.inf, excess)
    return excess / math.sqrt(variance)


def tango_interval(gained: int, lost: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Tango's score interval for the paired difference of pass rates: every delta0 the score test at
    1 - confidence does not reject. Textbook check (Fagerland et al., Cavo 2012: 6 gained, 16 lost of
    161): -0.1240 to -0.0054."""
    if n <= 0:
        raise ValueError("the paired table is empty: no cases to compare")
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    estimate, tol = (gained - lost) / n, 1e-10
    low = (
        -1.0
        if estimate == -1
        else brentq(
            lambda d: tango_statistic(gained, lost, n, d) - z,
            -1 + tol,
            estimate + tol if estimate < 1 else 1 - tol,
            xtol=1e-12,
        )
    )
    high = (
        1.0
        if estimate == 1
        else brentq(
            lambda d: tango_statistic(gained, lost, n, d) + z,
            estimate - tol if estimate > -1 else -1 + tol,
            1 - tol,
            xtol=1e-12,
        )
    )
    return float(low), float(high)


def paired_proportion_bound(
    candidate_pass: np.ndarray, baseline_pass: np.ndarray, margin: float, confidence: float = 0.95
) -> BoundTest:
    """Paired pass/fail delta (candidate - baseline rate) against a margin, two-sided.

    At a zero margin the exact McNemar test decides (the textbook test for "did the pass rate
    change"); at any other margin McNemar does not apply, and Tango's score test for H0: delta =
    margin does. The interval is Tango's score interval either way (the inversion of the score
    test).
    """
    cand, base = (
        _as_pass(candidate_pass, "candidate_pass"),
        _as_pass(baseline_pass, "baseline_pass"),
    )
    if cand.shape != base.shape:
        raise ValueError(
            f"candidate and baseline have different lengths ({len(cand)} vs {len(base)})"
        )
    gained, lost, n = (
        int(np.count_nonzero(cand & ~base)),
        int(np.count_nonzero(base & ~cand)),
        len(cand),
    )
    low, high = tango_interval(gained, lost, n, confidence)
    if margin == 0:
        return BoundTest(
            (gained - lost) / n, low, high, mcnemar_exact(cand, base).p_value, "mcnemar_exact"
        )
    if not -1 < margin < 1:  # a margin no pass rate can reach (or one every delta clears)
        p = 1.0 if (margin >= 1) else 0.0
        return BoundTest((gained - lost) / n, low, high, p, "tango_score")
    z = tango_statistic(gained, lost, n, margin)
    p = 1.0 if z == 0 else float(min(1.0, 2 * norm.sf(abs(z))))
    return BoundTest((gained - lost) / n, low, high, p, "tango_score")


def bootstrap_bound(
    values: np.ndarray,
    bound: float,
    lower: bool,
    resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BoundTest:
    """One-sided percentile-bootstrap test of a mean against an absolute bound (continuous metrics).

    p is the share of resampled means on the wrong side of the bound (ties count against), with the
    usual +1s, floored at 0.5**n like the exact sign test; the interval is the percentile interval
    at level 2*confidence - 1, whose end on the bound's side is the one-sided bound at `confidence`.
    """
    data = _finite_1d(values, "values")
    n = len(data)
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ENTRIES // n)
    means = np.concatenate(
        [
            data[rng.integers(0, n, size=(min(rows, resamples - start), n))].mean(axis=1)
            for start in range(0, resamples, rows)
        ]
    )
    wrong = int(np.count_nonzero(means <= bound if lower else means >= bound))
    p = min(1.0, max((1 + wrong) / (resamples + 1), 0.5**n))
    tail = 1 - confidence
    low, high = np.quantile(means, [tail, 1 - tail])
    return BoundTest(float(data.mean()), float(low), float(high), float(p), "bootstrap_percentile")


def compare_paired(
    candidate: pd.Series,
    baseline: pd.Series,
    *,
    binary: bool | None = None,
    resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    alpha: float = 0.05,
    power: float = 0.8,
    worst: int = 5,
    higher_is_better: bool = True,
) -> Comparison:
    """Compare per-case scores indexed by case id, on the cases both sides scored.

    Cases missing on either side (or NaN: not scored) are dropped and counted, since a silent
    mismatch would compare different questions. Common ids are sorted so the seeded bootstrap does
    not depend on row order. Binary metrics (auto: every value is 0 or 1) get the exact McNemar
    p-value and Tango's score interval; others the paired percentile bootstrap's p and interval.
    `delta` is always candidate - baseline; which cases improved or regressed follows
    `higher_is_better`.
    """
    for name, series in (("candidate", candidate), ("baseline", baseline)):
        if series.index.has_duplicates:
            dupes = series.index[series.index.duplicated()].unique().tolist()
            raise ValueError(f"{name} has duplicate case ids: {dupes[:5]}")
    cand, base = candidate.dropna(), baseline.dropna()
    common = cand.index.intersection(base.index).sort_values()
    if common.empty:
        raise ValueError(
            f"no scored cases in common (candidate has {len(cand)}, baseline {len(base)})"
        )
    dropped = len(candidate.index.union(baseline.index)) - len(common)
    cand_v, base_v = cand.loc[common].to_numpy(float), base.loc[common].to_numpy(float)
    is_binary = is_pass_fail(cand_v, base_v)
    if binary is None:
        binary = is_binary
    elif binary and not is_binary:
        raise ValueError("binary=True but some scores are not 0 or 1")
    interval = paired_bootstrap(
        cand_v, base_v, resamples=resamples, confidence=confidence, seed=seed
    )
    low, high = interval.low, interval.high
    if binary:
        exact = paired_proportion_bound(cand_v == 1, base_v == 1, 0.0, confidence)
        test, p, low, high = exact.test, exact.p_value, exact.low, exact.high
        fallback = PASS_FAIL_SD
    else:
        test, p = "paired_bootstrap", interval.p_value
        base_sd = float(base_v.std(ddof=1)) if len(base_v) > 1 else 0.0
        fallback = base_sd if base_sd > 0 else PASS_FAIL_SD
    deltas = cand_v - base_v
    gains = deltas if higher_is_better else -deltas
    drops = pd.Series(-gains, index=common)
    return Comparison(
        n=len(common),
        dropped=dropped,
        binary=binary,
        candidate_mean=float(cand_v.mean()),
        baseline_mean=float(base_v.mean()),
        delta=interval.delta,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        p_value=p,
        test=test,
        mde=minimum_detectable_effect(deltas, alpha, power, fallback_sd=fallback),
        improved=int(np.count_nonzero(gains > 0)),
        regressed=int(np.count_nonzero(gains < 0)),
        worst_regressions=drops[drops > 0]
        .sort_values(ascending=False, kind="stable")
        .head(worst)
        .index.tolist(),
    )


def is_pass_fail(*values: np.ndarray | pd.Series) -> bool:
    """Whether scores are pass/fail (every value 0 or 1): the exact tests apply to these."""
    array = np.concatenate([np.asarray(v, dtype=float) for v in values])
    return bool(array.size) and bool(np.isin(array, (0, 1)).all())


def _paired_deltas(candidate: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    cand, base = _finite_1d(candidate, "candidate"), _finite_1d(baseline, "baseline")
    if cand.shape != base.shape:
        raise ValueError(
            f"candidate and baseline have different lengths ({len(cand)} vs {len(base)})"
        )
    return cand - base


def _finite_1d(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one score per case (1-D), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: no cases to compare")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has NaN or infinite scores; drop unscored cases first")
    return array


def _as_pass(values: np.ndarray, name: str) -> np.ndarray:
    """Booleans, or 0/1 numbers; anything else is a mistake, not a pass."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one pass/fail per case (1-D), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: no cases to compare")
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must be booleans or 0/1")
    return array.astype(bool)
