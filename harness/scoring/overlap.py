"""Reference-overlap metrics: ROUGE (rouge-score) and BLEU / chrF / TER (sacrebleu), per case and
per corpus.

Values stay in each library's own scale, so they can be set beside published numbers:

- `rouge1`, `rouge2`, `rougeL`, `rougeLsum`: 0..1 (F-measure unless `measure:` says otherwise), higher is better.
- `bleu`, `chrf`: 0..100, higher is better.
- `ter`: edits per reference word x 100, LOWER is better, and it can exceed 100.

A case's row is the sentence-level score (what paired statistics compare). `corpus_score` is the
corpus-level number each library defines; for BLEU, chrF and TER that is computed from pooled
statistics and is not the mean of the sentence scores. These metrics are continuous: `passed` is
always None.

Every case must carry a `reference` (the types declare it, and the suite loader rejects a case
without one before any generation); here a case without one raises HarnessError rather than scoring
a silent 0.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import version
from statistics import fmean
from typing import TYPE_CHECKING, Any, Literal, Sequence

from pydantic import Field, field_validator, model_validator
from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from harness.core.errors import HarnessError
from harness.scoring.base import UNIT, CorpusItem, Params, Score, ScoreInput, scorer

if TYPE_CHECKING:
    from rouge_score.rouge_scorer import RougeScorer

ROUGE_VARIANTS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
SACREBLEU_TYPES = ("bleu", "chrf", "ter")
OVERLAP_TYPES = frozenset(ROUGE_VARIANTS + SACREBLEU_TYPES)


def _reference(metric_type: str, item: ScoreInput) -> str:
    if item.reference is None:
        raise HarnessError(
            f"the `{metric_type}` scorer compares with the case's reference, and a case has none\n"
            "  fix: give every case of the suite a `reference`, or remove the scorer from the suite"
        )
    return item.reference


class RougeParams(Params):
    """One ROUGE variant per scorer type (`- rougeL`), so each metric row is one number.

    rouge-score's default tokenizer lowercases and keeps only a-z and 0-9: text in other scripts
    scores 0. `rougeLsum` treats newlines as sentence breaks (the library's own convention).
    """

    use_stemmer: bool = True
    measure: Literal["fmeasure", "precision", "recall"] = "fmeasure"


@lru_cache(maxsize=None)
def _rouge(variant: str, use_stemmer: bool) -> RougeScorer:
    # rouge-score imports nltk, and nltk scikit-learn, scipy and pandas: 1.4 s that every command
    # reading a suite (`harness check` among them) would pay, though only a run scoring ROUGE needs
    # it
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer([variant], use_stemmer=use_stemmer)


def _rouge_value(p: RougeParams, hypothesis: str, reference: str) -> tuple[float, str]:
    result = _rouge(p.type, p.use_stemmer).score(reference, hypothesis)[p.type]
    detail = f"P={result.precision:.3f} R={result.recall:.3f} F={result.fmeasure:.3f}"
    return getattr(result, p.measure), detail


def rouge(p: RougeParams, item: ScoreInput) -> Score:
    value, detail = _rouge_value(p, item.output, _reference(p.type, item))
    return Score(value, None, detail)


def corpus(p: Params, items: Sequence[CorpusItem]) -> tuple[float, str]:
    """The corpus-level value as the library defines it, with the settings string it was made with."""
    return (
        corpus_score(p.type, p, [i.output for i in items], [i.reference or "" for i in items]),
        signature(p.type, p, "corpus"),
    )


NEEDS = ("generated", "reference")
ROUGE = scorer(RougeParams, needs=NEEDS, corpus=corpus, bounds=UNIT)(
    rouge
)  # each of ROUGE_VARIANTS


class _SacrebleuParams(Params):
    """Fields are sacrebleu's own argument names; building the metric here turns a bad setting
    (say a tokenizer whose extra dependencies are missing) into an error when the suite loads."""

    @model_validator(mode="after")
    def _builds(self) -> "_SacrebleuParams":
        try:
            _metric(self, sentence=True)
        except (KeyError, RuntimeError, ValueError, ImportError) as exc:
            raise ValueError(f"sacrebleu rejects these settings: {str(exc).strip()}") from None
        return self


class BleuParams(_SacrebleuParams):
    """Per case: sacrebleu's sentence BLEU (effective n-gram order, `exp` smoothing, as
    `sentence_bleu`). Per corpus: `corpus_bleu` (no effective order)."""

    tokenize: str = "13a"
    lowercase: bool = False
    smooth_method: Literal["exp", "floor", "add-k", "none"] = "exp"
    smooth_value: float | None = None

    @field_validator("tokenize")
    @classmethod
    def _known(cls, tokenize: str) -> str:
        if tokenize not in BLEU.TOKENIZERS:
            raise ValueError(
                f"unknown tokenizer {tokenize!r}; sacrebleu has: {', '.join(BLEU.TOKENIZERS)}"
            )
        return tokenize


class ChrfParams(_SacrebleuParams):
    """chrF by default; `word_order: 2` is chrF++."""

    char_order: int = Field(6, ge=1)
    word_order: int = Field(0, ge=0)
    beta: int = Field(2, ge=1)
    lowercase: bool = False
    whitespace: bool = False


class TerParams(_SacrebleuParams):
    """sacrebleu's TER defaults (tercom tokenization, case-insensitive)."""

    case_sensitive: bool = False
    normalized: bool = False
    no_punct: bool = False
    asian_support: bool = False


def _metric(p: Params, sentence: bool) -> Metric:
    """The sacrebleu metric for these params, built once per distinct setting."""
    return _build(
        p.type,
        sentence,
        tuple(sorted(p.model_dump(exclude={"type", "name", "higher_is_better"}).items())),
    )


@lru_cache(maxsize=None)
def _build(metric_type: str, sentence: bool, settings: tuple[tuple[str, Any], ...]) -> Metric:
    kwargs = dict(settings)
    if metric_type == "bleu":
        return BLEU(effective_order=sentence, **kwargs)
    if metric_type == "chrf":
        return CHRF(**kwargs)
    return TER(**kwargs)


def _sentence(p: Params, item: ScoreInput) -> Score:
    result = _metric(p, sentence=True).sentence_score(item.output, [_reference(p.type, item)])
    return Score(result.score, None, str(result))


BLEU_TYPE = scorer(BleuParams, needs=NEEDS, corpus=corpus, bounds=(0.0, 100.0))(_sentence)
CHRF_TYPE = scorer(ChrfParams, needs=NEEDS, corpus=corpus, bounds=(0.0, 100.0))(_sentence)
# TER counts edits: a drop is an improvement
TER_TYPE = scorer(
    TerParams, higher_is_better=False, needs=NEEDS, corpus=corpus, bounds=(0.0, None)
)(_sentence)

_PARAMS: dict[str, type[Params]] = {
    **{v: RougeParams for v in ROUGE_VARIANTS},
    "bleu": BleuParams,
    "chrf": ChrfParams,
    "ter": TerParams,
}


def _params(metric_type: str, params: Params | None) -> Params:
    if metric_type not in _PARAMS:
        raise ValueError(
            f"{metric_type!r} is not an overlap metric; use one of {', '.join(_PARAMS)}"
        )
    if params is None:
        return _PARAMS[metric_type](type=metric_type)
    if params.type != metric_type:
        raise ValueError(f"params are for {params.type!r}, not {metric_type!r}")
    return params


def corpus_score(
    metric_type: str, params: Params | None, hypotheses: list[str], references: list[str]
) -> float:
    """The corpus-level score as the library defines it (one reference per hypothesis).

    rouge-score has no corpus mode, so ROUGE's corpus score is the mean of the per-case values.
    `params` None means the defaults.
    """
    p = _params(metric_type, params)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    if metric_type in ROUGE_VARIANTS:
        return fmean(_rouge_value(p, h, r)[0] for h, r in zip(hypotheses, references))
    return _metric(p, sentence=False).corpus_score(hypotheses, [references]).score


def signature(metric_type: str, params: Params | None, level: Literal["sentence", "corpus"]) -> str:
    """The settings string to record beside the numbers, so others can reproduce them.

    sacrebleu's own signature (e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
    sentence and corpus BLEU differ in `eff`. sacrebleu only knows nrefs after scoring, so the
    metric scores a dummy pair first (the harness always gives exactly one reference, so that is all
    it learns).
    """
    p = _params(metric_type, params)
    if metric_type in ROUGE_VARIANTS:
        stemmer = "on" if p.use_stemmer else "off"
        aggregate = ", corpus=mean of cases" if level == "corpus" else ""
        return (
            f"rouge-score {version('rouge-score')}, {metric_type} {p.measure}, stemmer={stemmer}, "
            f"tokenizer=default{aggregate}"
        )
    metric = _metric(p, sentence=level == "sentence")
    metric.corpus_score(["x"], [["x"]])
    return str(metric.get_signature())
