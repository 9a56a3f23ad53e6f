"""How far a judge agrees with people: Spearman's rho for scales, Cohen's kappa (weighted on an
ordinal scale) for labels, and a bootstrap interval for either. The judging stage decides with these
whether a judge may decide a gate; the report sets a judge's scores beside other measures of the
same answers with them.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, Sequence

import numpy as np
from scipy.stats import spearmanr


def agreement(
    judge_values: Sequence[Any], human_values: Sequence[Any], kind: Literal["scale", "label"]
) -> dict:
    """How far a judge agrees with people: Spearman's rho for scales, Cohen's kappa for labels.
    Pairs with a missing side are dropped; `value` is None where the statistic is undefined (fewer
    than two pairs, or one side constant)."""
    pairs = [
        (j, h)
        for j, h in zip(judge_values, human_values, strict=True)
        if _present(j) and _present(h)
    ]
    if kind == "scale":
        rho, p_value = spearman([j for j, _ in pairs], [h for _, h in pairs])
        return {
            "kind": kind,
            "statistic": "spearman",
            "value": rho,
            "p_value": p_value,
            "n": len(pairs),
        }
    kappa = cohen_kappa([j for j, _ in pairs], [h for _, h in pairs])
    return {
        "kind": kind,
        "statistic": "cohen_kappa",
        "value": kappa,
        "p_value": None,
        "n": len(pairs),
    }


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def spearman(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, float | None]:
    """Spearman's rho and its p; (None, None) for fewer than two pairs or a constant side."""
    if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2:
        return None, None
    result = spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """(observed - chance agreement) / (1 - chance agreement), chance from each rater's label rates."""
    labels = sorted(set(a) | set(b), key=str)
    if not a or len(labels) < 2:
        return None
    return _kappa(a, b, labels, np.ones((len(labels), len(labels))) - np.eye(len(labels)))


def weighted_kappa(
    a: Sequence[float],
    b: Sequence[float],
    scale: Sequence[float],
    weights: Literal["linear", "quadratic"] = "quadratic",
) -> float | None:
    """Cohen's weighted kappa on an ordinal scale: a disagreement costs its distance on the scale
    (squared for "quadratic"), so a judge that says 4 where people say 5 loses less than one that
    says 1. Values are placed on `scale` (its points in order); it is sklearn's
    cohen_kappa_score(weights=...)."""
    points = list(scale)
    if not a or len(set(a) | set(b)) < 2:
        return None
    distance = np.abs(np.subtract.outer(np.arange(len(points)), np.arange(len(points)))) / (
        len(points) - 1
    )
    return _kappa(
        [points.index(x) for x in a],
        [points.index(y) for y in b],
        list(range(len(points))),
        distance ** (2 if weights == "quadratic" else 1),
    )


def _kappa(a: Sequence[Any], b: Sequence[Any], labels: list[Any], cost: np.ndarray) -> float | None:
    """1 - observed cost / the cost expected by chance (each rater's label rates, independent)."""
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for x, y in zip(a, b, strict=True):
        table[index[x], index[y]] += 1
    table /= table.sum()
    chance = np.outer(table.sum(axis=1), table.sum(axis=0))
    expected = float((cost * chance).sum())
    return 1.0 - float((cost * table).sum()) / expected if expected > 0 else None


def bootstrap_statistic(
    statistic: Callable[[np.ndarray], float | None],
    n: int,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """Percentile interval of `statistic(indices)` over items resampled with replacement (seeded);
    resamples where it is undefined (one label only, say) are left out. (None, None) when too few
    are defined.
    """
    rng = np.random.default_rng(seed)
    values = [
        v for v in (statistic(rng.integers(0, n, n)) for _ in range(resamples)) if v is not None
    ]
    if len(values) < resamples / 2:
        return None, None
    tail = (1 - confidence) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))
