"""The scorer registry, filled: a suite names scorers by `type`; each type owns a pydantic params model and
declares its direction, needs and corpus aggregate (see base.py). Importing this module registers every
shipped scorer, so whatever looks a type up imports from here.

Adding a scorer is one decorated function in a module imported below; suites then use it by name.
"""

from harness.scoring import assertions, judge, likelihood, overlap, refusal, retrieval  # noqa: F401  (register)
from harness.scoring.base import (
    CANDIDATE_NEEDS,
    CASE_NEEDS,
    NEEDS,
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

__all__ = ["CANDIDATE_NEEDS", "CASE_NEEDS", "NEEDS", "CorpusItem", "Params", "Score", "ScoreInput", "ScorerSpec",
           "ScorerType",
           "build_scorer", "deferred_scorer", "implicit_scorer", "known_types", "scorer", "scorer_type"]
