"""What a RAG candidate retrieves from and how: validated like every other part of the config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.core.strict import Strict


class RetrievalSettings(Strict):
    """Documents, chunking (in the served model's tokens) and the ranking method.

    Chunk sizes count the model's own tokens, so `chunk_tokens * top_k` says how much of the
    context window the retrieved text takes, whatever the language or markup of the documents.
    """

    documents: str = Field(
        description=(
            "a folder of .md/.txt/.html/.pdf files, or a .jsonl of {id, text, metadata}; "
            "relative paths start at the config's folder"
        )
    )
    chunk_tokens: int = Field(200, ge=8, description="chunk length in the model's tokenizer tokens")
    chunk_overlap: int = Field(
        40, ge=0, description="tokens each chunk repeats from the one before"
    )
    top_k: int = Field(3, ge=1, description="chunks placed in the prompt")
    method: Literal["bm25", "dense", "hybrid"] = "bm25"
    dense_model: str | None = Field(
        None,
        description=(
            "a LOCAL sentence-transformers folder (never a hub name); "
            "needed by `dense` and `hybrid`"
        ),
    )
    rrf_k: int = Field(60, ge=1, description="reciprocal rank fusion constant for `hybrid`")

    @model_validator(mode="after")
    def _consistent(self) -> "RetrievalSettings":
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_tokens "
                f"({self.chunk_tokens}), or chunking would never advance"
            )
        if self.method != "bm25" and self.dense_model is None:
            raise ValueError(
                f"method {self.method!r} needs `dense_model:` (a local sentence-transformers"
                " folder)"
            )
        if self.method == "bm25" and self.dense_model is not None:
            raise ValueError(
                "`dense_model` is set but method is 'bm25', which would ignore it; "
                "set `method: hybrid` (or dense), or remove dense_model"
            )
        return self
