"""Gate rules over a run's scores -> a verdict with the evidence for each rule.

The verdict is `ship` only when every rule passes on complete data: failed requests make the
verdict `error`, because a gate decided on partial results is not a decision a team can defend.
Rules marked `significant` need the CI to clear the bound and a Holm-adjusted p below alpha,
Holm's correction taken over every significant check in the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from harness.compare import per_case
from harness.config import Config, Gate
from harness.stats import compare_paired, holm, mde_sentence, mde_unit, paired_bootstrap

SHIP, DO_NOT_SHIP, ERROR = "ship", "do_not_ship", "error"
EXIT_CODES = {SHIP: 0, DO_NOT_SHIP: 1, ERROR: 2}


@dataclass
class Check:
    """One bound of a rule: the statistic (mean or delta), its CI, and whether it clears."""

    bound_kind: str
    bound: float
    statistic: float
    ci_low: float
    ci_high: float
    p_value: float | None = None
    p_adjusted: float | None = None
    passed: bool = False
    flipped: bool = False  # a relative bound on a lower-is-better metric: the statistic is baseline - candidate

    @property
    def lower(self) -> bool:
        """min / min_delta / max_drop bound the statistic from below; max from above."""
        return self.bound_kind != "max"

    def point_ok(self) -> bool:
        return self.statistic >= self.bound if self.lower else self.statistic <= self.bound

    def ci_ok(self) -> bool:
        return self.ci_low >= self.bound if self.lower else self.ci_high <= self.bound


@dataclass
class GateResult:
    rule: str
    candidate: str
    suite: str
    metric: str
    baseline: str | None
    value: float | None
    n: int
    passed: bool
    reason: str
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    test: str | None = None
    mde: float | None = None
    mde_note: str | None = None
    worst_regressions: list = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


@dataclass
class Verdict:
    decision: str
    reason: str
    gates: list[GateResult] = field(default_factory=list)
    errors: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _statistic_checks(gate: Gate, cand: pd.Series, base: pd.Series | None, config: Config,
                      higher: bool) -> list[Check]:
    """A check per bound. p tests 'statistic differs from the bound' (paired when relative). Relative
    bounds read the delta as a gain: for a lower-is-better metric (TER, perplexity, attack success)
    `max_drop` limits how far it may RISE, `min_delta` how far it must fall."""
    s, seed = config.stats, config.seed
    checks = []
    for kind in ("min", "max", "min_delta", "max_drop"):
        bound = getattr(gate, kind)
        if bound is None:
            continue
        if kind in ("min", "max"):
            values = cand.to_numpy(float)
            reference = np.full(len(values), bound)
        else:
            common = cand.index.intersection(base.index).sort_values()
            values, reference = cand.loc[common].to_numpy(float), base.loc[common].to_numpy(float)
            if not higher:
                values, reference = -values, -reference
            bound = bound if kind == "min_delta" else -bound
            reference = reference + bound
        # the interval of (statistic - bound), shifted back: one bootstrap gives CI and p
        interval = paired_bootstrap(values, reference, resamples=s.resamples, confidence=s.confidence, seed=seed)
        checks.append(Check(kind, bound, interval.delta + bound, interval.low + bound, interval.high + bound,
                            p_value=interval.p_value if gate.significant else None,
                            flipped=not higher and kind not in ("min", "max")))
    return checks


def evaluate(gate: Gate, config: Config, scores: pd.DataFrame, reference: pd.DataFrame | None = None,
             higher: bool = True) -> GateResult:
    """`reference`: the scores relative rules compare with when they are not this run's (drift);
    `higher`: whether a higher value of the metric is better."""
    baseline = config.gate_baseline(gate) if gate.relative else None
    cand = per_case(scores, gate.candidate, gate.suite, gate.metric)
    base = per_case(reference if reference is not None else scores, baseline, gate.suite, gate.metric) \
        if baseline else None
    label = f"{baseline} (pinned run)" if baseline and reference is not None else baseline
    head = dict(rule=gate.label(higher), candidate=gate.candidate, suite=gate.suite, metric=gate.metric, baseline=label)
    if cand.empty or (base is not None and cand.index.intersection(base.index).empty):
        return GateResult(**head, value=None, n=0, passed=False, reason="no scores to judge (every request failed?)")
    result = GateResult(**head, value=float(cand.mean()), n=len(cand), passed=False, reason="",
                        checks=_statistic_checks(gate, cand, base, config, higher))
    if base is not None:
        s = config.stats
        comparison = compare_paired(cand, base, resamples=s.resamples, confidence=s.confidence, seed=config.seed,
                                    alpha=s.alpha, power=s.power, higher_is_better=higher)
        effect = gate.min_delta if gate.min_delta else (gate.max_drop or None)
        result.n = comparison.n
        result.delta, result.ci_low, result.ci_high = comparison.delta, comparison.ci_low, comparison.ci_high
        result.p_value, result.test, result.mde = comparison.p_value, comparison.test, comparison.mde
        unit, per_unit = mde_unit(cand, base)
        result.mde_note = mde_sentence(comparison.mde, comparison.n, effect, unit=unit, per_unit=per_unit)
        result.worst_regressions = comparison.worst_regressions
    else:
        only = result.checks[0]
        result.ci_low, result.ci_high = only.ci_low, only.ci_high
    return result


def _failure(check: Check, alpha: float) -> str | None:
    """Why a check fails, or None. A significant check needs the CI and the adjusted p too."""
    # a flipped check works on the gain (baseline - candidate); it is told as the change Δ (candidate - baseline)
    sign = -1 if check.flipped else 1
    low, high = sorted((sign * check.ci_low, sign * check.ci_high))
    if check.bound_kind in ("min", "max"):
        name, stat, bound = "mean", f"{check.statistic:.3f}", f"{check.bound:g}"
    else:
        name, stat, bound = "Δ", f"{sign * check.statistic:+.3f}", f"{sign * check.bound:+g}"
    if not check.point_ok():
        beyond = "below" if check.lower != check.flipped else "above"
        return f"{name} {stat} is {beyond} {bound}{' (lower is better)' if check.flipped else ''}"
    if check.p_adjusted is None:
        return None
    if not check.ci_ok():
        return f"{name} {stat} but its CI [{low:.3f}, {high:.3f}] does not clear {bound}"
    if check.p_adjusted > alpha:
        return f"{name} {stat} is not significant (Holm-adjusted p = {check.p_adjusted:.3g})"
    return None


def _settle(result: GateResult, alpha: float) -> None:
    """Pass/fail per check once Holm-adjusted p-values are known, and the one-line reason."""
    failures = []
    for check in result.checks:
        why = _failure(check, alpha)
        check.passed = why is None
        if why:
            failures.append(why)
    result.passed = not failures
    if failures:
        result.reason = "; ".join(failures)
        return
    parts = [f"mean {result.value:.3f} over {result.n} cases"]
    if result.delta is not None:
        parts.append(f"Δ {result.delta:+.3f} [{result.ci_low:+.3f}, {result.ci_high:+.3f}] vs {result.baseline}")
    result.reason = ", ".join(parts)


def missing_gated(config: Config, scores: pd.DataFrame) -> pd.DataFrame:
    """Score rows of gated (candidate, suite, metric) with no value: judgements that failed."""
    gated = {(g.candidate, g.suite, g.metric) for g in config.gates}
    empty = scores[scores["value"].isna()]
    keep = [(c, s, m) in gated for c, s, m in zip(empty["candidate"], empty["suite"], empty["metric"])]
    return empty[keep]


def decide(config: Config, scores: pd.DataFrame, errors: int, requests: int,
           reference: pd.DataFrame | None = None, directions: dict[tuple[str, str], bool] | None = None) -> Verdict:
    """`errors`: failed requests. A gated metric with a missing value (a judge error) is as fatal: the
    rule would otherwise be decided on the cases the judge happened to manage."""
    directions = directions or {}
    results = [evaluate(g, config, scores, reference, directions.get((g.suite, g.metric), True)) for g in config.gates]
    significant = [c for r in results for c in r.checks if c.p_value is not None]
    for check, adjusted in zip(significant, holm([c.p_value for c in significant], config.stats.alpha)):
        check.p_adjusted = adjusted.adjusted
    for result in results:
        if result.checks:
            _settle(result, config.stats.alpha)
    if errors:
        return Verdict(ERROR, f"{errors} of {requests} requests failed; no verdict on partial results", results, errors)
    missing = missing_gated(config, scores)
    if not missing.empty:
        first = missing.iloc[0]
        return Verdict(ERROR, f"{len(missing)} scores of gated metrics have no value (e.g. {first.candidate} / "
                              f"{first.suite} / {first.case_id} / {first.metric}: {first.detail}); no verdict on "
                              "partial results", results, len(missing))
    failed = [r for r in results if not r.passed]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return Verdict(DO_NOT_SHIP, f"{failed[0].rule}: {failed[0].reason}{more}", results)
    return Verdict(SHIP, f"all {len(results)} gates pass", results)
