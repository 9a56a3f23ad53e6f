"""The retrieval index: BM25 (bm25s) over token chunks, optionally fused with dense vectors; cached
on disk.

An index is rebuilt only when something that shapes it changed: the documents' bytes, the
chunking settings, the tokenizer, the dense model or the bm25s version. Their hash names the
cache folder, which is written beside it under a temporary name and renamed into place, so an
interrupted build never leaves a folder that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from harness.building.retrieval.chunking import Chunk, chunk_documents, require_fast
from harness.building.retrieval.dense import DenseEncoder, resolve_dense_model
from harness.building.retrieval.documents import (
    Skipped,
    Source,
    describe_skipped,
    parse_sources,
    read_sources,
)
from harness.building.retrieval.settings import RetrievalSettings
from harness.core.models import fingerprint_folder
from harness.core.paths import harness_home

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

FORMAT = (
    1  # bump when lexical tokenization or the cache layout changes: old folders then stop matching
)
MANIFEST = "manifest.json"
FUSION_DEPTH = 100  # candidates each ranker contributes to reciprocal rank fusion


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk. `score` is the method's own: BM25, cosine similarity, or the RRF sum."""

    chunk_id: str
    doc_id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def s_stem(words: list[str]) -> list[str]:
    """Harman's S-stemmer (plural endings only): 'ports' matches 'port' without a stemming library.

    Words of three letters or fewer are left alone, so abbreviations like 'gps' survive.
    """
    out = []
    for word in words:
        if len(word) > 3:
            if word.endswith("ies") and not word.endswith(("eies", "aies")):
                word = word[:-3] + "y"
            elif word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
                word = word[:-1]
            elif word.endswith("s") and not word.endswith(("us", "ss")):
                word = word[:-1]
        out.append(word)
    return out


def lexical_tokens(texts: list[str]) -> list[list[str]]:
    """BM25's words (not the model's tokens): lowercased, English stopwords out, plurals folded."""
    import bm25s

    return bm25s.tokenize(
        texts, stopwords="en", stemmer=s_stem, return_ids=False, show_progress=False
    )


def reciprocal_rank_fusion(rankings: list[list[int]], k: int) -> list[tuple[int, float]]:
    """(item, sum of 1 / (k + rank)) best first; ties go to the smaller item, so order is
    deterministic."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


@dataclass
class Index:
    """Chunks plus their rankers. `built` says whether this call built it or found it cached."""

    chunks: list[Chunk]
    method: str
    top_k: int
    rrf_k: int
    path: Path
    built: bool
    n_documents: int
    skipped: list[Skipped]
    bm25: Any
    encoder: DenseEncoder | None = None
    embeddings: np.ndarray | None = None

    def identity(self) -> tuple[str, str]:
        """(what it is, what a resumed run must find the same): the content-keyed folder it was
        built in."""
        return "indexes", str(self.path)

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        """The best `k` chunks (default: the settings' top_k); fewer when BM25 matches fewer."""
        k = self.top_k if k is None else k
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        k = min(k, len(self.chunks))
        if self.method == "bm25":
            ranked = self._bm25(query, k)
        elif self.method == "dense":
            ranked = self._dense(query, k)
        else:
            depth = min(max(k, FUSION_DEPTH), len(self.chunks))
            lists = [
                [i for i, _ in self._bm25(query, depth)],
                [i for i, _ in self._dense(query, depth)],
            ]
            ranked = reciprocal_rank_fusion(lists, self.rrf_k)[:k]
        return [
            Hit(c.id, c.doc_id, score, c.text, c.metadata)
            for c, score in ((self.chunks[i], s) for i, s in ranked)
        ]

    def _bm25(self, query: str, k: int) -> list[tuple[int, float]]:
        """Chunks sharing no word with the query score 0 and are not returned."""
        found = self.bm25.retrieve(lexical_tokens([query]), k=k, show_progress=False)
        return [(int(i), float(s)) for i, s in zip(found.documents[0], found.scores[0]) if s > 0]

    def _dense(self, query: str, k: int) -> list[tuple[int, float]]:
        assert self.encoder is not None and self.embeddings is not None, (
            "dense ranking needs an encoder"
        )
        scores = self.embeddings @ self.encoder.encode([query])[0]
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top]


def tokenizer_fingerprint(tokenizer: "PreTrainedTokenizerBase") -> str:
    """sha256 of the tokenizer's full serialization: same vocabulary and rules, same chunks."""
    require_fast(tokenizer)
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


def cache_key(
    sources: list[Source],
    settings: RetrievalSettings,
    tokenizer: "PreTrainedTokenizerBase",
    dense_folder: Path | None,
) -> tuple[str, dict[str, Any]]:
    """(hex key, the header that went into it). Query-time settings (top_k, method, rrf_k) are not
    in it."""
    import bm25s

    header = {
        "format": FORMAT,
        "bm25s": bm25s.__version__,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "dense_model": fingerprint_folder(dense_folder) if dense_folder else None,
        "jsonl": settings.documents.endswith(".jsonl"),
    }
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for source in sources:
        digest.update(b"\0" + source.name.encode() + b"\0")
        digest.update(
            hashlib.sha256(source.data).digest()
            if source.data is not None
            else b"unreadable:" + source.error.encode()
        )
    return digest.hexdigest(), header


def build_index(
    settings: RetrievalSettings,
    tokenizer: "PreTrainedTokenizerBase",
    base_dir: Path,
    cache_dir: Path | None = None,
    *,
    log: Callable[[str], None] = print,
) -> Index:
    """The index for these settings, from the cache when nothing that shapes it changed.

    Relative `documents` and `dense_model` paths start at base_dir (the config's folder).
    Skipped files are logged once per call, cached or not: the broken file is still there.
    """
    path = Path(settings.documents).expanduser()
    path = path if path.is_absolute() else base_dir / path
    sources = read_sources(path)
    dense_folder = (
        resolve_dense_model(settings.dense_model, base_dir) if settings.dense_model else None
    )
    encoder = DenseEncoder(dense_folder) if dense_folder else None
    key, header = cache_key(sources, settings, tokenizer, dense_folder)
    root = cache_dir if cache_dir is not None else harness_home() / "indexes"
    folder = root / key[:32]
    built = not (folder / MANIFEST).exists()
    if built:
        _write(
            folder,
            path,
            sources,
            settings,
            tokenizer,
            encoder,
            {**header, "key": key, "documents": str(path)},
        )
    index = _read(folder, settings, encoder, built)
    if index.skipped:
        total = index.n_documents + len(index.skipped)
        log(f"retrieval: {describe_skipped(index.skipped, total)} in {path}")
    return index


def _write(
    folder: Path,
    path: Path,
    sources: list[Source],
    settings: RetrievalSettings,
    tokenizer: "PreTrainedTokenizerBase",
    encoder: DenseEncoder | None,
    header: dict[str, Any],
) -> None:
    import bm25s

    documents, skipped = parse_sources(path, sources)
    chunks = chunk_documents(documents, tokenizer, settings.chunk_tokens, settings.chunk_overlap)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        retriever = bm25s.BM25()
        retriever.index(lexical_tokens([c.text for c in chunks]), show_progress=False)
        retriever.save(str(tmp / "bm25"), show_progress=False)
        with (tmp / "chunks.jsonl").open("w") as out:
            for chunk in chunks:
                out.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
        if encoder is not None:
            np.save(tmp / "embeddings.npy", encoder.encode([c.text for c in chunks]))
        (tmp / MANIFEST).write_text(
            json.dumps(
                {
                    **header,
                    "n_documents": len(documents),
                    "n_chunks": len(chunks),
                    "skipped": [asdict(s) for s in skipped],
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
                indent=2,
            )
        )
        try:
            tmp.rename(folder)
        except OSError:
            if not (
                folder / MANIFEST
            ).exists():  # not a concurrent build of the same key that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read(
    folder: Path, settings: RetrievalSettings, encoder: DenseEncoder | None, built: bool
) -> Index:
    import bm25s

    manifest = json.loads((folder / MANIFEST).read_text())
    with (folder / "chunks.jsonl").open() as lines:
        chunks = [Chunk(**json.loads(line)) for line in lines]
    return Index(
        chunks=chunks,
        method=settings.method,
        top_k=settings.top_k,
        rrf_k=settings.rrf_k,
        path=folder,
        built=built,
        n_documents=manifest["n_documents"],
        skipped=[Skipped(**s) for s in manifest["skipped"]],
        bm25=bm25s.BM25.load(str(folder / "bm25"), show_progress=False),
        encoder=encoder,
        embeddings=np.load(folder / "embeddings.npy") if encoder is not None else None,
    )
