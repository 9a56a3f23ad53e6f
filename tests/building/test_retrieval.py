"""Retrieval: loading, chunking in model tokens, the on-disk cache, search quality on the demo set,
metrics and prompt templates. Fast: the real tokenizer loads in about a second; no model runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from transformers import AutoTokenizer

from harness.building.retrieval import (
    DEFAULT_TEMPLATE,
    Document,
    Hit,
    RetrievalSettings,
    build_index,
    check_template,
    chunk_documents,
    recall_at_k,
    reciprocal_rank,
    reciprocal_rank_fusion,
    render_context,
)
from harness.building.retrieval.chunking import windows
from harness.core.errors import ConfigError, HarnessError
from harness.core.models import ModelRef
from harness.planning.suites import load_suite
from support.paths import REPO

ROOT = REPO
KNOWLEDGE = ROOT / "suites" / "knowledge"


@pytest.fixture(scope="module")
def tokenizer(model: ModelRef):
    return AutoTokenizer.from_pretrained(model.path)


def pdf_bytes(text: str) -> bytes:
    """A minimal valid one-page PDF showing `text` in Helvetica, with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def build(folder: Path, tokenizer, cache: Path, log: list[str] | None = None, **settings):
    messages = log if log is not None else []
    return build_index(
        RetrievalSettings(documents=str(folder), **settings),
        tokenizer,
        folder.parent,
        cache,
        log=messages.append,
    )


# --- loading ---------------------------------------------------------------------------------------


def test_each_file_type_is_loaded_with_its_relative_path_as_id(tmp_path: Path, tokenizer) -> None:
    docs = write(
        tmp_path / "docs",
        {
            "alpha.md": "# Alpha\n\nThe alpha reactor runs at 3150 kelvin.",
            "beta.txt": "The beta pump moves 88 litres per minute.",
            "web/gamma.html": (
                "<html><head><style>p {color: red}</style><script>var secret = 1;</script></head>"
                "<body><p>The gamma <b>antenna</b> is tuned to 1420 MHz.</p></body></html>"
            ),
            "delta.pdf": pdf_bytes("The delta quarterly zephyr index is 4411."),
        },
    )
    log: list[str] = []
    index = build(docs, tokenizer, tmp_path / "cache", log)
    assert index.n_documents == 4 and not index.skipped and not log
    assert {c.doc_id for c in index.chunks} == {
        "alpha.md",
        "beta.txt",
        "web/gamma.html",
        "delta.pdf",
    }
    gamma = next(c for c in index.chunks if c.doc_id == "web/gamma.html")
    assert "1420 MHz" in gamma.text and "secret" not in gamma.text and "color" not in gamma.text
    for query, doc_id in [
        ("zephyr index", "delta.pdf"),
        ("antenna tuned", "web/gamma.html"),
        ("reactor kelvin", "alpha.md"),
        ("pump litres", "beta.txt"),
    ]:
        assert index.search(query, 1)[0].doc_id == doc_id


def test_unreadable_files_are_skipped_counted_and_reported_once(tmp_path: Path, tokenizer) -> None:
    docs = write(
        tmp_path / "docs",
        {
            "good.md": "The only good document mentions the harbour lighthouse.",
            "broken.pdf": b"%PDF-1.4 this is not really a pdf",
            "latin1.txt": "caf\xe9 cr\xe8me".encode("latin-1"),
            "picture.png": b"\x89PNG\r\n",
            ".hidden.md": "hidden files are not documents",
        },
    )
    log: list[str] = []
    index = build(docs, tokenizer, tmp_path / "cache", log)
    assert index.n_documents == 1
    assert {s.name for s in index.skipped} == {"broken.pdf", "latin1.txt", "picture.png"}
    assert len(log) == 1 and "skipped 3 of 4" in log[0]
    assert (
        "latin1.txt (not UTF-8 text)" in log[0] and "picture.png (unsupported type .png)" in log[0]
    )
    again: list[str] = []
    assert not build(docs, tokenizer, tmp_path / "cache", again).built
    assert again == log, "a cached index still reports the files it skipped"


def test_empty_or_missing_documents_are_config_errors(tmp_path: Path, tokenizer) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="the folder has no files") as err:
        build(tmp_path / "empty", tokenizer, tmp_path / "cache")
    assert err.value.key == "documents"
    with pytest.raises(ConfigError, match="not found"):
        build(tmp_path / "nowhere", tokenizer, tmp_path / "cache")
    unusable = write(tmp_path / "unusable", {"a.pdf": b"garbage", "b.md": "   \n"})
    with pytest.raises(
        ConfigError, match=r"no usable documents: skipped 2 of 2: a\.pdf .*b\.md \(empty\)"
    ):
        build(unusable, tokenizer, tmp_path / "cache")


def test_jsonl_documents_keep_their_ids_and_metadata(tmp_path: Path, tokenizer) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(d)
            for d in [
                {
                    "id": "kb/17",
                    "text": "The orchard tractor needs diesel grade K9.",
                    "metadata": {"title": "Tractor"},
                },
                {"id": "kb/18", "text": "The greenhouse fan turns on at 31 degrees."},
                {"id": "kb/19", "text": "  "},
            ]
        )
        + "\n"
    )
    log: list[str] = []
    index = build(path, tokenizer, tmp_path / "cache", log)
    hit = index.search("which diesel grade does the tractor need", 1)[0]
    assert (hit.chunk_id, hit.doc_id, hit.metadata) == ("kb/17#0", "kb/17", {"title": "Tractor"})
    assert index.n_documents == 2 and "kb/19 (empty)" in log[0]


@pytest.mark.parametrize(
    "lines, line, key, problem",
    [
        (['{"id": "a", "text": "fine"}', '{"id": "b", "text": '], 2, "", "not valid JSON"),
        (['{"id": "a"}'], 1, "text", "Field required"),
        (['{"id": "a", "text": "x", "title": "t"}'], 1, "title", "Extra inputs are not permitted"),
        (['{"id": "a", "text": "x"}', "", '{"id": "a", "text": "y"}'], 3, "id", "repeats"),
    ],
)
def test_malformed_jsonl_names_file_and_line(
    tmp_path: Path, tokenizer, lines: list[str], line: int, key: str, problem: str
) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=problem) as err:
        build(path, tokenizer, tmp_path / "cache")
    assert err.value.file == f"{path}:{line}" and err.value.key == key


def test_empty_jsonl_is_a_config_error(tmp_path: Path, tokenizer) -> None:
    (tmp_path / "docs.jsonl").write_text("\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        build(tmp_path / "docs.jsonl", tokenizer, tmp_path / "cache")


# --- chunking --------------------------------------------------------------------------------------


def test_token_windows_overlap_and_end_at_the_document_end() -> None:
    assert windows(120, 50, 10) == [(0, 50), (40, 90), (80, 120)]
    assert windows(130, 50, 10) == [(0, 50), (40, 90), (80, 130)]
    assert windows(131, 50, 10) == [(0, 50), (40, 90), (80, 130), (120, 131)]
    assert windows(50, 50, 10) == [(0, 50)]
    assert windows(7, 50, 10) == [(0, 7)]


def test_chunks_count_model_tokens_and_overlap(tokenizer) -> None:
    text = " ".join(f"word{i}" for i in range(400))
    chunks = chunk_documents([Document("long.md", text)], tokenizer, size=64, overlap=16)
    total = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert [c.n_tokens for c in chunks] == [end - start for start, end in windows(total, 64, 16)]
    assert [c.id for c in chunks] == [f"long.md#{i}" for i in range(len(chunks))]
    assert {c.doc_id for c in chunks} == {"long.md"}
    spans = []
    for chunk in chunks:
        assert (
            abs(len(tokenizer(chunk.text, add_special_tokens=False)["input_ids"]) - chunk.n_tokens)
            <= 2
        )
        start = text.index(chunk.text)  # every chunk is an exact substring of its document
        spans.append((start, start + len(chunk.text)))
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (_, end), (next_start, _) in zip(spans, spans[1:]):
        assert next_start < end, "consecutive chunks share their overlap"


# --- cache -----------------------------------------------------------------------------------------


def test_index_is_rebuilt_only_when_something_that_shapes_it_changes(
    tmp_path: Path, tokenizer
) -> None:
    docs = write(
        tmp_path / "docs",
        {"a.md": "The lighthouse lamp is 12 metres high.", "b.md": "Ferries leave hourly."},
    )
    cache = tmp_path / "cache"
    first = build(docs, tokenizer, cache)
    assert first.built
    same = build(docs, tokenizer, cache)
    assert not same.built and same.path == first.path
    query_only = build(docs, tokenizer, cache, top_k=1)
    assert not query_only.built and len(query_only.search("lighthouse ferries")) == 1
    rechunked = build(docs, tokenizer, cache, chunk_tokens=100, chunk_overlap=10)
    assert rechunked.built and rechunked.path != first.path
    (docs / "a.md").write_text("The lighthouse lamp is 14 metres high.")
    edited = build(docs, tokenizer, cache)
    assert edited.built and edited.path not in (first.path, rechunked.path)
    assert "14 metres" in edited.search("lighthouse lamp", 1)[0].text
    assert not any(p.name.startswith(".") for p in cache.iterdir()), (
        "no temporary folders are left behind"
    )


# --- search ----------------------------------------------------------------------------------------


def test_search_defaults_to_top_k_and_returns_only_matching_chunks(
    tmp_path: Path, tokenizer
) -> None:
    docs = write(
        tmp_path / "docs",
        {f"{n}.md": f"Document about the {n} valve." for n in ("red", "blue", "green")},
    )
    index = build(docs, tokenizer, tmp_path / "cache", top_k=2)
    assert len(index.search("valve")) == 2
    assert len(index.search("valve", 10)) == 3
    assert index.search("submarine periscope", 3) == []
    assert [h.doc_id for h in index.search("blue valves", 1)] == ["blue.md"], (
        "plurals fold to the singular"
    )
    with pytest.raises(ValueError):
        index.search("valve", 0)


def test_demo_questions_retrieve_their_gold_documents(tmp_path: Path, tokenizer) -> None:
    suite = load_suite(KNOWLEDGE / "suite.yaml")
    index = build_index(
        RetrievalSettings(documents="docs"), tokenizer, KNOWLEDGE, tmp_path / "cache"
    )
    doc_ids = {c.doc_id for c in index.chunks}
    recalls, ranks, answered = [], [], []
    for case in suite.cases:
        gold = case.metadata["gold_doc_ids"]
        assert set(gold) <= doc_ids, f"{case.id}: unknown gold document"
        hits = index.search(case.messages[0].content, 3)
        recalls.append(recall_at_k([h.doc_id for h in hits], gold, 3))
        ranks.append(reciprocal_rank([h.doc_id for h in hits], gold))
        answered.append(any(case.reference.casefold() in h.text.casefold() for h in hits))
    recall, mrr, in_context = (sum(v) / len(v) for v in (recalls, ranks, answered))
    print(
        f"\ndemo knowledge suite, {len(suite.cases)} questions, bm25: "
        f"recall@3 {recall:.3f}, MRR {mrr:.3f}, answer in top-3 chunks {in_context:.3f}"
    )
    assert recall >= 0.8 and mrr >= 0.7 and in_context >= 0.8, (recall, mrr, in_context)


def test_demo_references_appear_verbatim_in_their_gold_documents() -> None:
    """The `contains` scorer can only pass if the exact reference string is in the documents."""
    suite = load_suite(KNOWLEDGE / "suite.yaml")
    assert 25 <= len(suite.cases) <= 40
    for case in suite.cases:
        for doc_id in case.metadata["gold_doc_ids"]:
            assert (
                case.reference.casefold() in (KNOWLEDGE / "docs" / doc_id).read_text().casefold()
            ), case.id


# --- metrics ---------------------------------------------------------------------------------------


def test_recall_at_k_and_reciprocal_rank_on_fixed_lists() -> None:
    hits = ["a.md", "b.md", "a.md", "c.md"]
    assert recall_at_k(hits, ["b.md", "d.md"], 2) == 0.5
    assert recall_at_k(hits, ["b.md", "c.md"], 4) == 1.0
    assert recall_at_k(hits, ["c.md"], 3) == 0.0
    assert reciprocal_rank(hits, ["b.md"]) == 0.5
    assert reciprocal_rank(hits, ["c.md", "a.md"]) == 1.0
    assert reciprocal_rank(hits, ["c.md"], k=3) == 0.0
    assert reciprocal_rank(hits, ["z.md"]) == 0.0
    assert reciprocal_rank([], ["a.md"]) == 0.0
    with pytest.raises(ValueError, match="no gold"):
        recall_at_k(hits, [], 3)


def test_reciprocal_rank_fusion_sums_inverse_ranks() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    assert [item for item, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert [item for item, _ in reciprocal_rank_fusion([[5], [4]], k=60)] == [
        4,
        5,
    ], "ties: smaller item first"


# --- templates -------------------------------------------------------------------------------------


def test_default_template_renders_ids_text_and_question_unescaped() -> None:
    check_template(DEFAULT_TEMPLATE, "harness.building.retrieval")
    hits = [
        Hit("faq.md#2", "faq.md", 3.5, "Use <b> & </b> for bold."),
        Hit("x.md#0", "x.md", 1.0, "Other."),
    ]
    prompt = render_context(DEFAULT_TEMPLATE, "How do I write bold?", hits)
    assert "[faq.md#2]\nUse <b> & </b> for bold." in prompt and "[x.md#0]" in prompt
    assert (
        prompt.index("faq.md#2")
        < prompt.index("x.md#0")
        < prompt.index("Question: How do I write bold?")
    )


@pytest.mark.parametrize(
    "template, problem",
    [
        ("Answer: {{ question }}", "never places the retrieved text"),
        ("{{ chunks | length }} chunks. {{ question }}", "never places the retrieved text"),
        ("{% for c in chunks %}{{ c.text }}{% endfor %", "does not parse"),
        ("{{ chunks | shout }}", "does not parse"),
        (
            "{% for c in chunks %}{{ c.text }}{% endfor %}{{ context }}",
            "unknown variables: context",
        ),
        ("{% for c in chunks %}{{ c.body }}{% endfor %}", "does not render"),
    ],
)
def test_bad_templates_are_config_errors(template: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as err:
        check_template(template, "configs/rag.yaml:12", key="candidates[1].template")
    assert err.value.file == "configs/rag.yaml:12" and err.value.key == "candidates[1].template"


# --- settings and dense ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"chunk_tokens": 50, "chunk_overlap": 50}, "must be smaller than chunk_tokens"),
        ({"method": "hybrid"}, "needs `dense_model:`"),
        ({"dense_model": "encoders/minilm"}, "would ignore it"),
        ({"chunk_size": 100}, "Extra inputs are not permitted"),
    ],
)
def test_settings_reject_inconsistent_values(settings: dict, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        RetrievalSettings(documents="docs", **settings)


def test_dense_model_must_be_a_local_folder(tmp_path: Path, tokenizer) -> None:
    docs = write(tmp_path / "docs", {"a.md": "text"})
    with pytest.raises(ConfigError, match="must be a local folder") as err:
        build(
            docs,
            tokenizer,
            tmp_path / "cache",
            method="dense",
            dense_model="sentence-transformers/all-MiniLM-L6-v2",
        )
    assert err.value.key == "dense_model"


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is not None,
    reason="sentence-transformers is installed",
)
def test_dense_without_sentence_transformers_says_how_to_install(tmp_path: Path, tokenizer) -> None:
    docs = write(tmp_path / "docs", {"a.md": "text"})
    write(tmp_path / "encoder", {"config.json": "{}"})
    with pytest.raises(HarnessError, match="pip install sentence-transformers"):
        build(
            docs,
            tokenizer,
            tmp_path / "cache",
            method="hybrid",
            dense_model=str(tmp_path / "encoder"),
        )
