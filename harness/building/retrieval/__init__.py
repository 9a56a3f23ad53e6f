"""Retrieval for RAG candidates: load documents, chunk them by the model's tokens, rank with BM25
(or dense vectors, or both fused), and place the best chunks in the prompt with a template.

    index = build_index(settings, tokenizer, base_dir)      # cached on disk by content
    hits = index.search(question)                           # top_k chunks, best first
    prompt = render_context(DEFAULT_TEMPLATE, question, hits)
"""

from harness.building.retrieval.chunking import Chunk, chunk_documents
from harness.building.retrieval.documents import Document, Skipped
from harness.building.retrieval.index import Hit, Index, build_index, reciprocal_rank_fusion
from harness.building.retrieval.metrics import recall_at_k, reciprocal_rank
from harness.building.retrieval.prompt import DEFAULT_TEMPLATE, check_template, render_context
from harness.building.retrieval.settings import RetrievalSettings

__all__ = [
    "DEFAULT_TEMPLATE",
    "Chunk",
    "Document",
    "Hit",
    "Index",
    "RetrievalSettings",
    "Skipped",
    "build_index",
    "check_template",
    "chunk_documents",
    "recall_at_k",
    "reciprocal_rank",
    "reciprocal_rank_fusion",
    "render_context",
]
