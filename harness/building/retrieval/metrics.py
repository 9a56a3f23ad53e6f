"""Retrieval quality per case, so candidates can be compared pairwise on the same questions.

Hits are chunk-level (several may come from one document); relevance is judged by document id.
"""

from __future__ import annotations


def _check_gold(gold_doc_ids: list[str]) -> set[str]:
    if not gold_doc_ids:
        raise ValueError("no gold document ids: leave this case out of retrieval metrics")
    return set(gold_doc_ids)


def recall_at_k(hits_doc_ids: list[str], gold_doc_ids: list[str], k: int) -> float:
    """Share of the gold documents found among the first k hits."""
    gold = _check_gold(gold_doc_ids)
    return len(gold & set(hits_doc_ids[:k])) / len(gold)


def reciprocal_rank(
    hits_doc_ids: list[str], gold_doc_ids: list[str], k: int | None = None
) -> float:
    """1 / rank of the first hit from a gold document (within the first k, if given), else 0."""
    gold = _check_gold(gold_doc_ids)
    for rank, doc_id in enumerate(hits_doc_ids[:k], start=1):
        if doc_id in gold:
            return 1.0 / rank
    return 0.0
