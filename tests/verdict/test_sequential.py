"""Anytime-valid sequences (harness.verdict.sequential) against closed forms, scipy quadrature, a
plain loop that follows the papers line by line, and Ville's inequality checked by simulation
(seeded, so never flaky).

The simulations use 2000 runs: a crossing rate near alpha = 0.05 has a standard error of about 0.005
there, so "at most alpha" is asserted with a tolerance of 0.01 (two standard errors); the true rates
sit well below alpha.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import beta as beta_dist

from harness.verdict.sequential import (
    BET_CAP,
    Rule,
    anytime_p,
    band,
    betting_evidence,
    bounds,
    combined_p,
    discordant_evidence,
    first,
    plugin_bets,
    trace,
)

ALPHA = 0.05
RUNS = 2000
TOLERANCE = 0.01


def gains_of(gained: int, lost: int, ties: int, seed: int = 0) -> np.ndarray:
    """A shuffled paired stream: +1 where only the candidate passed, -1 where only the baseline did,
    0 ties."""
    return np.random.default_rng(seed).permutation(
        np.array([1] * gained + [-1] * lost + [0] * ties)
    )


def mixture_by_quadrature(
    gained: int, lost: int, a: float, low: float = 0.0, high: float = 1.0
) -> float:
    """The Beta(a, a)-weighted likelihood ratio against a fair coin, integrated over (low, high) by
    scipy."""
    value, _ = quad(
        lambda p: (2 * p) ** gained * (2 * (1 - p)) ** lost * beta_dist.pdf(p, a, a),
        low,
        high,
        limit=200,
        epsabs=0,
        epsrel=1e-11,
    )
    return value


def capital_by_hand(
    x: np.ndarray, m: np.ndarray, alpha: float, population: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Hedged capital, one observation at a time as the papers write it (vectorised over the values
    m only): mu_t = (1/2 + sum x_i) / (t + 1), sigma2_t = (1/4 + sum (x_i - mu_i)^2) / (t + 1), the
    bet lambda_t = sqrt(2 log(2/alpha) / (sigma2_{t-1} t log(1 + t))) ^ c, truncated at c/centre
    (up) and c/(1 - centre) (down); the centre is m, or (N m - sum_{i<t} x_i) / (N - t + 1) without
    replacement.
    """
    m = np.asarray(m, dtype=float)
    up, down = np.ones_like(m), np.ones_like(m)
    ups, downs = [], []
    seen, squares, variance = 0.0, 0.0, 0.25
    for t, value in enumerate(x, start=1):
        bet = min(math.sqrt(2 * math.log(2 / alpha) / (variance * t * math.log(1 + t))), BET_CAP)
        centre = m if population is None else (population * m - seen) / (population - t + 1)
        inside = (centre > 0) & (centre < 1)
        safe = np.where(inside, centre, 0.5)
        up = up * np.where(inside, 1 + np.minimum(bet, BET_CAP / safe) * (value - safe), 1.0)
        down = down * np.where(
            inside, 1 - np.minimum(bet, BET_CAP / (1 - safe)) * (value - safe), 1.0
        )
        ups.append(up)
        downs.append(down)
        seen += value
        squares += (value - (0.5 + seen) / (t + 1)) ** 2
        variance = (0.25 + squares) / (t + 1)
    return np.stack(ups, axis=-1), np.stack(downs, axis=-1)


def ever(evidence: np.ndarray, level: float) -> float:
    """The share of runs (rows) whose evidence ever reaches `level`."""
    return float((evidence.max(axis=-1) >= level).mean())


def permutations(population: np.ndarray, runs: int, seed: int) -> np.ndarray:
    """`runs` seeded random orders of one fixed population, one per row."""
    rng = np.random.default_rng(seed)
    return population[np.argsort(rng.random((runs, len(population))), axis=-1)]


# the discordant-pairs mixture


def test_discordant_mixture_closed_form() -> None:
    """Beta(1, 1): B(g + 1, l + 1) 2^(g + l) = g! l! / (g + l + 1)! 2^(g + l); 9 gains, 1 loss:
    1024/110."""
    up, down = discordant_evidence(gains_of(9, 1, 0))
    assert (up[-1] + down[-1]) / 2 == pytest.approx(1024 / 110, rel=1e-12)


@pytest.mark.parametrize("a", [1.0, 2.5])
@pytest.mark.parametrize(
    "gained, lost", [(0, 0), (1, 0), (3, 1), (10, 4), (2, 9), (25, 25), (40, 12), (0, 30)]
)
def test_discordant_mixture_is_the_beta_mixture(gained: int, lost: int, a: float) -> None:
    up, down = discordant_evidence(gains_of(gained, lost, ties=5), a=a)
    assert (up[-1] + down[-1]) / 2 == pytest.approx(
        mixture_by_quadrature(gained, lost, a), rel=1e-8
    )
    assert up[-1] == pytest.approx(
        2 * mixture_by_quadrature(gained, lost, a, 0.5, 1.0), rel=1e-8, abs=1e-300
    )
    assert down[-1] == pytest.approx(
        2 * mixture_by_quadrature(gained, lost, a, 0.0, 0.5), rel=1e-8, abs=1e-300
    )


def test_concordant_pairs_leave_the_capital_unchanged() -> None:
    gains = np.array([1, 0, 0, -1, 1, 0, 1, 0])
    up, down = discordant_evidence(gains)
    ties = np.flatnonzero(gains == 0)
    assert np.array_equal(up[ties], up[ties - 1]) and np.array_equal(down[ties], down[ties - 1])
    bare_up, bare_down = discordant_evidence(gains[gains != 0])
    assert np.allclose(up[gains != 0], bare_up) and np.allclose(down[gains != 0], bare_down)
    leading_up, leading_down = discordant_evidence(np.array([0, 0, 1]))
    assert leading_up[:2].tolist() == leading_down[:2].tolist() == [1.0, 1.0]


def test_discordant_mixture_null_rate() -> None:
    """Fair discordant coins among ties: either half, and the whole mixture, reaches 1/alpha at most
    alpha of the time over 500 pairs."""
    gains = np.random.default_rng(1).choice([-1, 0, 1], p=[0.2, 0.6, 0.2], size=(RUNS, 500))
    up, down = discordant_evidence(gains)
    for evidence in (up, down, (up + down) / 2):
        assert ever(evidence, 1 / ALPHA) <= ALPHA + TOLERANCE


# betting, with replacement


def test_plugin_bets_follow_the_paper_by_hand() -> None:
    x = np.random.default_rng(2).beta(2, 3, size=40)
    hand, seen, squares, variance = [], 0.0, 0.0, 0.25
    for t, value in enumerate(x, start=1):
        hand.append(
            min(math.sqrt(2 * math.log(2 / ALPHA) / (variance * t * math.log(1 + t))), BET_CAP)
        )
        seen += value
        squares += (value - (0.5 + seen) / (t + 1)) ** 2
        variance = (0.25 + squares) / (t + 1)
    assert np.allclose(plugin_bets(x, ALPHA), hand, rtol=1e-12)
    assert plugin_bets(x, ALPHA)[0] == min(
        math.sqrt(2 * math.log(2 / ALPHA) / (0.25 * math.log(2))), BET_CAP
    )


@pytest.mark.parametrize("population", [None, 60])
def test_betting_evidence_matches_the_loop(population: int | None) -> None:
    rng = np.random.default_rng(3)
    values = np.array([0.05, 0.3, 0.5, 0.62, 0.9])
    for x in (rng.beta(2, 3, size=40), (rng.random(40) < 0.7).astype(float)):
        up, down = betting_evidence(x, values[:, None], ALPHA, population)
        hand_up, hand_down = capital_by_hand(x, values, ALPHA, population)
        assert np.allclose(up, hand_up, rtol=1e-10) and np.allclose(down, hand_down, rtol=1e-10)


def test_capital_stays_positive_at_the_edges() -> None:
    streams = np.array([np.zeros(300), np.ones(300), np.arange(300) % 2.0])
    for m in (0.001, 0.5, 0.999):
        up, down = betting_evidence(streams, m, ALPHA)
        assert (
            np.all(up > 0)
            and np.all(down > 0)
            and np.all(np.isfinite(up))
            and np.all(np.isfinite(down))
        )
    up, down = betting_evidence(np.ones(300), 0.001, ALPHA)
    assert (
        up[-1] > 1e6 and down[-1] < 1
    )  # bets as large as the cap allows, in the direction the data go


@pytest.mark.parametrize(
    "kind, m", [("bernoulli", 0.5), ("bernoulli", 0.8), ("beta(2, 3)", 0.4), ("beta(6, 2)", 0.75)]
)
def test_betting_null_rate(kind: str, m: float) -> None:
    """Ville: data whose mean is exactly m cross 1/alpha (either side, or the hedged average) at
    most alpha of the time over 500 observations."""
    rng = np.random.default_rng(4)
    if kind == "bernoulli":
        x = (rng.random((RUNS, 500)) < m).astype(float)
    else:
        a, b = (2, 3) if kind == "beta(2, 3)" else (6, 2)
        x = rng.beta(a, b, size=(RUNS, 500))
    up, down = betting_evidence(x, m, ALPHA)
    for evidence in (up, down, (up + down) / 2):
        assert ever(evidence, 1 / ALPHA) <= ALPHA + TOLERANCE


def test_betting_grows_under_an_effect() -> None:
    x = (np.random.default_rng(5).random((500, 500)) < 0.6).astype(float)
    up, down = betting_evidence(x, 0.5, ALPHA)
    assert ever(up, 1 / ALPHA) >= 0.8 and ever(down, 1 / ALPHA) <= ALPHA
    assert np.median(np.log(up[:, -1])) > np.median(np.log(up[:, 249])) > 0


# without replacement


def test_bounds_close_at_the_last_case() -> None:
    x = np.random.default_rng(6).beta(2, 3, size=50)
    low, high = bounds(x, 50)
    assert low[-1] == pytest.approx(x.mean()) and high[-1] == pytest.approx(x.mean())
    assert np.all(np.diff(high - low) < 0) and low[0] == pytest.approx(x[0] / 50)


@pytest.mark.parametrize("kind", ["pass/fail", "continuous"])
def test_band_without_replacement_ends_at_the_exact_mean(kind: str) -> None:
    rng = np.random.default_rng(7)
    x = (rng.random(200) < 0.7).astype(float) if kind == "pass/fail" else rng.beta(2, 3, size=200)
    low, high = band(x, ALPHA, 2 / ALPHA, population=200)
    assert low[-1] == pytest.approx(x.mean(), abs=1 / 400) and high[-1] == pytest.approx(
        x.mean(), abs=1 / 400
    )
    assert low[-1] - 1e-12 <= x.mean() <= high[-1] + 1e-12
    assert np.all(np.diff(low) >= 0) and np.all(np.diff(high) <= 0)


def test_without_replacement_is_narrower_late_in_the_population() -> None:
    x = np.random.default_rng(8).beta(2, 3, size=300)[:270]
    wor_low, wor_high = band(x, ALPHA, 2 / ALPHA, population=300)
    low, high = band(x, ALPHA, 2 / ALPHA)
    assert wor_high[-1] - wor_low[-1] < 0.5 * (high[-1] - low[-1])
    assert wor_low[-1] <= x.mean() <= wor_high[-1]


@pytest.mark.parametrize("kind", ["pass/fail", "continuous"])
def test_without_replacement_null_rate(kind: str) -> None:
    """Random orders of one fixed suite whose mean is exactly m: the capital at m, bet against the
    mean the unseen cases must have, crosses 1/alpha at most alpha of the time, over every case of
    the suite.
    """
    rng = np.random.default_rng(9)
    population = (
        np.array([1.0] * 300 + [0.0] * 200) if kind == "pass/fail" else rng.beta(2, 3, size=500)
    )
    up, down = betting_evidence(
        permutations(population, RUNS, seed=10), population.mean(), ALPHA, 500
    )
    for evidence in (up, down, (up + down) / 2):
        assert ever(evidence, 1 / ALPHA) <= ALPHA + TOLERANCE


@pytest.mark.parametrize("population", [None, 250])
def test_band_against_brute_force(population: int | None) -> None:
    """band() against the plain loop on every grid value: the values no side has rejected so far
    (and, without replacement, that the unseen cases can reach), their smallest and largest. band()
    reports the largest rejected value below and the smallest above, so it is wider by at most one
    grid step."""
    rng = np.random.default_rng(11)
    x = rng.beta(2, 5, size=200)
    grid = np.linspace(0, 1, 201)
    up, down = capital_by_hand(x, grid[1:-1], ALPHA, population)  # 0 and 1 are never bet on
    kept = (np.maximum.accumulate(up, axis=-1) < 2 / ALPHA) & (
        np.maximum.accumulate(down, axis=-1) < 2 / ALPHA
    )
    if population is not None:
        sure_low, sure_high = bounds(x, population)
        kept &= (grid[1:-1, None] >= sure_low) & (grid[1:-1, None] <= sure_high)
    assert kept.any(axis=0).all()
    lowest = np.array([grid[1:-1][column].min() for column in kept.T])
    highest = np.array([grid[1:-1][column].max() for column in kept.T])
    low, high = band(x, ALPHA, 2 / ALPHA, population, grid=201)
    step = 1 / 200 + 1e-12
    assert np.all(low <= lowest) and np.all(lowest - low <= step)
    assert np.all(high >= highest) and np.all(high - highest <= step)


# p-values, looks, and the hybrid


def test_anytime_p() -> None:
    evidence = np.array([[0.5, 2.0, 1.5, 10.0, 4.0, 25.0], [0.0, 0.3, 1.0, 0.9, 1.1, 1.0]])
    p = anytime_p(evidence)
    assert np.allclose(p[0], [1, 0.5, 0.5, 0.1, 0.1, 0.04]) and np.allclose(
        p[1], [1, 1, 1, 1, 1 / 1.1, 1 / 1.1]
    )
    x = np.random.default_rng(12).beta(3, 2, size=(50, 300))
    p = anytime_p(betting_evidence(x, 0.5, ALPHA)[0])
    assert np.all(np.diff(p, axis=-1) <= 0) and np.all(p <= 1) and np.all(p > 0)


def test_first_look() -> None:
    flags = np.zeros((4, 60), dtype=bool)
    flags[0, 29:] = True  # from case 30: seen at the look after 40 cases
    flags[1, 19] = True  # at case 20 only: seen at the first look
    flags[2, 59:] = True  # at the last case
    looks = np.array([20, 40, 60])
    assert first(flags, looks).tolist() == [1, 0, 2, -1]
    assert first(flags[0], looks) == 1


def test_combined_p() -> None:
    assert combined_p(0.03, 1.0) == 0.03 and combined_p(0.03, 1.0, 0.0001) == 0.03
    assert combined_p(0.004, 0.2) == pytest.approx(0.02) and combined_p(0.5, 0.2) == 1.0
    assert combined_p(0.5, 0.2, 0.02) == pytest.approx(0.025)  # the fixed test's share: 0.02 / 0.8
    assert combined_p(0.004, 0.2, 0.9) == pytest.approx(
        0.02
    )  # the better of the two, Bonferroni-corrected
    assert np.allclose(combined_p(np.array([0.01, 0.3]), 0.5, np.array([0.9, 0.01])), [0.02, 0.02])


# trace: the rules as the gate watches them


@pytest.mark.parametrize("lower", [True, False])
def test_mean_rule_decides_like_the_whole_suite(lower: bool) -> None:
    """Suites of 200 pass/fail cases around a 0.7 bound: at the last case the rule is certain and is
    the plain mean against the bound; an opposite flag raised earlier (a wrong early decision) is
    rare."""
    for passes in (130, 139, 140, 141, 150, 180):
        population = np.array([1.0] * passes + [0.0] * (200 - passes))
        watched = trace(
            Rule("wor_betting", 0.7, lower, population=200),
            permutations(population, 300, passes),
            ALPHA,
        )
        plain = population.mean() >= 0.7 if lower else population.mean() <= 0.7
        right, wrong = (
            (watched.passed, watched.failed) if plain else (watched.failed, watched.passed)
        )
        assert right[:, -1].all() and np.all(watched.p == 1)
        assert wrong[:, -1].mean() <= ALPHA + TOLERANCE
    far = np.array([1.0] * 190 + [0.0] * 10)
    watched = trace(
        Rule("wor_betting", 0.7, True, population=200), permutations(far, 300, 0), ALPHA
    )
    assert np.median(np.argmax(watched.passed, axis=-1)) < 100 and not watched.failed.any()


def test_mean_rule_needs_the_suite_size() -> None:
    with pytest.raises(ValueError, match="population"):
        trace(Rule("wor_betting", 0.7), np.ones(10), ALPHA)


@pytest.mark.parametrize(
    "rule, good, bad",
    [
        (Rule("betting", 0.6), np.ones(200), np.zeros(200)),
        (Rule("betting", 0.4, lower=False), np.zeros(200), np.ones(200)),
        (Rule("betting", 0.5, two_sided=True), np.ones(200), np.zeros(200)),
        (Rule("discordant_mixture", 0.5, two_sided=True), np.ones(200), -np.ones(200)),
    ],
)
def test_significant_rules_never_pass_in_trace(
    rule: Rule, good: np.ndarray, bad: np.ndarray
) -> None:
    """A significant rule's pass needs the run's Holm family: trace gives its p, and fails it on its
    own."""
    watched = trace(rule, good, ALPHA)
    assert not watched.passed.any() and not watched.failed.any() and watched.point_ok.all()
    assert watched.p[-1] < 1e-6 and np.all(np.diff(watched.p) <= 0)
    against = trace(rule, bad, ALPHA)
    assert against.failed[-1] and not against.passed.any() and not against.point_ok.any()


@pytest.mark.parametrize("lower", [True, False])
def test_one_sided_p_and_failure(lower: bool) -> None:
    x = np.random.default_rng(13).beta(2, 3, size=300)
    watched = trace(Rule("betting", 0.45, lower), x, ALPHA)
    up, down = betting_evidence(x, 0.45, ALPHA)
    passing, failing = (up, down) if lower else (down, up)
    assert np.allclose(watched.p, np.minimum(1, 1 / np.maximum.accumulate(passing)))
    assert np.array_equal(watched.failed, np.maximum.accumulate(failing) >= 1 / ALPHA)
    assert np.array_equal(watched.point_ok, (np.cumsum(x) / np.arange(1, 301) >= 0.45) == lower)


def test_two_sided_p_is_the_passing_side_at_half_alpha() -> None:
    """Two-sided p = 2 / the running maximum of the passing side's capital: evidence earned on the
    failing side (a stream that falls first) never lowers it, so it cannot carry a pass once the
    estimate crosses over.
    """
    x = np.concatenate([np.zeros(40), np.ones(12), np.full(40, 0.5)])
    gains = np.concatenate([-np.ones(40), np.ones(12), np.zeros(40)])
    for rule, stream, (up, down) in [
        (Rule("betting", 0.5, two_sided=True), x, betting_evidence(x, 0.5, ALPHA)),
        (Rule("discordant_mixture", 0.5, two_sided=True), gains, discordant_evidence(gains)),
    ]:
        watched = trace(rule, stream, ALPHA)
        assert np.allclose(watched.p, np.minimum(1, 2 / np.maximum.accumulate(up)), rtol=1e-12)
        assert watched.p[39] > 0.5 > np.minimum(1, 1 / np.maximum.accumulate((up + down) / 2))[39]
        assert np.array_equal(watched.failed, np.maximum.accumulate(down) >= 2 / ALPHA)


# against confseq, the authors' reference implementation


def confseq_betting():
    """confseq's betting module, or a skip: 0.0.11 (the newest on PyPI) is a source package whose
    build needs Boost, and its pure-Python modules use numpy.float_, which NumPy 2 removed."""
    try:
        from confseq import betting, betting_strategies
    except (ImportError, AttributeError) as error:
        pytest.skip(f"confseq cannot be imported here ({type(error).__name__}: {error})")
    return betting, betting_strategies


@pytest.mark.slow
@pytest.mark.parametrize("population", [None, 400])
def test_band_matches_confseq(population: int | None) -> None:
    """Our two-sided band (each side at 2/alpha: the max(theta K+, (1 - theta) K-) hedged capital,
    theta = 1/2) against confseq's betting_cs with the same bets: predictable plug-in at alpha/2,
    capped at c = 1/2 (our cap; hedged_cs leaves it uncapped) and truncated at c/m, c/(1 - m), on
    the same 1001-value grid.
    """
    betting, strategies = confseq_betting()
    rng = np.random.default_rng(14)
    x = rng.beta(2, 5, size=400)[:300] if population else (rng.random(300) < 0.3).astype(float)
    bets = [lambda data, m: strategies.lambda_predmix_eb(data, truncation=BET_CAP, alpha=ALPHA / 2)]
    their_low, their_high = betting.betting_cs(
        x,
        bets,
        bets,
        alpha=ALPHA,
        N=population,
        breaks=1000,
        running_intersection=True,
        theta=0.5,
        trunc_scale=BET_CAP,
    )
    low, high = band(x, ALPHA, 2 / ALPHA, population, grid=1001)
    assert (
        np.abs(low - their_low).max() <= 1e-3 + 1e-9
        and np.abs(high - their_high).max() <= 1e-3 + 1e-9
    )
