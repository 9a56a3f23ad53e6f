"""`kind: rag`: the base model with retrieved chunks placed in the prompt by a jinja2 template."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from harness.building.kinds.base import Kind, KindContext, LocalCandidateBase
from harness.building.retrieval import (
    DEFAULT_TEMPLATE,
    Index,
    build_index,
    check_template,
    render_context,
)
from harness.building.retrieval.settings import RetrievalSettings
from harness.core.console import console
from harness.core.textfiles import check_text

if TYPE_CHECKING:
    from harness.store.store import Store


class RagCandidate(LocalCandidateBase):
    kind: Literal["rag"]
    retrieval: RetrievalSettings
    template: str | None = Field(
        None, description="jinja2 prompt with `question` and `chunks`; default: a built-in one"
    )


def check(candidate: RagCandidate, ctx: KindContext) -> None:
    documents = ctx.resolve_path(candidate.retrieval.documents)
    if not documents.exists():
        raise ctx.error(
            ("retrieval", "documents"),
            f"{documents} does not exist",
            "point `documents:` at a folder of .md/.txt/.html/.pdf files or a .jsonl (relative to"
            " the config)",
        )
    check_text(documents)
    if candidate.template is not None:
        check_template(candidate.template, ctx.where("template"), ctx.key("template"))


def build(
    candidate: RagCandidate, ctx: KindContext, store: Store, run_id: str, retrain: bool
) -> Index:
    """The index of the candidate's documents (cached by content hash), chunked with its model's
    tokenizer."""
    from transformers import (
        AutoTokenizer,
    )  # a second of import time, only for runs with a RAG candidate

    assert ctx.model is not None  # a rag candidate runs on a base model
    tokenizer = AutoTokenizer.from_pretrained(ctx.model.path)
    index = build_index(candidate.retrieval, tokenizer, ctx.base_dir, log=console.log)
    store.put_artifact(
        run_id,
        candidate.name,
        "retrieval",
        {
            "documents": candidate.retrieval.documents,
            "method": candidate.retrieval.method,
            "top_k": candidate.retrieval.top_k,
            "chunk_tokens": candidate.retrieval.chunk_tokens,
            "chunk_overlap": candidate.retrieval.chunk_overlap,
            "chunks": len(index.chunks),
            "documents_indexed": index.n_documents,
            "skipped": len(index.skipped),
            "built": index.built,
            "index_path": str(index.path),
        },
    )
    return index


def context(
    candidate: RagCandidate, index: Any, turns: list[dict[str, str]]
) -> tuple[list[dict[str, str]], list[dict]]:
    """Retrieve with the last user turn and replace it by the template's rendering of question +
    chunks."""
    last = max(i for i, m in enumerate(turns) if m["role"] == "user")
    question = turns[last]["content"]
    hits = index.search(question)
    turns = [
        *turns[:last],
        {
            "role": "user",
            "content": render_context(candidate.template or DEFAULT_TEMPLATE, question, hits),
        },
        *turns[last + 1 :],
    ]
    return turns, [
        {"id": h.chunk_id, "doc_id": h.doc_id, "score": round(float(h.score), 4)} for h in hits
    ]


KIND = Kind("rag", RagCandidate, retrieves=True, check=check, build=build, context=context)
