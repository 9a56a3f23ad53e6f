"""Retrieval metrics of a RAG candidate, per case: written with its answer, for the cases that name
their gold documents. A suite adds these itself when any case has `metadata.gold_doc_ids`."""

from __future__ import annotations

from harness.building.retrieval.metrics import recall_at_k, reciprocal_rank
from harness.scoring.base import UNIT, Params, Score, ScoreInput, scorer

RETRIEVAL_METRICS = ("recall_at_k", "mrr")
NEEDS = ("gold_documents", "retrieval")


@scorer(Params, needs=NEEDS, bounds=UNIT)
def recall(p: Params, item: ScoreInput) -> Score:
    k = len(item.retrieved)
    return Score(recall_at_k(list(item.retrieved), list(item.gold), k), None, f"k={k}")


@scorer(Params, needs=NEEDS, bounds=UNIT)
def mrr(p: Params, item: ScoreInput) -> Score:
    return Score(reciprocal_rank(list(item.retrieved), list(item.gold)), None, "")
