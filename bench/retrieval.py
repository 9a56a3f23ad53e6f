"""Retrieval benchmark: index build and query latency on ~10k synthetic chunks, against a named
baseline.

Baseline: a brute-force pure-Python BM25 scan (same words, same Lucene BM25 formula, k1=1.5, b=0.75)
that scores every chunk for every query. It is timed on a subset of the queries to stay within a
few seconds, and its top hit is checked against bm25s's, so the ratio compares equal answers.

    .venv/bin/python bench/retrieval.py [--queries 1000] [--baseline-queries 50]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from transformers import AutoTokenizer

from harness.building.retrieval import RetrievalSettings, build_index
from harness.building.retrieval.index import lexical_tokens
from harness.core.models import pull

SEED = 0
DOCUMENTS = 2000  # ~5 chunks each at 200 tokens with 40 overlap: ~10k chunks
WORDS_PER_DOCUMENT = 210
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ter",
    "van",
    "sul",
    "dor",
    "pe",
    "ri",
    "zan",
    "qua",
    "bel",
    "ost",
    "ni",
    "gra",
    "fu",
]


def vocabulary(rng: random.Random, size: int = 20000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def corpus(rng: random.Random) -> list[str]:
    """Zipf-distributed words, like natural text: a few very common, a long tail of rare ones."""
    words = vocabulary(rng)
    weights = [1 / (rank + 1) ** 1.07 for rank in range(len(words))]
    texts = []
    for _ in range(DOCUMENTS):
        sample = rng.choices(words, weights, k=WORDS_PER_DOCUMENT)
        texts.append(
            ". ".join(" ".join(sample[i : i + 11]) for i in range(0, len(sample), 11)) + "."
        )
    return texts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class PythonBM25:
    """The baseline: Counter per chunk, then a full scan scoring every chunk for each query."""

    def __init__(self, chunks: list[list[str]], k1: float = 1.5, b: float = 0.75) -> None:
        self.tfs = [Counter(tokens) for tokens in chunks]
        self.lengths = [len(tokens) for tokens in chunks]
        self.avg = sum(self.lengths) / len(self.lengths)
        df = Counter(word for tf in self.tfs for word in tf)
        n = len(chunks)
        self.idf = {word: math.log(1 + (n - d + 0.5) / (d + 0.5)) for word, d in df.items()}
        self.k1, self.b = k1, b

    def search(self, words: list[str], k: int) -> list[tuple[int, float]]:
        scores = []
        for i, (tf, length) in enumerate(zip(self.tfs, self.lengths)):
            norm = self.k1 * (1 - self.b + self.b * length / self.avg)
            score = sum(self.idf[w] * tf[w] / (tf[w] + norm) for w in words if w in tf)
            scores.append((score, i))
        scores.sort(key=lambda pair: (-pair[0], pair[1]))
        return [(i, s) for s, i in scores[:k] if s > 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--baseline-queries", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(SEED)
    tokenizer = AutoTokenizer.from_pretrained(pull(log=lambda *_: None).path)
    settings = RetrievalSettings(documents="docs.jsonl")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with (work / "docs.jsonl").open("w") as out:
            for i, text in enumerate(corpus(rng)):
                out.write(json.dumps({"id": f"doc-{i:05d}", "text": text}) + "\n")
        started = time.perf_counter()
        index = build_index(settings, tokenizer, work, work / "cache")
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        reopened = build_index(settings, tokenizer, work, work / "cache")
        reopen_s = time.perf_counter() - started
        assert index.built and not reopened.built

        chunk_words = lexical_tokens([c.text for c in index.chunks])
        import bm25s

        started = time.perf_counter()
        bm25s.BM25().index(chunk_words, show_progress=False)
        bm25s_index_s = time.perf_counter() - started
        started = time.perf_counter()
        baseline = PythonBM25(chunk_words)
        baseline_index_s = time.perf_counter() - started

        queries = []
        for _ in range(args.queries):
            words = rng.choice(index.chunks).text.replace(".", "").split()
            queries.append(" ".join(rng.sample(words, 4)))
        index.search(
            queries[0], 3
        )  # first call pays one-time setup; steady state is what queries see
        latencies = []
        for query in queries:
            started = time.perf_counter()
            index.search(query, 3)
            latencies.append(time.perf_counter() - started)

        subset = queries[: args.baseline_queries]
        base_latencies, agree = [], 0
        for query in subset:
            words = lexical_tokens([query])[0]
            started = time.perf_counter()
            top = baseline.search(words, 3)
            base_latencies.append(time.perf_counter() - started)
            mine = index.search(query, 3)
            agree += (
                bool(top) and bool(mine) and math.isclose(top[0][1], mine[0].score, rel_tol=1e-4)
            )

    ms = 1000
    mean, p95 = statistics.mean(latencies) * ms, percentile(latencies, 0.95) * ms
    base_mean, base_p95 = (
        statistics.mean(base_latencies) * ms,
        percentile(base_latencies, 0.95) * ms,
    )
    print(
        f"corpus: {DOCUMENTS} synthetic documents -> {len(index.chunks)} chunks"
        f" ({settings.chunk_tokens} tokens, overlap {settings.chunk_overlap}, SmolLM2 tokenizer),"
        f" seed {SEED}"
    )
    print(
        f"build_index, cold (read + chunk + BM25 + save): {build_s:.2f} s; reopened from cache:"
        f" {reopen_s:.2f} s"
    )
    print(
        f"BM25 index from the same words: bm25s {bm25s_index_s:.2f} s, baseline pure-Python"
        f" {baseline_index_s:.2f} s (bm25s takes {bm25s_index_s / baseline_index_s:.1f}x as long:"
        " it precomputes every word's score per chunk, so a query only sums)"
    )
    print(
        f"query (Index.search, k=3, {len(latencies)} queries): mean {mean:.2f} ms, p95 {p95:.2f} ms"
    )
    print(
        f"baseline brute-force pure-Python BM25 scan ({len(subset)} of the same queries, to stay"
        f" within seconds): mean {base_mean:.1f} ms, p95 {base_p95:.1f} ms"
    )
    print(
        f"ratio: Index.search is {base_mean / mean:.0f}x faster (mean), {base_p95 / p95:.0f}x"
        f" (p95); top-1 score agrees with the baseline on {agree}/{len(subset)} queries"
    )


if __name__ == "__main__":
    main()
