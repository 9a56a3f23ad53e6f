"""What a scorer is: params (a pydantic model per type), a score function, and what it declares
about itself: its direction, what it needs from a case and a candidate, and how it aggregates over a
corpus.

Everything downstream asks the registry rather than knowing scorers by name: the suite loader checks
the needs of every case, the plan checks the needs of every gated candidate, the report finds corpus
aggregates, the judging stage finds the scorers that need a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pydantic import Field

from harness.core.errors import ConfigError
from harness.core.plugins import Table
from harness.core.strict import Strict
from harness.core.yamlfile import validate

# What a scorer can need. Case needs are checked for every case when the suite loads; candidate
# needs when the plan checks a gate; `gold_documents` marks the cases a scorer applies to; `model`:
# a judge.
CASE_NEEDS = {
    "generated": "a generated answer (a `messages` or `prompt` case, not a log-likelihood probe)",
    "reference": "a `reference` to compare with",
    "json_reference": "a `reference` that is a JSON object",
    "choices": "`prompt`, `choices` and `answer_index` (a multiple-choice probe)",
    "text": "`text` (a perplexity probe)",
}
CANDIDATE_NEEDS = {
    "retrieval": "retrieved documents (only `rag` candidates retrieve)",
    "logliks": "prompt log-probabilities (an endpoint gives none)",
}
APPLIES_TO = {"gold_documents": "cases whose metadata names `gold_doc_ids`"}
NEEDS = {**CASE_NEEDS, **CANDIDATE_NEEDS, **APPLIES_TO, "model": "a model to ask (a judge)"}
# The values a metric can take, (lowest, highest), None where it has no limit: the plan refuses a
# gate bound outside them (`min: 1.5` on a pass rate can never pass). A type that declares none is
# unbounded.
Bounds = tuple[float | None, float | None]
UNBOUNDED: Bounds = (None, None)
UNIT: Bounds = (0.0, 1.0)  # pass/fail metrics and rates


class Params(Strict):
    """Base for scorer parameters: held to what every config model is (see core.strict), and `name`
    renames the metric."""

    type: str
    name: str | None = None
    higher_is_better: bool | None = Field(
        None,
        description=(
            "whether a higher value is better; default: the scorer's own (TER, perplexity: lower)"
        ),
    )

    def needs(self, declared: frozenset[str]) -> frozenset[str]:
        """What these settings need, from what the type declares (a `value:` waives the reference,
        say)."""
        return declared

    def sources(self) -> list[Path]:
        """Files these settings were read from (a rubric, say): part of the suite's content hash."""
        return []


@dataclass(frozen=True)
class Score:
    """value in [0, 1] for pass/fail metrics (1 = pass); detail says why, for the report; meta holds
    data about the score (a judge's raw answer, say) so that nothing has to be parsed back out of
    prose.
    """

    value: float | None
    passed: bool | None
    detail: str = ""
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer sees: the output text and the case's reference; for log-likelihood probes also
    the (log-prob, tokens) of each choice or of the text, and the index of the right choice; for
    retrieval the documents retrieved and the case's gold documents."""

    output: str
    reference: str | None
    logliks: tuple[tuple[float, int], ...] = ()
    answer_index: int | None = None
    retrieved: tuple[str, ...] = ()
    gold: tuple[str, ...] = ()


@dataclass(frozen=True)
class CorpusItem:
    output: str
    reference: str | None
    logliks: tuple[tuple[float, int], ...] = ()


ScoreFn = Callable[[Any, ScoreInput], Score]
CorpusFn = Callable[
    [Any, Sequence[CorpusItem]], tuple[float, str]
]  # -> (value, the settings it was made with)


@dataclass(frozen=True)
class ScorerType:
    params: type[Params]
    fn: ScoreFn | None  # None: needs a model (a judge), run in the judging stage
    higher_is_better: bool
    needs: frozenset[str]
    corpus: CorpusFn | None
    bounds: Bounds = UNBOUNDED

    def __call__(self, params: Any, item: ScoreInput) -> Score:
        """Score one answer (a test may call a type as the function it was declared from)."""
        assert self.fn is not None, "a deferred scorer needs a model: it runs in the judging stage"
        return self.fn(params, item)


# Every scorer type a suite may name -> its ScorerType: one line here, or an entry point in an
# installed package's `harness.scorers` group (see docs/plugins.md). A type's module is imported
# when a suite names it.
SCORERS: Table[ScorerType] = Table(
    "harness.scorers",
    {
        "equals": "harness.scoring.assertions:equals",
        "contains": "harness.scoring.assertions:contains",
        "regex": "harness.scoring.assertions:regex",
        "json_valid": "harness.scoring.assertions:json_valid",
        "json_schema": "harness.scoring.assertions:json_schema",
        "json_fields": "harness.scoring.assertions:json_fields",
        "refusal": "harness.scoring.refusal:refusal",
        "multiple_choice": "harness.scoring.likelihood:multiple_choice",
        "perplexity": "harness.scoring.likelihood:perplexity",
        "recall_at_k": "harness.scoring.retrieval:recall",
        "mrr": "harness.scoring.retrieval:mrr",
        **{
            variant: "harness.scoring.overlap:ROUGE"
            for variant in ("rouge1", "rouge2", "rougeL", "rougeLsum")
        },
        "bleu": "harness.scoring.overlap:BLEU_TYPE",
        "chrf": "harness.scoring.overlap:CHRF_TYPE",
        "ter": "harness.scoring.overlap:TER_TYPE",
        "judge": "harness.scoring.judge:JUDGE",
    },
)


def scorer(
    params: type[Params],
    higher_is_better: bool = True,
    needs: Sequence[str] = ("generated",),
    corpus: CorpusFn | None = None,
    bounds: Bounds = UNBOUNDED,
) -> Callable[[ScoreFn], ScorerType]:
    """Declare a scorer type (its name is its line in SCORERS). `higher_is_better`: the metric's
    direction unless a suite says otherwise (comparisons, colours and relative gates follow it);
    `needs`: keys of NEEDS; `corpus`: how the report computes the corpus-level value (BLEU's pooled
    statistics, perplexity over all tokens); `bounds`: the values it can take."""
    unknown = set(needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"unknown needs {sorted(unknown)}; known: {sorted(NEEDS)}")

    def declare(fn: ScoreFn) -> ScorerType:
        return ScorerType(params, fn, higher_is_better, frozenset(needs), corpus, bounds)

    return declare


def deferred_scorer(
    params: type[Params], needs: Sequence[str] = ("generated", "model")
) -> ScorerType:
    """A scorer that needs a model to score (a judge): the judging stage runs it after generation;
    inline scoring skips it. Its params set `higher_is_better` themselves; its values are on 0..1 (a
    scale's score is normalised onto it, a label or a pairwise verdict is 0, 0.5 or 1)."""
    return ScorerType(params, None, True, frozenset(needs), None, UNIT)


def scorer_type(type_name: str) -> ScorerType | None:
    return SCORERS.get(type_name)


def known_types() -> list[str]:
    return SCORERS.names()


@dataclass(frozen=True)
class ScorerSpec:
    """A scorer as a suite uses it: its type, metric name, settings and what it needs."""

    type: str
    metric: str
    params: Params
    fn: ScoreFn | None
    higher_is_better: bool = True
    needs: frozenset[str] = frozenset()
    corpus: CorpusFn | None = None
    bounds: Bounds = UNBOUNDED

    @property
    def deferred(self) -> bool:
        return self.fn is None

    def applies(self, has_gold: bool, retrieves: bool) -> bool:
        """Whether this scorer writes a row for a case (by its gold documents) and a candidate."""
        return ("gold_documents" not in self.needs or has_gold) and (
            "retrieval" not in self.needs or retrieves
        )

    def __call__(self, item: ScoreInput) -> Score:
        assert self.fn is not None, f"{self.type} needs a model: it runs in the judging stage"
        return self.fn(self.params, item)


def build_scorer(raw: Any, suite_path: Path, line: int | None, key: str) -> ScorerSpec:
    """A suite's `scorers:` entry (a type name, or a mapping with `type:`) -> ready scorer."""
    if isinstance(raw, str):
        raw = {"type": raw}
    where = f"{suite_path}:{line}" if line else str(suite_path)
    type_name = raw.get("type") if isinstance(raw, dict) else None
    entry = scorer_type(type_name) if isinstance(type_name, str) else None
    if entry is None:
        raise ConfigError(
            where,
            f"{key}.type",
            f"unknown scorer type {type_name!r}",
            f"use one of: {', '.join(known_types())}",
        )
    params = validate(
        entry.params,
        raw,
        suite_path,
        None,
        context={"suite_dir": suite_path.parent},
        loc_prefix=(key,),
        line_offset=line,
    )
    return implicit_scorer(type_name, params)  # type: ignore[arg-type]


def implicit_scorer(type_name: str, params: Params | None = None) -> ScorerSpec:
    """A scorer from its type and settings (a suite adds retrieval metrics itself, with no entry)."""
    entry = SCORERS.load(type_name)
    params = params if params is not None else entry.params(type=type_name)
    higher = entry.higher_is_better if params.higher_is_better is None else params.higher_is_better
    return ScorerSpec(
        type=type_name,
        metric=params.name or type_name,
        params=params,
        fn=entry.fn,
        higher_is_better=higher,
        needs=params.needs(entry.needs),
        corpus=entry.corpus,
        bounds=entry.bounds,
    )
