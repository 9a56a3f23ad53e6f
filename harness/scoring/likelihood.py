"""Forgetting probes scored by log-likelihood: multiple choice (the likeliest choice) and
perplexity.

The engine answers these cases with numbers, not text (see harness.serving.loglik); the scorers only
read them.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

from harness.core.errors import HarnessError
from harness.scoring.base import UNIT, CorpusItem, Params, Score, ScoreInput, scorer
from harness.serving.loglik import perplexity as pooled_perplexity
from harness.serving.loglik import pick


class ChoiceParams(Params):
    """`normalise: mean` divides each choice's log-prob by its tokens, so long choices are not
    penalised."""

    normalise: Literal["sum", "mean"] = "sum"


@scorer(ChoiceParams, needs=("choices", "logliks"), bounds=UNIT)
def multiple_choice(p: ChoiceParams, item: ScoreInput) -> Score:
    if not item.logliks or item.answer_index is None:
        raise HarnessError(
            "the `multiple_choice` scorer needs multiple-choice cases (`choices` and"
            " `answer_index`)"
        )
    picked = pick(item.logliks, p.normalise)
    right = picked == item.answer_index
    return Score(
        float(right),
        right,
        f"picked choice {picked} by {p.normalise} log-likelihood; "
        f"the answer is choice {item.answer_index}",
    )


def corpus_perplexity(p: Params, items: Sequence[CorpusItem]) -> tuple[float, str]:
    """Pooled over every scored token, not a mean of per-text values."""
    pairs = [pair for item in items for pair in item.logliks]
    return pooled_perplexity(pairs), f"exp(-sum log-prob / {sum(n for _, n in pairs)} tokens)"


@scorer(
    Params,
    higher_is_better=False,
    needs=("text", "logliks"),
    corpus=corpus_perplexity,
    bounds=(1.0, None),
)
def perplexity(p: Params, item: ScoreInput) -> Score:
    """Per text: exp(-log-prob / tokens). The report's corpus perplexity pools tokens over all
    texts."""
    if len(item.logliks) != 1:
        raise HarnessError("the `perplexity` scorer needs `text` cases (plain text to score)")
    ((logprob, tokens),) = item.logliks
    return Score(math.exp(-logprob / tokens), None, f"log-prob {logprob:.3f} over {tokens} tokens")
