"""Settling gates wave by wave (`stop_when_settled`): which cases to run next, and which gates the
cases run so far already decide, with the guarantees of harness.verdict.sequential.

Each suite runs in a seeded random order; wave j asks every (candidate, suite) that an unsettled
gate needs for the first j * wave cases of that order, so a candidate and its baseline always answer
the same cases. After each wave every unsettled gate is looked at, its cases entering each sequence
in the seeded order (never in the order they completed: a slow, often failing, generation would
otherwise arrive late and bias the stream):

- a rule on the suite's mean (no `significant`) is settled once the without-replacement sequence lies wholly on
  one side of its bound (or the unseen cases cannot change it); at the last case that is the plain rule;
- a `significant` rule's anytime-valid p (1 / the running maximum of its e-process) joins the run's Holm family,
  spent `alpha_split` on the looks and the rest on today's fixed-size test at the last case; it passes once its
  Holm-adjusted p is at most alpha with the point estimate on the passing side, fails once its sequence lies
  wholly on the failing side, and a rule still open at the last case is decided there as the fixed path would;
- a metric with no known range (perplexity) gives nothing to bet on: its gate waits for the last case.

Everything is a function of the stored scores and the seed, so a resumed run replays its waves to
the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.planning.config import BOUNDS, Gate, SettleConfig, is_relative
from harness.verdict.bounds import bound_test
from harness.verdict.comparisons import baseline_side, per_case, rows_of
from harness.verdict.sequential import Rule, band, combined_p, scaled, trace
from harness.verdict.stats import holm, is_pass_fail

if TYPE_CHECKING:
    from harness.planning.plan import Plan

PASS, FAIL = "pass", "fail"
Pair = tuple[str, str]  # (candidate, suite)


@dataclass
class CheckState:
    """One bound of a gate. `rule`: None where the metric has no known range (decided at the last
    case); `lo`, `hi`: one observation's range (a case's value, or a paired gain), to scale back to
    the metric's terms.
    """

    bound_kind: str
    significant: bool
    rule: Rule | None = None
    chosen: bool = (
        False  # the rule is chosen at the check's first look and kept: a test never changes mid-run
    )
    lo: float = 0.0
    hi: float = 1.0
    decision: str | None = None
    p_sequential: float = 1.0  # significant: the anytime-valid p at the last look
    p_fixed: float | None = None  # significant: today's fixed-size p, at the last case
    p_value: float | None = None  # significant: the hybrid p that decides (combined_p)
    p_adjusted: float | None = None
    point_ok: bool = False
    failed_early: bool = False  # the sequence lay wholly on the failing side

    @property
    def test(self) -> str:
        """The sequence's name in results.json (`fixed` where the metric gives nothing to bet on)."""
        return self.rule.test if self.rule is not None else "fixed"


@dataclass
class GateState:
    """One gate: the cases of its metric in the suite (`population`), how many of them it has seen,
    and the wave it was settled in."""

    index: int
    population: int
    checks: list[CheckState]
    ids: list[str] = field(
        default_factory=list
    )  # the cases of its metric it has seen, in the order they ran
    wave: int | None = None
    decision: str | None = None
    looks: list[int] = field(default_factory=list)  # cases seen after each wave it was looked at


@dataclass
class Settlement:
    settings: SettleConfig
    orders: dict[str, list[str]]  # suite -> its case ids in the order they run
    gates: list[GateState]
    wave: int = 0  # waves looked at so far

    def done(self) -> bool:
        """Whether more cases can change the verdict: every gate settled, or (fail_fast) one failed."""
        decisions = [g.decision for g in self.gates]
        return None not in decisions or (self.settings.fail_fast and FAIL in decisions)

    def as_dict(self) -> dict:
        return {
            "wave": self.wave,
            "wave_cases": self.settings.wave,
            "alpha_split": self.settings.alpha_split,
            "fail_fast": self.settings.fail_fast,
        }


def start(plan: Plan, settings: SettleConfig) -> Settlement:
    """A settlement at wave 0: nothing looked at yet."""
    seed = plan.config.seed if settings.order_seed is None else settings.order_seed
    orders = {s.name: plan.case_order(s.name, seed) for s in plan.suites}
    gates = [
        GateState(
            i,
            len(plan.expected_cases(g.candidate, g.suite, g.metric)),
            [CheckState(kind, g.significant) for kind in BOUNDS if getattr(g, kind) is not None],
        )
        for i, g in enumerate(plan.config.gates)
    ]
    return Settlement(settings, orders, gates)


def sides(plan: Plan, gate: Gate) -> list[Pair]:
    """The (candidate, suite) pairs a gate reads: its candidate's, and its baseline's for a relative
    rule."""
    return [(gate.candidate, gate.suite)] + (
        [(plan.gate_baseline(gate), gate.suite)] if gate.relative else []
    )


def reach(settlement: Settlement, plan: Plan, pinned: bool = False) -> dict[Pair, int]:
    """How many cases of its suite's order each (candidate, suite) must have answered after the next
    wave. A pair an unsettled gate needs moves on a wave; one no gate needs, and the baseline,
    follow the furthest pair of its suite (so pairwise judges, the report and the ungated
    comparisons see candidates on the same cases); a suite no gate names runs whole, since nothing
    can settle it. `pinned` (drift): the baseline side is the pinned run's, not asked."""
    nxt = settlement.wave + 1
    out: dict[Pair, int] = {}
    gated: dict[str, int] = {}
    for gate, state in zip(plan.config.gates, settlement.gates):
        size = len(settlement.orders[gate.suite])
        for pair in sides(plan, gate)[: 1 if pinned else None]:
            k = (
                min(size, nxt * settlement.settings.wave)
                if state.decision is None
                else _suite_cases(settlement, gate.suite, len(state.ids), plan, gate)
            )
            out[pair] = max(out.get(pair, 0), k)
            gated[gate.suite] = max(gated.get(gate.suite, 0), out[pair])
    baseline = plan.config.baseline_name
    for suite in plan.suites:
        furthest = gated.get(suite.name, len(suite.cases))
        for candidate in plan.answering.get(suite.name, [c.name for c in plan.config.candidates]):
            out.setdefault((candidate, suite.name), furthest)
        if (
            baseline,
            suite.name,
        ) in out:  # pairwise judges and the report compare every candidate with it
            out[(baseline, suite.name)] = max(out[(baseline, suite.name)], furthest)
    return out


def _suite_cases(settlement: Settlement, suite: str, seen: int, plan: Plan, gate: Gate) -> int:
    """The prefix of the suite's order that holds a settled gate's first `seen` cases of its metric."""
    if not seen:
        return 0
    ids = set(plan.expected_cases(gate.candidate, suite, gate.metric))
    count = 0
    for position, case_id in enumerate(settlement.orders[suite], start=1):
        count += case_id in ids
        if count >= seen:
            return position
    return len(settlement.orders[suite])


def wanted(settlement: Settlement, plan: Plan, pinned: bool = False) -> set[tuple[str, str, str]]:
    """(candidate, suite, case id) of every answer the next wave needs (those stored already
    included)."""
    return {
        (candidate, suite, case_id)
        for (candidate, suite), k in reach(settlement, plan, pinned).items()
        for case_id in settlement.orders[suite][:k]
    }


def observe(
    settlement: Settlement, plan: Plan, scores: pd.DataFrame, pinned: pd.DataFrame | None = None
) -> None:
    """Wave `settlement.wave + 1` is stored: look at every unsettled gate over the cases it now has."""
    settlement.wave += 1
    config, alpha, split = plan.config, plan.config.stats.alpha, settlement.settings.alpha_split
    directions = plan.directions()
    for gate, state in zip(config.gates, settlement.gates):
        if state.decision is not None:
            continue
        k = min(len(settlement.orders[gate.suite]), settlement.wave * settlement.settings.wave)
        cand, base = streams(plan, gate, settlement.orders[gate.suite][:k], scores, pinned)
        if cand is None:
            continue  # a row without a value: the verdict is ERROR whatever the gates say
        if state.population == 0:
            state.decision, state.wave = (
                FAIL,
                settlement.wave,
            )  # as the fixed path: no scores to judge
            continue
        state.ids = list(cand.index)
        state.looks.append(len(state.ids))
        higher = directions.get((gate.suite, gate.metric), True)
        binary = pass_fail(scores, gate, cand, base)
        for check in state.checks:
            _watch(check, gate, plan, cand, base, higher, state.population, alpha, split, binary)
    _family(settlement, config.gates, alpha)
    for state in settlement.gates:
        if state.decision is None:
            decisions = [c.decision for c in state.checks]
            state.decision = (
                FAIL if FAIL in decisions else PASS if all(d == PASS for d in decisions) else None
            )
            if state.decision is not None:
                state.wave = settlement.wave


def streams(
    plan: Plan, gate: Gate, prefix: list[str], scores: pd.DataFrame, pinned: pd.DataFrame | None
) -> tuple[pd.Series | None, pd.Series | None]:
    """The gate's values (candidate; baseline for a relative rule) on the cases of `prefix` its
    metric has, in the order of `prefix`; (None, None) while one of them has no value."""
    needed = set(plan.expected_cases(gate.candidate, gate.suite, gate.metric))
    ids = [c for c in prefix if c in needed]
    cand = per_case(scores, gate.candidate, gate.suite, gate.metric)
    base = None
    if gate.relative:
        baseline, source, _ = baseline_side(plan.config, gate, scores, pinned)
        base = per_case(source, baseline, gate.suite, gate.metric)
    for series in (cand, base):
        if series is not None and not set(ids) <= set(series.index):
            return None, None
    return cand.loc[ids], base.loc[ids] if base is not None else None


def observations(
    check: CheckState, cand: pd.Series, base: pd.Series | None, higher: bool
) -> np.ndarray:
    """What the check's sequence is fed, in stream order: a case's value, or its paired gain (the
    -1/0/+1 sign of the gain for the discordant test)."""
    # an absolute bound reads the candidate alone
    if base is None or not is_relative(check.bound_kind):
        return cand.to_numpy(float)
    gain = cand.to_numpy(float) - base.to_numpy(float)
    gain = gain if higher else -gain
    return (
        np.sign(gain)
        if check.rule is not None and check.rule.test == "discordant_mixture"
        else gain
    )


def pass_fail(scores: pd.DataFrame, gate: Gate, cand: pd.Series, base: pd.Series | None) -> bool:
    """Whether the gate's metric is pass/fail: its scorer says pass or fail of every row, each 0 or
    1. Told by the scorer, not by the values alone: a graded metric whose first cases happen to be 0
    or 1 must not be watched by a test of pass/fail pairs that its later values would not fit."""
    rows = rows_of(scores, gate.candidate, gate.suite, gate.metric)
    return (
        bool(len(rows))
        and bool(rows["passed"].notna().all())
        and is_pass_fail(cand, *([] if base is None else [base]))
    )


def _rule(
    check: CheckState,
    gate: Gate,
    plan: Plan,
    cand: pd.Series,
    base: pd.Series | None,
    population: int,
    binary: bool,
) -> Rule | None:
    """The sequence that watches a check; None where the metric has no known range."""
    low, high = plan.metric_bounds(gate.suite, gate.metric)
    if low is None or high is None:
        return None
    bound = getattr(gate, check.bound_kind)
    # absolute, also in a gate that has a relative bound besides
    if not is_relative(check.bound_kind):
        check.lo, check.hi = low, high
        threshold, lower = float(scaled(bound, low, high)), check.bound_kind == "min"
        if check.significant:
            return Rule("betting", threshold, lower)
        return Rule("wor_betting", threshold, lower, population=population)
    width = high - low
    check.lo, check.hi = -width, width
    gain_bound = bound if check.bound_kind == "min_delta" else -bound
    if check.significant and gain_bound == 0 and binary:
        return Rule("discordant_mixture", 0.5, True, two_sided=True)
    threshold = float(scaled(gain_bound, -width, width))
    if check.significant:
        return Rule("betting", threshold, True, two_sided=True)
    return Rule("wor_betting", threshold, True, population=population)


def _watch(
    check: CheckState,
    gate: Gate,
    plan: Plan,
    cand: pd.Series,
    base: pd.Series | None,
    higher: bool,
    population: int,
    alpha: float,
    split: float,
    binary: bool,
) -> None:
    if check.decision is not None:
        return
    if not check.chosen:
        check.rule, check.chosen = _rule(check, gate, plan, cand, base, population, binary), True
    at_end = len(cand) >= population
    if check.significant and at_end:
        check.p_fixed = bound_test(gate, check.bound_kind, cand, base, plan.config, higher)[
            1
        ].p_value
    if check.rule is None:  # nothing to bet on: the fixed rule at the last case
        if at_end:
            bound, fixed = bound_test(gate, check.bound_kind, cand, base, plan.config, higher)
            check.point_ok = (
                fixed.statistic >= bound if check.bound_kind != "max" else fixed.statistic <= bound
            )
            if not check.significant:
                check.decision = PASS if check.point_ok else FAIL
        return
    x = observations(check, cand, base, higher)
    shown = x if check.rule.test == "discordant_mixture" else scaled(x, check.lo, check.hi)
    level = alpha * split if check.significant else alpha
    watched = trace(check.rule, shown, level)
    check.point_ok = bool(watched.point_ok[-1])
    if not check.significant:
        if watched.passed[-1] or watched.failed[-1]:
            check.decision = PASS if watched.passed[-1] else FAIL
        return
    check.p_sequential = float(watched.p[-1])
    check.failed_early = bool(watched.failed[-1])


def _family(settlement: Settlement, gates: list[Gate], alpha: float) -> None:
    """The run's significant checks, Holm-adjusted together on their hybrid p's: a check passes once
    its adjusted p is at most alpha with its point estimate on the passing side, fails once its
    sequence lies on the failing side, and is decided at its last case either way. A settled check
    keeps the p it was settled with.
    """
    split = settlement.settings.alpha_split
    family = [
        (state, check) for state in settlement.gates for check in state.checks if check.significant
    ]
    for _, check in family:
        if check.decision is None:
            if check.rule is None:
                check.p_value = 1.0 if check.p_fixed is None else check.p_fixed
            else:
                check.p_value = float(combined_p(check.p_sequential, split, check.p_fixed))
    for (state, check), adjusted in zip(family, holm([c.p_value for _, c in family], alpha)):
        if check.decision is not None:
            continue
        check.p_adjusted = adjusted.adjusted
        if adjusted.adjusted <= alpha and check.point_ok:
            check.decision = PASS
        elif check.failed_early or len(state.ids) >= state.population:
            check.decision = FAIL


def drawn(
    settlement: Settlement,
    plan: Plan,
    scores: pd.DataFrame,
    pinned: pd.DataFrame | None,
    index: int,
) -> list[dict]:
    """Each check's confidence sequence after every look of gate `index`, in the metric's terms
    (gain terms for a relative rule): [{bound_kind, test, threshold, looks: [[cases, low, high],
    ...]}], for the report.
    """
    gate, state = plan.config.gates[index], settlement.gates[index]
    cand, base = streams(plan, gate, state.ids, scores, pinned)
    higher = plan.directions().get((gate.suite, gate.metric), True)
    alpha, split = plan.config.stats.alpha, settlement.settings.alpha_split
    out = []
    for check in state.checks:
        bound = getattr(gate, check.bound_kind)
        threshold = -bound if check.bound_kind == "max_drop" else bound
        entry = {
            "bound_kind": check.bound_kind,
            "test": check.test,
            "threshold": threshold,
            "looks": [],
        }
        if check.rule is not None and cand is not None and len(cand):
            x = observations(CheckState(check.bound_kind, check.significant), cand, base, higher)
            two_sided = check.rule.two_sided
            level = alpha * split if check.significant else alpha
            low, high = band(
                scaled(x, check.lo, check.hi),
                level,
                (2 if two_sided else 1) / level,
                check.rule.population,
            )
            width = check.hi - check.lo
            entry["looks"] = [
                [n, float(check.lo + low[n - 1] * width), float(check.lo + high[n - 1] * width)]
                for n in state.looks
                if 0 < n <= len(x)
            ]
        out.append(entry)
    return out
