"""The scorer registry: a suite names scorers by `type`; each type owns a pydantic params model.

Adding a scorer is one decorated function in a module imported below; suites then use it by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import ConfigError


class Params(BaseModel):
    """Base for scorer parameters: unknown keys are errors, and `name` renames the metric."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str | None = None
    higher_is_better: bool | None = Field(
        None, description="whether a higher value is better; default: the scorer's own (TER, perplexity: lower)")

    def needs(self) -> frozenset[str]:
        """What every case of the suite must carry for these settings, checked when the suite loads (a
        case without it would score 0 and look like a regression): "reference" (text to compare with),
        "json_reference" (a reference that is a JSON object)."""
        return frozenset()

    def sources(self) -> list[Path]:
        """Files these settings were read from (a rubric, say): part of the suite's content hash."""
        return []


@dataclass(frozen=True)
class Score:
    """value in [0, 1] for pass/fail metrics (1 = pass); detail says why, for the report."""

    value: float
    passed: bool | None
    detail: str = ""


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer sees: the output text and the case's reference; for log-likelihood probes also the
    (log-prob, tokens) of each choice or of the text, and the index of the right choice."""

    output: str
    reference: str | None
    logliks: tuple[tuple[float, int], ...] = ()
    answer_index: int | None = None


ScoreFn = Callable[[Any, ScoreInput], Score]


@dataclass(frozen=True)
class ScorerSpec:
    type: str
    metric: str
    params: Params
    fn: ScoreFn | None  # None: a model-backed scorer (a judge) run after generation
    higher_is_better: bool = True

    @property
    def deferred(self) -> bool:
        return self.fn is None

    def __call__(self, item: ScoreInput) -> Score:
        assert self.fn is not None, f"{self.type} needs a model: it runs in the judging stage"
        return self.fn(self.params, item)


_REGISTRY: dict[str, tuple[type[Params], ScoreFn | None, bool]] = {}


def scorer(type_name: str, params: type[Params], higher_is_better: bool = True) -> Callable[[ScoreFn], ScoreFn]:
    """`higher_is_better`: the metric's direction unless a suite says otherwise; comparisons, the
    report's colours and relative gates (`min_delta`, `max_drop`) follow it."""
    def register(fn: ScoreFn) -> ScoreFn:
        _REGISTRY[type_name] = (params, fn, higher_is_better)
        return fn

    return register


def deferred_scorer(type_name: str, params: type[Params]) -> None:
    """Register a scorer that needs a model to score (a judge): the judging stage runs it after
    generation, with an engine; inline scoring skips it. Its params set `higher_is_better` themselves."""
    _REGISTRY[type_name] = (params, None, True)


def known_types() -> list[str]:
    return sorted(_REGISTRY)


def build_scorer(raw: Any, suite_path: Path, line: int | None, key: str) -> ScorerSpec:
    """A suite's `scorers:` entry (a type name, or a mapping with `type:`) -> ready scorer."""
    from harness.yamlfile import validate

    if isinstance(raw, str):
        raw = {"type": raw}
    where = f"{suite_path}:{line}" if line else str(suite_path)
    type_name = raw.get("type") if isinstance(raw, dict) else None
    if type_name not in _REGISTRY:
        raise ConfigError(where, f"{key}.type", f"unknown scorer type {type_name!r}",
                          f"use one of: {', '.join(known_types())}")
    params_model, fn, higher = _REGISTRY[type_name]
    params = validate(params_model, raw, suite_path, None, context={"suite_dir": suite_path.parent},
                      loc_prefix=(key,), line_offset=line)
    return ScorerSpec(type=type_name, metric=params.name or type_name, params=params, fn=fn,
                      higher_is_better=higher if params.higher_is_better is None else params.higher_is_better)


from harness.scorers import assertions  # noqa: E402,F401  (registers the built-in scorers)
from harness.scorers import overlap, refusal  # noqa: E402,F401  (overlap metrics and the refusal detector)
from harness.scorers import likelihood  # noqa: E402,F401  (multiple choice and perplexity by log-likelihood)
from harness import judging  # noqa: E402,F401  (the deferred `judge` scorer: LLM-as-judge rubrics)
