"""Anytime-valid evidence for gates watched case by case: what may be looked at after every wave of
cases without inflating the error rate, so a run can stop as soon as its verdict is settled.

Three sequences, each small and pure (numpy arrays in, arrays out, the last axis is time, so a
benchmark can run thousands of monitored runs at once):

- `betting_evidence`: the capital of betting that a bounded mean is above (`up`) or below (`down`) a value,
  with the hedged predictable plug-in bets of Waudby-Smith & Ramdas, "Estimating means of bounded random
  variables by betting" (JRSS-B 2023, PrPl-EB bets, c = 1/2). With `population=N` it is the without-replacement
  form of Waudby-Smith & Ramdas, "Confidence sequences for sampling without replacement" (NeurIPS 2020): each
  bet is centred on the mean the cases not yet seen must have if the suite's mean is the value, so the sequence
  narrows to the suite's exact mean at its last case.
- `discordant_evidence`: a mixture sequential probability ratio test on the discordant pairs of a paired
  pass/fail comparison (the cases exactly one side passed), against "each is a fair coin" (McNemar's null),
  with a Beta(a, a) mixture over the coin's bias, split into its halves above and below 1/2.
- `band`: the confidence sequence itself, on a grid of values, for the report.

Each capital process is a nonnegative (super)martingale under its null, so by Ville's inequality it
ever reaches 1/alpha with probability at most alpha: `anytime_p` (1 / its running maximum) is a
p-value valid at any stopping time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betainc, betaln

# c: no bet risks more than half of the capital. The papers truncate at c / m (c / (1 - m)) only;
# capping every bet too is steadier on pass/fail data and costs graded metrics some speed at split 1
# (bench/sequential.py).
BET_CAP = 0.5


def scaled(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Observations on [lo, hi] mapped to [0, 1], where the bets are made."""
    if not hi > lo:
        raise ValueError(f"a range needs hi > lo, got [{lo}, {hi}]")
    return np.clip((np.asarray(values, dtype=float) - lo) / (hi - lo), 0.0, 1.0)


def plugin_bets(x: np.ndarray, alpha: float, cap: float = BET_CAP) -> np.ndarray:
    """The predictable plug-in bet sizes: bet t uses x_1..x_{t-1} only (PrPl-EB, eq. 26 of the 2023
    paper: lambda_t = sqrt(2 log(2/alpha) / (sigma2_{t-1} t log(1 + t))), capped at `cap`). The
    variance estimate starts at 1/4 around 1/2, so the first bets are modest and bets grow as the
    observations turn out to agree.
    """
    x = np.asarray(x, dtype=float)
    t = np.arange(1, x.shape[-1] + 1, dtype=float)
    mean = (0.5 + np.cumsum(x, axis=-1)) / (t + 1)
    spread = (0.25 + np.cumsum((x - mean) ** 2, axis=-1)) / (t + 1)
    before = np.concatenate([np.full(x.shape[:-1] + (1,), 0.25), spread[..., :-1]], axis=-1)
    return np.minimum(np.sqrt(2 * np.log(2 / alpha) / (before * t * np.log1p(t))), cap)


def centres(x: np.ndarray, m: float | np.ndarray, population: int | None) -> np.ndarray:
    """What each observation's conditional mean is under "the mean is m": m itself when cases are
    drawn with replacement (a super-population), else the mean the cases not yet drawn must have (N
    m - seen) / (N - t + 1).
    """
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    if population is None:
        return np.broadcast_to(m, np.broadcast_shapes(x.shape, m.shape)).astype(float)
    n = x.shape[-1]
    if n > population:
        raise ValueError(f"{n} observations from a population of {population}")
    seen = np.cumsum(x, axis=-1) - x
    return (population * m - seen) / (population - np.arange(n))


def betting_evidence(
    x: np.ndarray,
    m: float | np.ndarray,
    alpha: float,
    population: int | None = None,
    cap: float = BET_CAP,
) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) after each observation of x (on [0, 1]): the capital of betting that the mean is
    above m, and below it. `m` may be an array that broadcasts against x (a grid of values, one per
    row). A bet is never more than `cap` of what a loss could take, so the capital stays positive;
    where the centre leaves (0, 1) the value m is impossible or certain given what was seen, no bet
    is made, and `bounds` decides instead.
    """
    x = np.asarray(x, dtype=float)
    centre = centres(x, m, population)
    x = np.broadcast_to(x, centre.shape)
    bets = np.broadcast_to(plugin_bets(x, alpha, cap), centre.shape)
    inside = (centre > 0) & (centre < 1)
    safe = np.where(inside, centre, 0.5)
    step = x - safe
    up_bets = np.where(inside, np.minimum(bets, cap / safe), 0.0)
    down_bets = np.where(inside, np.minimum(bets, cap / (1 - safe)), 0.0)
    up = np.exp(np.cumsum(np.log1p(up_bets * step), axis=-1))
    down = np.exp(np.cumsum(np.log1p(-down_bets * step), axis=-1))
    return up, down


def bounds(x: np.ndarray, population: int) -> tuple[np.ndarray, np.ndarray]:
    """The suite's mean is certainly in [low, high] after each observation (on [0, 1]): the unseen
    cases could all score 0, or all 1. Zero width at the last case."""
    x = np.asarray(x, dtype=float)
    seen = np.cumsum(x, axis=-1)
    unseen = population - np.arange(1, x.shape[-1] + 1)
    return seen / population, (seen + unseen) / population


def discordant_evidence(gains: np.ndarray, a: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) after each paired case: the Beta(a, a) mixture likelihood ratio of the discordant
    pairs against a fair coin, restricted to biases above 1/2 (the candidate gains more often than
    it loses) and below it, each half renormalised. `gains`: +1 where only the candidate passed, -1
    where only the baseline did, 0 where they agree (a concordant pair leaves the capital as it
    was). (up + down) / 2 is the whole mixture, the two-sided test of McNemar's hypothesis."""
    d = np.asarray(gains)
    g = np.cumsum(d > 0, axis=-1).astype(float)
    lost = np.cumsum(d < 0, axis=-1).astype(float)
    log_mixture = betaln(g + a, lost + a) - betaln(a, a) + (g + lost) * np.log(2)
    below = betainc(g + a, lost + a, 0.5)  # the posterior's mass under 1/2
    with np.errstate(divide="ignore"):
        up = np.exp(log_mixture + np.log(2 * (1 - below)))
        down = np.exp(log_mixture + np.log(2 * below))
    return up, down


def anytime_p(evidence: np.ndarray) -> np.ndarray:
    """p after each observation: 1 / the running maximum of an e-process, at most 1 (valid at any
    stopping time)."""
    with np.errstate(divide="ignore"):
        return np.minimum(
            1.0, 1.0 / np.maximum.accumulate(np.asarray(evidence, dtype=float), axis=-1)
        )


def band(
    x: np.ndarray, alpha: float, threshold: float, population: int | None = None, grid: int = 401
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) after each observation (on [0, 1]): every value whose `up` capital has not
    reached `threshold` lies above low, every value whose `down` capital has not lies below high,
    running intersection (and, without replacement, within `bounds`). One side at threshold 1/alpha
    is a one-sided sequence at alpha; both at 2/alpha the two-sided one. On a grid of `grid` values,
    so it is exact to 1/(grid - 1).
    """
    x = np.asarray(x, dtype=float)
    values = np.linspace(0.0, 1.0, grid)[:, None]
    up, down = betting_evidence(x[None, :], values, alpha, population)
    up, down = np.maximum.accumulate(up, axis=-1), np.maximum.accumulate(down, axis=-1)
    rejected_low = up >= threshold  # values the sequence says the mean is above
    rejected_high = down >= threshold
    low = np.where(
        rejected_low.any(axis=0), values[::-1, 0][np.argmax(rejected_low[::-1], axis=0)], 0.0
    )
    high = np.where(rejected_high.any(axis=0), values[:, 0][np.argmax(rejected_high, axis=0)], 1.0)
    low, high = np.maximum.accumulate(low), np.minimum.accumulate(high)
    if population is not None:
        sure_low, sure_high = bounds(x, population)
        low, high = np.maximum(low, sure_low), np.minimum(high, sure_high)
    return low, np.maximum(high, low)


TESTS = {  # a rule's sequential test -> how results.json and the report name it
    "wor_betting": "without-replacement betting confidence sequence (Waudby-Smith & Ramdas 2020)",
    "betting": "betting confidence sequence (Waudby-Smith & Ramdas 2023)",
    "discordant_mixture": "mixture SPRT on the discordant pairs (Beta(1, 1) mixture)",
}


@dataclass(frozen=True)
class Rule:
    """One bound of a gate as a sequence watches it. `test`: a key of TESTS; `threshold`: the bound
    on [0, 1] (the observations' scale; 1/2 of the gains for the discordant test, which is told the
    gains themselves); `lower`: the rule holds when the mean is at least the threshold (else at
    most); `two_sided`: a significant rule whose fixed-size test is two-sided (the paired ones), so
    its p is the hedged two-sided one; `population`: the suite's size, for the without-replacement
    test of a rule on the suite's mean.
    """

    test: str
    threshold: float
    lower: bool = True
    two_sided: bool = False
    population: int | None = None


@dataclass(frozen=True)
class Trace:
    """After each observation: `p`, the anytime-valid p of the rule's significance test (1 for a
    rule on the suite's mean, which is not a test); `passed` / `failed`, whether the sequence (at
    the level it was traced at) has settled the rule either way; `point_ok`, whether the running
    mean is on the passing side.
    """

    p: np.ndarray
    passed: np.ndarray
    failed: np.ndarray
    point_ok: np.ndarray


def trace(rule: Rule, x: np.ndarray, alpha: float) -> Trace:
    """The rule watched over x (on [0, 1]; the discordant test: -1/0/+1 gains), at level `alpha`.

    A rule on the suite's mean passes once it is certain (the unseen cases cannot change it) or once
    the without-replacement sequence at alpha lies wholly on its passing side, and fails likewise:
    the chance that this differs from the rule on every case is at most alpha. A significant rule
    never passes here (its p joins the run's Holm family first, see harness.verdict.settle); it
    fails once the sequence at alpha lies wholly on its failing side, which only ever costs power,
    never a false pass."""
    x = np.asarray(x, dtype=float)
    t = np.arange(1, x.shape[-1] + 1)
    if rule.test == "discordant_mixture":
        up, down = discordant_evidence(x)
        mean, threshold = np.cumsum(x, axis=-1) / t, 0.0
    else:
        up, down = betting_evidence(x, rule.threshold, alpha, rule.population)
        mean, threshold = np.cumsum(x, axis=-1) / t, rule.threshold
    point_ok = mean >= threshold if rule.lower else mean <= threshold
    up, down = np.maximum.accumulate(up, axis=-1), np.maximum.accumulate(down, axis=-1)
    passing, failing = (up, down) if rule.lower else (down, up)
    if rule.test == "wor_betting":
        if rule.population is None:
            raise ValueError("a rule on the suite's mean needs the suite's size (population)")
        low, high = bounds(x, rule.population)
        sure_pass = low >= threshold if rule.lower else high <= threshold
        sure_fail = high < threshold if rule.lower else low > threshold
        return Trace(
            np.ones_like(x),
            sure_pass | (passing >= 1 / alpha),
            sure_fail | (failing >= 1 / alpha),
            point_ok,
        )
    # A two-sided rule spends alpha / 2 on its passing side, as its fixed-size test with the point
    # estimate's side does: the passing side's capital alone is a supermartingale under the whole
    # null (the rule's effect at most its bound), so a p earned on the failing side can never carry
    # a pass once the estimate crosses over.
    evidence = passing / 2 if rule.two_sided else passing
    against = failing / 2 if rule.two_sided else failing
    return Trace(anytime_p(evidence), np.zeros_like(point_ok), against >= 1 / alpha, point_ok)


def first(flags: np.ndarray, looks: np.ndarray) -> np.ndarray:
    """The index of the first look (observation counts, 1-based) at which `flags` holds, or -1, per
    row."""
    at = np.asarray(flags)[..., np.asarray(looks) - 1]
    return np.where(at.any(axis=-1), np.argmax(at, axis=-1), -1)


def combined_p(
    p_sequential: np.ndarray | float, split: float, p_fixed: np.ndarray | float | None = None
) -> np.ndarray:
    """The hybrid's p: alpha is spent `split` on the sequential looks and the rest on the fixed-size
    test at the last case (None: not reached), by Bonferroni over the two, min(p_seq / split,
    p_fixed / (1 - split)): valid at any stopping time, and at the last case almost the fixed test's
    power when split is small."""
    sequential = np.minimum(1.0, np.asarray(p_sequential, dtype=float) / split)
    if p_fixed is None or split >= 1:
        return sequential
    return np.minimum(sequential, np.minimum(1.0, np.asarray(p_fixed, dtype=float) / (1 - split)))
