"""One bound of a gate tested on the data at hand by today's fixed-size test: what the gate decides
a full run with, and what a settled run's hybrid spends its last share of alpha on at the suite's
last case."""

from __future__ import annotations

import pandas as pd

from harness.planning.config import Config, Gate, is_relative
from harness.verdict.stats import (
    BoundTest,
    binomial_bound,
    bootstrap_bound,
    is_pass_fail,
    paired_bootstrap,
    paired_proportion_bound,
)


def bound_test(
    gate: Gate, kind: str, cand: pd.Series, base: pd.Series | None, config: Config, higher: bool
) -> tuple[float, BoundTest]:
    """(bound, test) for one bound; relative bounds are read as a gain (baseline - candidate on a
    lower-is-better metric: `max_drop` limits how far it may RISE, `min_delta` how far it must
    fall).
    """
    s, seed = config.stats, config.seed
    bound = getattr(gate, kind)
    if not is_relative(kind):
        lower = kind == "min"
        if is_pass_fail(cand):
            return bound, binomial_bound(cand.to_numpy() == 1, bound, lower, s.confidence)
        return bound, bootstrap_bound(
            cand.to_numpy(float), bound, lower, s.resamples, s.confidence, seed
        )
    common = cand.index.intersection(base.index).sort_values()
    values, against = cand.loc[common], base.loc[common]
    gain_bound = bound if kind == "min_delta" else -bound
    if is_pass_fail(values, against):
        better, worse = (values, against) if higher else (against, values)
        return gain_bound, paired_proportion_bound(
            better.to_numpy() == 1, worse.to_numpy() == 1, gain_bound, s.confidence
        )
    if not higher:
        values, against = -values, -against
    # the interval of (gain - bound), shifted back: one bootstrap gives the interval and p
    interval = paired_bootstrap(
        values.to_numpy(float),
        against.to_numpy(float) + gain_bound,
        resamples=s.resamples,
        confidence=s.confidence,
        seed=seed,
    )
    return gain_bound, BoundTest(
        interval.delta + gain_bound,
        interval.low + gain_bound,
        interval.high + gain_bound,
        interval.p_value,
        "paired_bootstrap",
    )
