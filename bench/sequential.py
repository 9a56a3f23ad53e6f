"""Sequential gates (`harness compare --stop-when-settled`): how many cases each kind of rule needs
before its verdict is settled, and how often it is wrong, against today's fixed-size tests on the
whole suite.

Thousands of monitored runs at once (numpy over runs), looked at every `--wave` cases, decided
exactly as harness.verdict.settle decides them:

- a rule on the suite's mean: decided at the first look where trace(...) has passed or failed it (at alpha),
  else at the last case by the plain mean. Each run is a random order of one fixed suite; "wrong" is a decision
  other than the whole suite's. Two nulls: the suite's mean exactly at the bound (the suite passes) and one
  step below it (the suite fails);
- a significant rule with split s: passes at a look once combined_p(p_seq, s) <= alpha with the point estimate
  on its side, fails once trace(rule, x, s * alpha) has failed it, and at the last case passes iff
  combined_p(p_seq, s, p_fixed) <= alpha (p_fixed: today's fixed-size test) with the point on its side. s = 1 is
  purely sequential; the data are fresh draws per run; under the null (the boundary of H0) "wrong" is a pass.

    .venv/bin/python bench/sequential.py [--runs 10000] [--cases 500] [--wave 20] [--alpha 0.05]
    [--json PATH]

`--smoke`: 200 runs of 100 cases, so the fast tests keep it working.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy.stats import ttest_1samp

from harness.verdict.sequential import Rule, bounds, combined_p, first, scaled, trace
from harness.verdict.stats import binomial_bound, mcnemar_exact, paired_proportion_bound

SPLITS = (1.0, 0.5, 0.2)
PASS_RATE = 0.7  # the bound of the rules on a pass rate: (a), (e)
DROP = 0.02  # (b): max_drop on a continuous paired delta
MARGIN = 0.05  # (d): non-inferiority, max_drop on a pass/fail paired delta
DISCORDANT = 0.2  # the share of cases exactly one side passes, in (c) and (d)
SPREAD = 0.2  # the sd of a continuous paired gain, in (f)
UNITS = (
    1024  # (b)'s gains are multiples of 1/UNITS, so every order of a suite sums to the same float
)
CHUNK = 2500  # runs per block: bounds memory to a few arrays of CHUNK x cases
FIXED_NOTE = (
    "(f)'s fixed-size test is a paired t-test, standing in for the paired bootstrap (too slow x"
    " 10,000)"
)


@dataclass(frozen=True)
class Row:
    """One (rule, truth, policy): `rate` of the measure (wrong decisions, passes or fails), and the
    share of the suite's cases the decisions needed."""

    kind: str
    truth: str
    measure: str
    policy: str
    rate: float
    median_share: float
    p90_share: float


@dataclass(frozen=True)
class Settings:
    runs: int
    cases: int
    wave: int
    alpha: float
    seed: int

    def looks(self) -> np.ndarray:
        """The case counts at which a run is looked at: every wave, and the last case."""
        return np.unique(np.append(np.arange(self.wave, self.cases + 1, self.wave), self.cases))

    def blocks(self) -> list[int]:
        return [min(CHUNK, self.runs - start) for start in range(0, self.runs, CHUNK)]


# rules on the suite's mean


def pass_rate_suite(
    settings: Settings, rate: float, below: bool, rng: np.random.Generator
) -> np.ndarray:
    """(a): a suite of pass/fail cases whose rate is `rate` (one case fewer when `below`)."""
    passes = int(round(rate * settings.cases)) - below
    return np.array([1.0] * passes + [0.0] * (settings.cases - passes))


def delta_suite(
    settings: Settings, mean: float, below: bool, rng: np.random.Generator
) -> np.ndarray:
    """(b): paired gains of a continuous 0..1 metric (baseline ~ Beta(5, 3), the candidate within sd
    0.1 of it), shifted so their mean is exactly `mean` (one unit less when `below`), scaled from
    [-1, 1]."""
    baseline = rng.beta(5, 3, size=settings.cases)
    gains = np.clip(baseline + rng.normal(0, 0.1, size=settings.cases), 0, 1) - baseline
    units = np.round(gains * UNITS).astype(int)
    missing = int(round(mean * settings.cases * UNITS)) - below - units.sum()
    units += missing // settings.cases
    units[rng.permutation(settings.cases)[: missing % settings.cases]] += 1
    return scaled(units / UNITS, -1, 1)


MEAN_KINDS: dict[str, tuple[str, Callable, float, tuple[float, ...]]] = {
    # key: (label, suite builder, the bound on the metric's scale, effects beside the two nulls)
    "a": (
        f"(a) `min: {PASS_RATE}` on a pass rate, suite mean",
        pass_rate_suite,
        PASS_RATE,
        (0.05, 0.10, -0.05, -0.10),
    ),
    "b": (
        f"(b) `max_drop: {DROP}` on a continuous paired delta, suite mean",
        delta_suite,
        -DROP,
        (0.02, 0.05, -0.02, -0.05),
    ),
}


def mean_rule(settings: Settings, key: str, rng: np.random.Generator) -> list[Row]:
    label, build, bound, effects = MEAN_KINDS[key]
    threshold = PASS_RATE if key == "a" else float(scaled(-DROP, -1, 1))
    rule = Rule("wor_betting", threshold, True, population=settings.cases)
    rows = []
    truths = [("null: mean at the bound", 0.0, False), ("null: one step below", 0.0, True)]
    for truth, effect, below in truths + [
        (f"bound {effect:+.2f}", effect, False) for effect in effects
    ]:
        suite = build(settings, bound + effect, below, rng)
        decided, shares = [], []
        for runs in settings.blocks():
            x = rng.permuted(np.tile(suite, (runs, 1)), axis=1)
            watched = trace(rule, x, settings.alpha)
            looks = settings.looks()
            at = first(watched.passed | watched.failed, looks)
            assert np.all(at >= 0), "a rule on the suite's mean is certain at its last case"
            passed = watched.passed[np.arange(runs), looks[at] - 1]
            whole = bounds(x, settings.cases)[0][:, -1] >= threshold
            undecided = at == len(looks) - 1
            assert np.array_equal(passed[undecided], whole[undecided]), (
                "the last case decides by the plain mean"
            )
            decided.append(passed != whole)
            shares.append(looks[at] / settings.cases)
        wrong, share = np.concatenate(decided), np.concatenate(shares)
        rows.append(
            Row(label, truth, "wrong", "sequential", float(wrong.mean()), *quantiles(share))
        )
    return rows


# significant rules


def paired_tables(
    settings: Settings, effect: float, rng: np.random.Generator, runs: int
) -> np.ndarray:
    """Paired pass/fail gains (+1, 0, -1): DISCORDANT of the cases discordant, the gained minus lost
    rate `effect`."""
    u = rng.random((runs, settings.cases))
    gain, loss = DISCORDANT / 2 + effect / 2, DISCORDANT / 2 - effect / 2
    return np.where(u < gain, 1.0, np.where(u < gain + loss, -1.0, 0.0))


def pair_arrays(gained: int, lost: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate and baseline passes with these discordant counts (the concordant pairs both fail)."""
    candidate = np.array([True] * gained + [False] * (n - gained))
    baseline = np.array([False] * gained + [True] * lost + [False] * (n - gained - lost))
    return candidate, baseline


@lru_cache(maxsize=None)
def mcnemar_p(gained: int, lost: int, n: int) -> float:
    return mcnemar_exact(*pair_arrays(gained, lost, n)).p_value


@lru_cache(maxsize=None)
def tango_p(gained: int, lost: int, n: int) -> float:
    return paired_proportion_bound(*pair_arrays(gained, lost, n), -MARGIN).p_value


@lru_cache(maxsize=None)
def binomial_p(passes: int, n: int) -> float:
    return binomial_bound(np.arange(n) < passes, PASS_RATE, True).p_value


def counted(test: Callable[[int, int, int], float], gains: np.ndarray) -> np.ndarray:
    n = gains.shape[-1]
    return np.array(
        [test(int(g), int(lo), n) for g, lo in zip((gains > 0).sum(-1), (gains < 0).sum(-1))]
    )


@dataclass(frozen=True)
class Significant:
    """A significant rule: its sequence, how runs are drawn at a true effect, how the stream is fed,
    and today's fixed-size p on the whole suite."""

    label: str
    rule: Rule
    null: float
    effects: tuple[float, ...]
    draw: Callable[[Settings, float, np.random.Generator, int], np.ndarray]
    stream: Callable[[np.ndarray], np.ndarray]
    fixed: Callable[[np.ndarray], np.ndarray]


def pass_rates(settings: Settings, rate: float, rng: np.random.Generator, runs: int) -> np.ndarray:
    return (rng.random((runs, settings.cases)) < rate).astype(float)


def continuous_gains(
    settings: Settings, effect: float, rng: np.random.Generator, runs: int
) -> np.ndarray:
    return np.clip(rng.normal(effect, SPREAD, size=(runs, settings.cases)), -1, 1)


SIGNIFICANT = {
    "c": Significant(
        "(c) significant `min_delta: 0`, pass/fail paired",
        Rule("discordant_mixture", 0.5, True, two_sided=True),
        0.0,
        (0.03, 0.05, 0.10, -0.05, -0.10),
        paired_tables,
        lambda g: g,
        lambda g: counted(mcnemar_p, g),
    ),
    "d": Significant(
        f"(d) significant `max_drop: {MARGIN}`, pass/fail paired (non-inferiority)",
        Rule("betting", float(scaled(-MARGIN, -1, 1)), True, two_sided=True),
        -MARGIN,
        (0.0, 0.03, 0.05, -0.10, -0.15),
        paired_tables,
        lambda g: scaled(g, -1, 1),
        lambda g: counted(tango_p, g),
    ),
    "e": Significant(
        f"(e) significant `min: {PASS_RATE}` on a pass rate",
        Rule("betting", PASS_RATE, True),
        PASS_RATE,
        (0.73, 0.75, 0.80, 0.65, 0.60),
        pass_rates,
        lambda x: x,
        lambda x: np.array([binomial_p(int(k), x.shape[-1]) for k in x.sum(-1)]),
    ),
    "f": Significant(
        "(f) significant `min_delta: 0`, continuous paired",
        Rule("betting", 0.5, True, two_sided=True),
        0.0,
        (0.02, 0.03, 0.05, -0.03, -0.05),
        continuous_gains,
        lambda g: scaled(g, -1, 1),
        lambda g: ttest_1samp(g, 0.0, axis=-1).pvalue,
    ),
}


def settle(
    rule: Rule, x: np.ndarray, split: float, p_fixed: np.ndarray, settings: Settings
) -> tuple[np.ndarray, np.ndarray]:
    """(passed, cases used) per run under split `split`, as harness.verdict.settle decides a
    significant check alone in its Holm family."""
    watched = trace(rule, x, split * settings.alpha)
    looks = settings.looks() - 1
    p, ok, failed = watched.p[:, looks], watched.point_ok[:, looks], watched.failed[:, looks]
    passes = (combined_p(p, split) <= settings.alpha) & ok
    passes[:, -1] = (combined_p(p[:, -1], split, p_fixed) <= settings.alpha) & ok[:, -1]
    failed[:, -1] = True  # open at the last case: a fail unless it passed there
    at = np.argmax(passes | failed, axis=-1)  # the first decisive look (the last one always is)
    rows = np.arange(len(x))
    return passes[rows, at], settings.looks()[at]


def significant_rule(settings: Settings, key: str, rng: np.random.Generator) -> list[Row]:
    kind = SIGNIFICANT[key]
    rows = []
    shown = (
        "true rate {:.2f}"
        if kind.rule.test == "betting" and not kind.rule.two_sided
        else "true Δ {:+.2f}"
    )
    truths = [(f"null: {shown.format(kind.null)}", kind.null)] + [
        (shown.format(e), e) for e in kind.effects
    ]
    for truth, effect in truths:
        improving = effect > kind.null
        measure = "false pass" if effect == kind.null else "pass" if improving else "fail"
        outcomes: dict[str, list[np.ndarray]] = {}
        for runs in settings.blocks():
            data = kind.draw(settings, effect, rng, runs)
            x, p_fixed = kind.stream(data), kind.fixed(data)
            ok = trace(kind.rule, x, settings.alpha).point_ok[:, -1]
            outcomes.setdefault("fixed", []).append(
                np.stack([(p_fixed <= settings.alpha) & ok, np.full(runs, settings.cases)])
            )
            for split in SPLITS:
                passed, cases = settle(kind.rule, x, split, p_fixed, settings)
                outcomes.setdefault(f"s={split:g}", []).append(np.stack([passed, cases]))
        for policy, blocks in outcomes.items():
            passed, cases = np.concatenate(blocks, axis=1)
            rate = passed.mean() if measure != "fail" else 1 - passed.mean()
            rows.append(
                Row(
                    kind.label,
                    truth,
                    measure,
                    policy,
                    float(rate),
                    *quantiles(cases / settings.cases),
                )
            )
    return rows


def quantiles(share: np.ndarray) -> tuple[float, float]:
    return float(np.median(share)), float(np.quantile(share, 0.9))


# the tables


def mean_table(rows: list[Row]) -> list[str]:
    lines = [
        "| rule | suite | measure | rate | cases used: median | 90th pct |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.kind} | {r.truth} | {r.measure} | {r.rate:.3f} | {r.median_share:.0%} |"
        f" {r.p90_share:.0%} |"
        for r in rows
    ]
    return lines


def significant_table(rows: list[Row]) -> list[str]:
    """One line per (rule, truth); a cell per policy: the rate, then the cases used (median / 90th
    percentile)."""
    policies = ["fixed"] + [f"s={split:g}" for split in SPLITS]
    lines = [
        "| rule | truth | measure | " + " | ".join(policies) + " |",
        "|---|---|---|" + "---|" * len(policies),
    ]
    by_line: dict[tuple[str, str, str], dict[str, Row]] = {}
    for r in rows:
        by_line.setdefault((r.kind, r.truth, r.measure), {})[r.policy] = r
    for (kind, truth, measure), cells in by_line.items():
        shown = [
            f"{cells[p].rate:.3f} · {cells[p].median_share:.0%}/{cells[p].p90_share:.0%}"
            for p in policies
        ]
        lines.append(f"| {kind} | {truth} | {measure} | " + " | ".join(shown) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10000, help="monitored runs per rule and truth")
    parser.add_argument("--cases", type=int, default=500, help="the suite's size")
    parser.add_argument("--wave", type=int, default=20, help="cases between looks")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--smoke", action="store_true", help="200 runs of 100 cases, for the tests")
    args = parser.parse_args(argv)
    runs, cases = (200, 100) if args.smoke else (args.runs, args.cases)
    settings = Settings(runs, cases, args.wave, args.alpha, args.seed)
    rng = np.random.default_rng(settings.seed)
    started = time.perf_counter()
    mean_rows = [row for key in MEAN_KINDS for row in mean_rule(settings, key, rng)]
    significant_rows = [row for key in SIGNIFICANT for row in significant_rule(settings, key, rng)]
    seconds = time.perf_counter() - started
    print(
        f"{runs} runs per line, suites of {cases} cases, a look every {args.wave}, alpha"
        f" {args.alpha}; paired pass/fail: {DISCORDANT:.0%} discordant; continuous gains: sd"
        f" {SPREAD}"
    )
    print(
        "\nRules on the suite's mean (wor_betting; wrong = decided otherwise than the whole"
        " suite):\n"
    )
    print("\n".join(mean_table(mean_rows)))
    print(
        "\nSignificant rules (cell: rate · cases used median/90th pct; fixed = today's test on"
        " every case; s = alpha_split):\n"
    )
    print("\n".join(significant_table(significant_rows)))
    nulls = [r.rate for r in mean_rows + significant_rows if r.truth.startswith("null")]
    print(
        f"\n{FIXED_NOTE}.\nlargest null error rate: {max(nulls):.3f} (alpha {args.alpha});"
        f" {seconds:.1f} s"
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "settings": asdict(settings),
                    "seconds": seconds,
                    "note": FIXED_NOTE,
                    "rows": [asdict(r) for r in mean_rows + significant_rows],
                },
                out,
                indent=1,
            )


if __name__ == "__main__":
    main()
