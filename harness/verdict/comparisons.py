"""Compare: every candidate against the baseline on the same cases, with paired statistics.

Rows here are evidence for the gates and the report; they are recomputed from stored scores
(seeded, so a re-rendered run shows the same numbers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.planning.config import Config, Gate, StatsConfig
from harness.verdict.stats import compare_paired, mde_sentence, mde_unit, paired_bootstrap


def summarize(
    scores: pd.DataFrame, stats: StatsConfig | None = None, seed: int = 0
) -> pd.DataFrame:
    """Mean and count per (candidate, suite, metric), with a bootstrap CI of the mean when asked."""
    columns = ["candidate", "suite", "metric", "mean", "n", "ci_low", "ci_high"]
    if scores.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (candidate, suite, metric), group in scores.groupby(
        ["candidate", "suite", "metric"], sort=False
    ):
        values = group["value"].dropna().to_numpy(float)
        low = high = None
        if stats is not None and len(values):
            interval = paired_bootstrap(
                values,
                np.zeros(len(values)),
                resamples=stats.resamples,
                confidence=stats.confidence,
                seed=seed,
            )
            low, high = interval.low, interval.high
        rows.append(
            (
                candidate,
                suite,
                metric,
                float(values.mean()) if len(values) else None,
                len(values),
                low,
                high,
            )
        )
    return pd.DataFrame(rows, columns=columns)


def rows_of(scores: pd.DataFrame, candidate: str, suite: str, metric: str) -> pd.DataFrame:
    """The score rows of (candidate, suite, metric)."""
    return scores[
        (scores.candidate == candidate) & (scores.suite == suite) & (scores.metric == metric)
    ]


def per_case(scores: pd.DataFrame, candidate: str, suite: str, metric: str) -> pd.Series:
    """One value per case id for (candidate, suite, metric)."""
    rows = rows_of(scores, candidate, suite, metric)
    values = pd.Series(rows["value"].to_numpy(float), index=rows["case_id"].to_numpy(), name=metric)
    return (
        values.dropna()
    )  # a judge error is a missing value, never a 0: the gate counts those apart


def baseline_side(
    config: Config, gate: Gate, scores: pd.DataFrame, pinned: pd.DataFrame | None
) -> tuple[str, pd.DataFrame, str]:
    """A relative gate's baseline side: (whom, the score rows it is read from, how outputs name it).
    With pinned scores (drift, --against) they are an earlier run's; else this run's (see
    Config.gate_baseline for whom).
    """
    who = config.gate_baseline(gate, against=pinned is not None)
    return (who, scores, who) if pinned is None else (who, pinned, f"{who} (pinned run)")


Directions = dict[tuple[str, str], bool]  # (suite, metric) -> higher is better; absent means higher


def better(direction: bool, delta: float) -> float:
    """A delta turned into an improvement: positive is better whichever way the metric points."""
    return delta if direction else -delta


def comparisons(
    scores: pd.DataFrame,
    candidates: list[str],
    baseline: str,
    stats: StatsConfig,
    seed: int,
    pinned: pd.DataFrame | None = None,
    directions: Directions | None = None,
) -> list[dict]:
    """Every (candidate ≠ baseline, suite, metric) the baseline also has, as plain dicts.

    With `pinned` (a drift run's pinned scores), each candidate is compared with itself there.
    `outcome` reads the delta's CI in the metric's direction: better, worse, or unclear.
    """
    directions = directions or {}
    rows = []
    keys = scores[["suite", "metric"]].drop_duplicates().itertuples(index=False)
    for suite, metric in list(keys):
        for candidate in candidates:
            other = candidate if pinned is not None else baseline
            base = per_case(pinned if pinned is not None else scores, other, suite, metric)
            cand = per_case(scores, candidate, suite, metric)
            if (
                (pinned is None and candidate == baseline)
                or cand.empty
                or base.empty
                or cand.index.intersection(base.index).empty
            ):
                continue
            higher = directions.get((suite, metric), True)
            result = compare_paired(
                cand,
                base,
                resamples=stats.resamples,
                confidence=stats.confidence,
                seed=seed,
                alpha=stats.alpha,
                power=stats.power,
                higher_is_better=higher,
            )
            low, high = sorted((better(higher, result.ci_low), better(higher, result.ci_high)))
            unit, per_unit = mde_unit(cand, base)
            rows.append(
                {
                    "candidate": candidate,
                    "baseline": other if pinned is None else f"{other} (pinned)",
                    "suite": suite,
                    "metric": metric,
                    **result.as_dict(),
                    "higher_is_better": higher,
                    "outcome": "better" if low > 0 else "worse" if high < 0 else "unclear",
                    "mde_unit": unit,
                    "mde_note": mde_sentence(result.mde, result.n, unit=unit, per_unit=per_unit),
                }
            )
    return rows
