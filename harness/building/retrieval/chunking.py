"""Chunking by the served model's tokens, with overlap, cutting the original text at token offsets.

Counting the model's own tokens (not words or characters) makes `chunk_tokens * top_k` the real
share of the context window that retrieved text takes. Cutting the original string at the
tokenizer's character offsets (rather than decoding token ids) keeps every chunk an exact
substring of its document, so a fact quoted in a chunk is quoted verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.building.retrieval.documents import Document
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Chunk:
    id: str  # f"{doc_id}#{i}"
    doc_id: str
    text: str
    n_tokens: int
    metadata: dict[str, Any] = field(default_factory=dict)


def windows(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) token windows of `size`, each starting `size - overlap` after the last.

    The last window ends at n; no window lies wholly inside the one before it.
    """
    step, start, out = size - overlap, 0, []
    while True:
        end = min(start + size, n)
        out.append((start, end))
        if end >= n:
            return out
        start += step


def require_fast(tokenizer: "PreTrainedTokenizerBase") -> None:
    """Character offsets (and a full serialization to fingerprint) come only with a fast tokenizer."""
    if not tokenizer.is_fast:
        raise HarnessError(
            "chunking needs a fast (Rust) tokenizer for character offsets; "
            f"{type(tokenizer).__name__} is not one. Load it with AutoTokenizer(use_fast=True)"
        )


def chunk_documents(
    documents: list[Document], tokenizer: "PreTrainedTokenizerBase", size: int, overlap: int
) -> list[Chunk]:
    require_fast(tokenizer)
    encoded = tokenizer(
        [d.text for d in documents],
        add_special_tokens=False,
        return_offsets_mapping=True,
        verbose=False,
    )
    chunks: list[Chunk] = []
    for doc, offsets in zip(documents, encoded["offset_mapping"]):
        for i, (start, end) in enumerate(windows(len(offsets), size, overlap)):
            text = doc.text[offsets[start][0] : offsets[end - 1][1]].strip()
            chunks.append(Chunk(f"{doc.id}#{i}", doc.id, text, end - start, doc.metadata))
    return chunks
