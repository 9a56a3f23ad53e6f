"""What the rest of the harness asks of scorers: a suite names scorers by `type`; each type owns a
pydantic params model and declares its direction, needs and corpus aggregate (see base.py).

Adding a scorer is one decorated function and its line in base.SCORERS (or an installed package's
entry point); suites then use it by name. A type's module is imported when a suite names it.
"""

from harness.scoring.base import (
    CANDIDATE_NEEDS,
    CASE_NEEDS,
    NEEDS,
    SCORERS,
    CorpusItem,
    Params,
    Score,
    ScoreInput,
    ScorerSpec,
    ScorerType,
    build_scorer,
    deferred_scorer,
    implicit_scorer,
    known_types,
    scorer,
    scorer_type,
)

__all__ = [
    "CANDIDATE_NEEDS",
    "CASE_NEEDS",
    "NEEDS",
    "SCORERS",
    "CorpusItem",
    "Params",
    "Score",
    "ScoreInput",
    "ScorerSpec",
    "ScorerType",
    "build_scorer",
    "deferred_scorer",
    "implicit_scorer",
    "known_types",
    "scorer",
    "scorer_type",
]
