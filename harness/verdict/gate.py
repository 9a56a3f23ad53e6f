"""Gate rules over a run's scores -> a verdict with the evidence for each rule.

The verdict is `ship` only when every rule passes on complete data. `error` (no verdict) when a
request failed, when any row a gate needs is absent or has no value on either side (the plan lists
the rows), when a gated judge metric's judge was not shown to agree with the rubric's labeled
calibration set, or when a gated judge metric was decided mostly by its fallback: a gate decided on
partial or substituted results, or by a judge nobody validated, is not a decision a team can defend.

Rules marked `significant` are decided by the p-value of the test that fits the data, Holm-adjusted over
every significant check in the run (the p shown is the p that decides, with its test's name):
- pass/fail metrics, absolute bound: the exact one-sided binomial test (Clopper-Pearson bound);
- pass/fail metrics, paired against the baseline: McNemar's exact test at a zero margin, Tango's score
  test at any other (with Tango's score interval);
- continuous metrics: the paired percentile bootstrap (absolute bounds: the one-sided bootstrap).

What no gate covers is not silent: every comparison of a candidate with its baseline on a (suite,
metric) no gate names is checked too, and a significant regression among them is listed with the
verdict (UngatedRegression); `gate_policy: {ungated_regressions: fail}` makes it DO NOT SHIP.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd

from harness.planning.config import BOUNDS, Config, Gate, is_relative, shown
from harness.scoring.calibration import reading
from harness.verdict.bounds import bound_test
from harness.verdict.comparisons import Directions, baseline_side, comparisons, per_case, rows_of
from harness.verdict.stats import (
    compare_paired,
    holm,
    mde_sentence,
    mde_unit,
)

if TYPE_CHECKING:
    from harness.verdict.evidence import Evidence, Expected, Judges
    from harness.verdict.settle import GateState

SHIP, DO_NOT_SHIP, ERROR = "ship", "do_not_ship", "error"
EXIT_CODES = {SHIP: 0, DO_NOT_SHIP: 1, ERROR: 2}
LABELS = {
    SHIP: "SHIP",
    DO_NOT_SHIP: "DO NOT SHIP",
    ERROR: "ERROR: NO VERDICT",
}  # the words every output uses
SHOWN_IDS = 5  # case ids named in an error before "..."
POLICY = (  # how a reason names the policy that made a regression block
    "gate_policy.ungated_regressions: fail"
)


@dataclass
class BoundResult:
    """One bound of a rule: the statistic (mean or delta), the deciding test's interval and p, and
    whether it clears."""

    bound_kind: str
    bound: float
    statistic: float
    ci_low: float
    ci_high: float
    test: str = ""
    p_value: float | None = None  # significant rules only: the p that decides
    p_adjusted: float | None = None
    passed: bool = False
    flipped: bool = (
        False  # a relative bound on a lower-is-better metric: the statistic is baseline - candidate
    )

    @property
    def lower(self) -> bool:
        """min / min_delta / max_drop bound the statistic from below; max from above."""
        return self.bound_kind != "max"

    def point_ok(self) -> bool:
        return self.statistic >= self.bound if self.lower else self.statistic <= self.bound


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
    checks: list[BoundResult] = field(default_factory=list)
    missing: int = 0  # rows the gate needs that are absent or have no value (both sides)
    fallbacks: int = 0  # values decided by a judge's fallback instead of the judge (both sides)
    fallback_share: float = 0.0
    judge: dict | None = (
        None  # a judge metric: its judge's calibration (judging.calibrate.JudgeCalibration)
    )
    settled: dict | None = (
        None  # stop_when_settled: when it was decided, and each check's sequence (see settled_view)
    )


@dataclass
class UngatedRegression:
    """A comparison of a candidate with its baseline that no gate covers (none names its candidate,
    suite and metric) and that went the wrong way with evidence: its CI lies on the worse side of
    zero in the metric's direction and its p, Holm-adjusted over every ungated comparison of the
    run, is at most alpha. The figures are the comparison's, as the report's table shows them;
    `blocks`: gate_policy.ungated_regressions is fail.
    """

    candidate: str
    baseline: str
    suite: str
    metric: str
    higher_is_better: bool
    n: int
    candidate_mean: float
    baseline_mean: float
    delta: float
    ci_low: float
    ci_high: float
    test: str
    p_value: float
    p_adjusted: float
    blocks: bool = False


def regression_text(regression: Mapping[str, Any]) -> str:
    """An ungated regression (as results.json holds it) in the words every output uses."""
    r = regression
    lower = " (lower is better)" if not r["higher_is_better"] else ""
    return (
        f"{r['candidate']} / {r['suite']} / {r['metric']}: {r['baseline_mean'] + 0.0:.3f} →"
        f" {r['candidate_mean'] + 0.0:.3f}{lower}, Δ {r['delta'] + 0.0:+.3f}"
        f" [{r['ci_low'] + 0.0:+.3f}, {r['ci_high'] + 0.0:+.3f}] vs {r['baseline']} over {r['n']}"
        f" cases, {r['test']} p = {r['p_value']:.3g} (Holm {r['p_adjusted']:.3g})"
    )


def ungated(verdict: Mapping[str, Any]) -> list[dict]:
    """A stored verdict's ungated regressions (results.json's); none in one stored before they were
    checked."""
    return verdict.get("ungated_regressions") or []


def regressions_heading(regressions: Sequence[Mapping[str, Any]]) -> str:
    """What a list of ungated regressions is, and whether it changed the verdict, in the words every
    output uses."""
    n = len(regressions)
    what = f"{n} significant regression{'s' * (n > 1)} no gate covers"
    if any(r.get("blocks") for r in regressions):
        return f"{what}: each is DO NOT SHIP ({POLICY})"
    return (
        f"{what}: warnings, the verdict stands (gate_policy: {{ungated_regressions: fail}} would"
        " block on them)"
    )


@dataclass
class Verdict:
    decision: str
    reason: str
    gates: list[GateResult] = field(default_factory=list)
    errors: int = 0
    ungated_regressions: list[UngatedRegression] = field(default_factory=list)
    savings: dict | None = (
        None  # stop_when_settled: the waves, and the cases, requests and tokens against a full run
    )
    comparisons: list[dict] | None = (
        None  # each candidate against its baseline, for the report (None: not decided)
    )

    def as_dict(self) -> dict:
        """As results.json and the store hold it, where the savings keep their first key, `settle`."""
        return {
            ("settle" if key == "savings" else key): value for key, value in asdict(self).items()
        }


def _bound_results(
    gate: Gate, cand: pd.Series, base: pd.Series | None, config: Config, higher: bool
) -> list[BoundResult]:
    checks = []
    for kind in BOUNDS:
        if getattr(gate, kind) is None:
            continue
        bound, test = bound_test(gate, kind, cand, base, config, higher)
        checks.append(
            BoundResult(
                kind,
                bound,
                test.statistic,
                test.low,
                test.high,
                test=test.test,
                p_value=test.p_value if gate.significant else None,
                flipped=not higher and is_relative(kind),
            )
        )
    return checks


def evaluate(
    gate: Gate,
    config: Config,
    scores: pd.DataFrame,
    pinned: pd.DataFrame | None = None,
    higher: bool = True,
    mde_alpha: float | None = None,
) -> GateResult:
    """`pinned`: the scores relative rules compare with when they are not this run's (drift);
    `higher`: whether a higher value of the metric is better; `mde_alpha`: the level the MDE note is
    told at (a significant rule: alpha after the run's Holm correction at its strictest)."""
    baseline, source, label = (
        baseline_side(config, gate, scores, pinned) if gate.relative else (None, None, None)
    )
    cand = per_case(scores, gate.candidate, gate.suite, gate.metric)
    base = per_case(source, baseline, gate.suite, gate.metric) if baseline else None
    head = dict(
        rule=gate.label(higher),
        candidate=gate.candidate,
        suite=gate.suite,
        metric=gate.metric,
        baseline=label,
    )
    if cand.empty or (base is not None and cand.index.intersection(base.index).empty):
        return GateResult(**head, value=None, n=0, passed=False, reason="no scores to judge")
    result = GateResult(
        **head,
        value=float(cand.mean()),
        n=len(cand),
        passed=False,
        reason="",
        checks=_bound_results(gate, cand, base, config, higher),
    )
    primary = next((c for c in result.checks if c.p_value is not None), None)
    if base is not None:
        s = config.stats
        # a significant rule with a margin is told what it can detect beyond the margin, at the
        # adjusted alpha
        margin = bool(gate.min_delta or gate.max_drop)
        alpha = mde_alpha if gate.significant and margin and mde_alpha is not None else s.alpha
        comparison = compare_paired(
            cand,
            base,
            resamples=s.resamples,
            confidence=s.confidence,
            seed=config.seed,
            alpha=alpha,
            power=s.power,
            higher_is_better=higher,
        )
        result.n = comparison.n
        result.delta, result.ci_low, result.ci_high = (
            comparison.delta,
            comparison.ci_low,
            comparison.ci_high,
        )
        result.p_value, result.test, result.mde = (
            comparison.p_value,
            comparison.test,
            comparison.mde,
        )
        result.worst_regressions = comparison.worst_regressions
        result.mde_note = _mde_note(
            gate,
            cand,
            base,
            comparison.mde,
            comparison.n,
            s.power,
            alpha if gate.significant else None,
        )
    else:
        only = result.checks[0]
        result.ci_low, result.ci_high = only.ci_low, only.ci_high
    if primary is not None:  # the p shown is the p that decides
        result.p_value, result.test = primary.p_value, primary.test
    return result


def _mde_note(
    gate: Gate,
    cand: pd.Series,
    base: pd.Series,
    mde: float,
    n: int,
    power: float,
    alpha: float | None,
) -> str:
    """What the suite can detect (`mde`, at `alpha`). A significant rule with a margin is told
    beyond the margin: the test asks whether the delta clears the margin, not whether it is
    non-zero."""
    unit, per_unit = mde_unit(cand, base)
    margin = gate.min_delta if gate.min_delta is not None else -(gate.max_drop or 0.0)
    if alpha is None or not margin:
        effect = gate.min_delta if gate.min_delta else (gate.max_drop or None)
        return mde_sentence(mde, n, effect, unit=unit, per_unit=per_unit)
    beyond = mde
    size = lambda v: f"{v / per_unit:.3g} {unit}"  # noqa: E731
    return (
        f"{n} cases detect a true gain of {size(beyond)} or more beyond the"
        f" {shown(margin, signed=True)} margin (a true Δ of {margin + beyond:+.3g} in gain terms)"
        f" at α = {alpha:.3g} after Holm, with {power:.0%} power."
    )


def _failure(check: BoundResult, alpha: float) -> str | None:
    """Why a check fails, or None. A significant check also needs its adjusted p at or below alpha."""
    # a flipped check works on the gain (baseline - candidate); it is told as the change Δ
    # (candidate - baseline)
    sign = -1 if check.flipped else 1
    if not is_relative(check.bound_kind):
        name, stat, bound = "mean", f"{check.statistic + 0.0:.3f}", shown(check.bound)
    else:  # (+ 0.0 turns a -0.0 into 0.0)
        name, stat, bound = (
            "Δ",
            f"{sign * check.statistic + 0.0:+.3f}",
            shown(sign * check.bound, signed=True),
        )
    if not check.point_ok():
        beyond = "below" if check.lower != check.flipped else "above"
        return f"{name} {stat} is {beyond} {bound}{' (lower is better)' if check.flipped else ''}"
    if check.p_adjusted is None or check.p_value is None:
        return None
    if check.p_adjusted > alpha:
        return (
            f"{name} {stat} clears {bound} but not significantly: {check.test} p ="
            f" {check.p_value:.3g}, Holm-adjusted {check.p_adjusted:.3g} > α {alpha:g}"
        )
    return None


def _conclude(result: GateResult, alpha: float) -> None:
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
        parts.append(
            f"Δ {result.delta + 0.0:+.3f} [{result.ci_low + 0.0:+.3f}, {result.ci_high + 0.0:+.3f}]"
            f" vs {result.baseline}"
        )
    significant = [c for c in result.checks if c.p_adjusted is not None]
    parts += [f"{c.test} p = {c.p_value:.3g} (Holm {c.p_adjusted:.3g})" for c in significant]
    result.reason = ", ".join(parts)


def _settled_result(
    gate: Gate,
    state: GateState,
    drawn: list[dict],
    config: Config,
    scores: pd.DataFrame,
    pinned: pd.DataFrame | None,
    higher: bool,
    mde_alpha: float,
) -> GateResult:
    """A gate as its settlement decided it: the figures are those of the cases it saw when it was
    settled (the cases a later wave added for other gates do not move it), each check's interval is
    its confidence sequence there, and a significant check's p the hybrid anytime-valid p that
    decided it."""
    ids = set(state.ids)
    seen = [
        None if f is None else f[(f["suite"] != gate.suite) | f["case_id"].isin(ids)]
        for f in (scores, pinned)
    ]
    result = evaluate(gate, config, seen[0], seen[1], higher, mde_alpha)
    for check, watched, sequence in zip(result.checks, state.checks, drawn):
        check.passed = watched.decision == "pass"
        if watched.significant:
            check.p_value, check.p_adjusted = watched.p_value, watched.p_adjusted
            check.test = (
                watched.test
                if watched.p_fixed is None or watched.rule is None
                else f"{watched.test} + {check.test}"
            )
        if sequence["looks"]:
            check.ci_low, check.ci_high = sequence["looks"][-1][1:]
    primary = next((c for c in result.checks if c.p_value is not None), None)
    if primary is not None:
        result.p_value, result.test = primary.p_value, primary.test
    result.settled = {
        "decision": state.decision,
        "wave": state.wave,
        "cases": len(state.ids),
        "population": state.population,
        "saved": 1 - len(state.ids) / state.population if state.population else 0.0,
        "checks": [
            {
                **sequence,
                "significant": w.significant,
                "decision": w.decision,
                "p_sequential": w.p_sequential if w.significant else None,
                "p_fixed": w.p_fixed,
                "failed_early": w.failed_early,
            }
            for w, sequence in zip(state.checks, drawn)
        ],
    }
    where = (
        f"settled after {len(state.ids)} of {state.population} cases (wave {state.wave})"
        if state.decision is not None
        else (
            f"not settled after {len(state.ids)} of {state.population} cases: the run stopped"
            " before (fail_fast, or a row without a value)"
        )
    )
    if not result.checks or result.n == 0:
        return result
    failures = [
        _failure(c, config.stats.alpha) or _sequence_failure(c)
        for c in result.checks
        if not c.passed
    ]
    result.passed = state.decision == "pass"
    if not result.passed:
        result.reason = f"{where}: " + "; ".join(failures or ["not settled"])
        return result
    _conclude(result, config.stats.alpha)
    result.reason = f"{where}: {result.reason}"
    return result


def _sequence_failure(check: BoundResult) -> str:
    """Why a check whose point estimate is on the passing side failed: its sequence says the suite
    is not."""
    sign = -1 if check.flipped else 1
    name = "Δ" if is_relative(check.bound_kind) else "mean"
    low, high = sorted((sign * check.ci_low + 0.0, sign * check.ci_high + 0.0))
    return (
        f"{name} {sign * check.statistic + 0.0:+.3f} on the cases seen, but its confidence sequence"
        f" [{low:+.3f}, {high:+.3f}] lies beyond {shown(sign * check.bound, signed=True)}"
    )


def _is_fallback(rows: pd.DataFrame) -> pd.Series:
    """Score rows whose value a judge's fallback (the refusal detector) decided, not the judge."""
    if "meta_json" not in rows.columns:
        return pd.Series(False, index=rows.index)
    return (
        rows["meta_json"]
        .map(lambda m: isinstance(m, str) and bool(json.loads(m).get("fallback")))
        .astype(bool)
    )


@dataclass
class Coverage:
    """One side of a gate measured against the rows the plan says it needs."""

    who: str
    needed: int
    missing: list[str]
    detail: (
        str | None
    )  # the first missing row's stored reason (a judge error, say), when it may be shown
    fallbacks: int


def _coverage(
    scores: pd.DataFrame,
    who: str,
    label: str,
    suite: str,
    metric: str,
    needed: Sequence[str],
    show_detail: bool,
) -> Coverage:
    rows = rows_of(scores, who, suite, metric)
    valued = rows[rows["value"].notna()]
    have = set(valued["case_id"])
    missing = [c for c in needed if c not in have]
    detail = None
    if missing and show_detail and "detail" in rows.columns:
        empty = rows[rows["value"].isna() & rows["case_id"].isin(missing)]
        detail = next((d for d in empty["detail"] if isinstance(d, str) and d), None)
    fallbacks = int(_is_fallback(valued[valued["case_id"].isin(needed)]).sum())
    return Coverage(label, len(needed), missing, detail, fallbacks)


def _needed(
    expected: Expected | None,
    scores: pd.DataFrame,
    pinned: pd.DataFrame | None,
    candidate: str,
    suite: str,
    metric: str,
) -> list[str]:
    """The case ids a side must have: the plan's list, else every case any candidate has for the
    metric."""
    if expected is not None and (candidate, suite, metric) in expected:
        return list(expected[(candidate, suite, metric)])
    frames = [scores] + ([pinned] if pinned is not None else [])
    ids = pd.concat([f[(f.suite == suite) & (f.metric == metric)]["case_id"] for f in frames])
    return sorted(set(ids), key=str)


def coverage(
    gate: Gate,
    config: Config,
    scores: pd.DataFrame,
    pinned: pd.DataFrame | None,
    expected: Expected | None,
) -> list[Coverage]:
    """Both sides of a gate (the candidate; the baseline or pinned run for a relative rule)."""
    show = gate.suite not in set(config.report.redact_suites)
    sides = [
        _coverage(
            scores,
            gate.candidate,
            gate.candidate,
            gate.suite,
            gate.metric,
            _needed(expected, scores, pinned, gate.candidate, gate.suite, gate.metric),
            show,
        )
    ]
    if gate.relative:
        baseline, source, label = baseline_side(config, gate, scores, pinned)
        sides.append(
            _coverage(
                source,
                baseline,
                label,
                gate.suite,
                gate.metric,
                _needed(expected, scores, pinned, baseline, gate.suite, gate.metric),
                show,
            )
        )
    return sides


def _missing_sentence(gate: Gate, sides: list[Coverage]) -> str:
    parts = []
    for side in sides:
        if side.missing:
            ids = ", ".join(map(str, side.missing[:SHOWN_IDS])) + (
                ", ..." if len(side.missing) > SHOWN_IDS else ""
            )
            why = f"; e.g. {side.detail[:300]}" if side.detail else ""
            parts.append(
                f"{len(side.missing)} of {side.needed} rows of {side.who} / {gate.suite} /"
                f" {gate.metric} have no value ({ids}{why})"
            )
    return "; ".join(parts)


def unvalidated_judge(rubric: str, calibrated: bool, check: dict | None) -> str | None:
    """Why a judge metric's judge may not gate, or None when its calibration check meets the
    rubric's bar."""
    if not calibrated:
        return (
            f"rubric {rubric!r} has no calibration set, so its judge was never shown to agree with"
            " labeled examples (fix: add `calibration:` with labeled items to the rubric; see"
            " judges/calibration/)"
        )
    if check is None:
        return (
            f"the judge of rubric {rubric!r} was not checked against its calibration set in"
            " this run"
        )
    if check["validated"]:
        return None
    value = "undefined" if check["value"] is None else f"{check['value']:.2f}"
    ci = (
        f" [{check['ci_low']:.2f}, {check['ci_high']:.2f}]"
        if check.get("ci_low") is not None
        else ""
    )
    return (
        f"{check['judge']} agrees with the {rubric!r} calibration set at {check['statistic']}"
        f" {value}{ci} (n={check['items']}, {reading(check)}), below the rubric's bar"
        f" {check['min_agreement']:g} (fix: judge with a stronger model, `judge: {{endpoint:"
        f" {{...}}}}` in the config, and check it with `harness judge calibrate {rubric} --config"
        " CONFIG`)"
    )


def ungated_regressions(
    config: Config, compared: list[dict], directions: Directions, judges: Judges | None = None
) -> list[UngatedRegression]:
    """Every significant regression no gate covers, in the order of the candidates, then of the
    plan's suites and metrics (`directions`). `compared`: the report's comparisons (each candidate
    against the baseline; in drift against its pinned self); the Holm family is every ungated one
    that has a p: a family of only those that went the wrong way would be chosen by the data. A
    judge metric whose judge was not shown to agree with its calibration set tells nothing, so it is
    no regression either (the report marks it "unvalidated judge").
    """
    gated = {(g.candidate, g.suite, g.metric) for g in config.gates}
    candidates = [c.name for c in config.candidates]
    rows = [
        row
        for row in compared
        if (row["candidate"], row["suite"], row["metric"]) not in gated and _tells(row, judges)
    ]
    alpha, blocks = config.stats.alpha, config.gate_policy.ungated_regressions == "fail"
    fields = [
        f for f in UngatedRegression.__dataclass_fields__ if f not in ("p_adjusted", "blocks")
    ]
    found = [
        UngatedRegression(
            **{f: row[f] for f in fields}, p_adjusted=adjusted.adjusted, blocks=blocks
        )
        for row, adjusted in zip(rows, holm([r["p_value"] for r in rows], alpha))
        if row["outcome"] == "worse" and adjusted.adjusted <= alpha
    ]
    place = {key: i for i, key in enumerate(directions)}
    return sorted(
        found,
        key=lambda r: (
            candidates.index(r.candidate),
            place.get((r.suite, r.metric), len(place)),
            r.suite,
            r.metric,
        ),
    )


def _tells(row: dict, judges: Judges | None) -> bool:
    """Whether a comparison row can be a regression: it has a p, and a judge metric's judge met its
    bar."""
    if row["p_value"] is None or not math.isfinite(row["p_value"]):
        return False
    judge = (judges or {}).get((row["suite"], row["metric"]))
    return (
        judge is None
        or unvalidated_judge(judge["rubric"], judge["calibrated"], judge["check"]) is None
    )


def decide(config: Config, evidence: Evidence) -> Verdict:
    """A gated row that is absent or has no value, on either side, is as fatal as a failed request:
    the rule would otherwise be decided on the cases that happened to work. A gate on a judge metric
    whose judge did not meet the bar is no verdict. The ungated regressions are listed whatever the
    decision; they change it only under gate_policy `fail`, and never an ERROR. A settled run's
    gates are decided by their settlements, on the cases each saw, instead of the fixed-size tests.
    The comparisons are kept with the verdict for the report.
    """
    e = evidence
    verdict = _decide(config, e)
    verdict.savings = e.savings
    verdict.comparisons = compared = comparisons(
        e.scores,
        [c.name for c in config.candidates],
        config.baseline_name,
        config.stats,
        config.seed,
        e.pinned,
        e.directions,
    )
    verdict.ungated_regressions = ungated_regressions(config, compared, e.directions, e.judges)
    blocking = [r for r in verdict.ungated_regressions if r.blocks]
    if blocking and verdict.decision == SHIP:
        more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
        verdict.decision = DO_NOT_SHIP
        verdict.reason = (
            f"a significant regression no gate covers ({POLICY}): "
            f"{regression_text(asdict(blocking[0]))}{more}"
        )
    elif blocking and verdict.decision == DO_NOT_SHIP:
        verdict.reason += (
            f"; and {len(blocking)} significant regression{'s' * (len(blocking) > 1)} no gate "
            f"covers ({POLICY})"
        )
    return verdict


def _decide(config: Config, e: Evidence) -> Verdict:
    """The gates' verdict alone (see decide)."""
    significant_checks = sum(
        sum(getattr(g, b) is not None for b in BOUNDS) for g in config.gates if g.significant
    )
    mde_alpha = config.stats.alpha / max(significant_checks, 1)
    if e.settled is not None:
        results = [
            _settled_result(
                g,
                state,
                drawn,
                config,
                e.scores,
                e.pinned,
                e.directions.get((g.suite, g.metric), True),
                mde_alpha,
            )
            for g, (state, drawn) in zip(config.gates, e.settled)
        ]
    else:
        results = [
            evaluate(
                g,
                config,
                e.scores,
                e.pinned,
                e.directions.get((g.suite, g.metric), True),
                mde_alpha,
            )
            for g in config.gates
        ]
        significant = [c for r in results for c in r.checks if c.p_value is not None]
        for check, adjusted in zip(
            significant, holm([c.p_value for c in significant], config.stats.alpha)
        ):
            check.p_adjusted = adjusted.adjusted
        for result in results:
            if result.checks:
                _conclude(result, config.stats.alpha)
    incomplete, substituted, unvalidated = [], [], []
    limit = config.judge.max_fallback_share
    for gate, result in zip(config.gates, results):
        judge = (e.judges or {}).get((gate.suite, gate.metric))
        if judge is not None:
            result.judge = judge["check"]
            why = unvalidated_judge(judge["rubric"], judge["calibrated"], judge["check"])
            if why is not None:
                result.passed, result.reason = False, f"unvalidated judge: {why}"
                unvalidated.append(f"{result.rule}: {why}")
        sides = coverage(gate, config, e.scores, e.pinned, e.expected)
        result.missing = sum(len(s.missing) for s in sides)
        needed = sum(s.needed for s in sides)
        result.fallbacks = sum(s.fallbacks for s in sides)
        result.fallback_share = result.fallbacks / needed if needed else 0.0
        if result.missing:
            why = _missing_sentence(gate, sides)
            result.passed, result.reason = False, f"incomplete: {why}"
            incomplete.append(f"{result.rule}: {why}")
        if result.fallbacks:
            share = (
                f"{result.fallbacks} of {needed} values decided by the judge's refusal fallback "
                f"({result.fallback_share:.0%}; limit {limit:.0%})"
            )
            result.reason = f"{result.reason}; {share}" if result.reason else share
            if result.fallback_share > limit:
                result.passed = False
                substituted.append(f"{result.rule}: {share}")
    if e.errors:
        return Verdict(
            ERROR,
            f"{e.errors} of {e.requests} requests failed; no verdict on partial results",
            results,
            e.errors,
        )
    if incomplete:
        missing = sum(r.missing for r in results)
        return Verdict(
            ERROR,
            f"{missing} rows that gates need have no value; no verdict on partial data: "
            + " | ".join(incomplete),
            results,
            missing,
        )
    if unvalidated:
        return Verdict(
            ERROR,
            "gated judge metrics rest on a judge that was not shown to agree with labeled "
            "examples: " + " | ".join(unvalidated),
            results,
        )
    if substituted:
        return Verdict(
            ERROR,
            "gated judge metrics were decided mostly by the fallback, not the judge "
            "(judge.max_fallback_share): " + " | ".join(substituted),
            results,
        )
    failed = [r for r in results if not r.passed]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return Verdict(DO_NOT_SHIP, f"{failed[0].rule}: {failed[0].reason}{more}", results)
    return Verdict(SHIP, f"all {len(results)} gates pass", results)
