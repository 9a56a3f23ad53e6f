"""Overlap metrics on fixed strings: every value must equal what rouge-score and sacrebleu give
directly."""

from __future__ import annotations

from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

import pytest
import sacrebleu
from rouge_score.rouge_scorer import RougeScorer

from harness.core.errors import ConfigError, HarnessError
from harness.scoring.overlap import OVERLAP_TYPES, ROUGE_VARIANTS, corpus_score, signature
from harness.scoring.registry import Score, ScoreInput, build_scorer

HYPS = [
    "The cats were running quickly across the garden.",
    "Refunds are issued within five business days.",
    "",
    "Paris is the capital of France.\nIt lies on the Seine.",
]
REFS = [
    "A cat runs quickly through the gardens.",
    "We issue refunds within 5 business days of the request.",
    "Nothing was said.",
    "The capital of France is Paris.\nThe Seine flows through it.",
]


def score(raw: dict | str, output: str, reference: str | None) -> Score:
    return build_scorer(raw, Path("suite.yaml"), 1, "scorers[0]")(
        ScoreInput(output=output, reference=reference)
    )


@pytest.mark.parametrize("variant", ROUGE_VARIANTS)
@pytest.mark.parametrize("use_stemmer", [True, False])
@pytest.mark.parametrize("measure", ["fmeasure", "precision", "recall"])
def test_rouge_matches_rouge_score(variant: str, use_stemmer: bool, measure: str) -> None:
    direct = RougeScorer([variant], use_stemmer=use_stemmer)
    for hyp, ref in zip(HYPS, REFS):
        got = score({"type": variant, "use_stemmer": use_stemmer, "measure": measure}, hyp, ref)
        assert got.value == getattr(direct.score(ref, hyp)[variant], measure)
        assert got.passed is None


def test_rouge_defaults_are_stemmed_f_measure() -> None:
    want = RougeScorer(["rouge1"], use_stemmer=True).score(REFS[0], HYPS[0])["rouge1"].fmeasure
    unstemmed = (
        RougeScorer(["rouge1"], use_stemmer=False).score(REFS[0], HYPS[0])["rouge1"].fmeasure
    )
    assert score("rouge1", HYPS[0], REFS[0]).value == want != unstemmed


@pytest.mark.parametrize(
    ("raw", "direct"),
    [
        ("bleu", lambda h, r: sacrebleu.sentence_bleu(h, [r])),
        (
            {"type": "bleu", "tokenize": "char", "lowercase": True},
            lambda h, r: sacrebleu.sentence_bleu(h, [r], tokenize="char", lowercase=True),
        ),
        (
            {"type": "bleu", "smooth_method": "floor", "smooth_value": 0.2},
            lambda h, r: sacrebleu.sentence_bleu(h, [r], smooth_method="floor", smooth_value=0.2),
        ),
        ("chrf", lambda h, r: sacrebleu.sentence_chrf(h, [r])),
        (
            {"type": "chrf", "word_order": 2},
            lambda h, r: sacrebleu.sentence_chrf(h, [r], word_order=2),
        ),
        ("ter", lambda h, r: sacrebleu.sentence_ter(h, [r])),
        (
            {"type": "ter", "case_sensitive": True, "no_punct": True},
            lambda h, r: sacrebleu.sentence_ter(h, [r], case_sensitive=True, no_punct=True),
        ),
    ],
)
def test_sentence_scores_match_sacrebleu(raw: dict | str, direct) -> None:
    for hyp, ref in zip(HYPS, REFS):
        got = score(raw, hyp, ref)
        assert got.value == pytest.approx(direct(hyp, ref).score, abs=1e-12)
        assert got.passed is None


def test_ter_is_lower_for_a_better_hypothesis() -> None:
    ref = "the quick brown fox jumps over the lazy dog"
    close, far = "the quick brown fox jumped over the lazy dog", "a dog sleeps"
    assert score("ter", close, ref).value < score("ter", far, ref).value
    assert score("bleu", close, ref).value > score("bleu", far, ref).value
    assert score("ter", far, ref).value > 0 and score("ter", ref, ref).value == 0
    spec = lambda raw: build_scorer(raw, Path("suite.yaml"), 1, "scorers[0]")  # noqa: E731
    assert not spec("ter").higher_is_better
    assert all(spec(t).higher_is_better for t in OVERLAP_TYPES - {"ter"})
    assert spec(
        {"type": "ter", "higher_is_better": True}
    ).higher_is_better  # a suite may say otherwise


@pytest.mark.parametrize("metric_type", sorted(OVERLAP_TYPES))
def test_a_case_without_reference_is_an_error(metric_type: str) -> None:
    with pytest.raises(HarnessError, match="reference"):
        score(metric_type, "some output", None)


@pytest.mark.parametrize(
    ("metric_type", "params", "direct"),
    [
        ("bleu", None, lambda: sacrebleu.corpus_bleu(HYPS, [REFS])),
        (
            "bleu",
            {"tokenize": "intl"},
            lambda: sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="intl"),
        ),
        ("chrf", None, lambda: sacrebleu.corpus_chrf(HYPS, [REFS])),
        ("chrf", {"word_order": 2}, lambda: sacrebleu.corpus_chrf(HYPS, [REFS], word_order=2)),
        ("ter", None, lambda: sacrebleu.corpus_ter(HYPS, [REFS])),
    ],
)
def test_corpus_scores_match_sacrebleu(metric_type: str, params: dict | None, direct) -> None:
    built = (
        build_scorer({"type": metric_type, **params}, Path("suite.yaml"), 1, "s").params
        if params
        else None
    )
    assert corpus_score(metric_type, built, HYPS, REFS) == pytest.approx(direct().score, abs=1e-12)


def test_corpus_bleu_is_not_the_mean_of_sentence_bleu() -> None:
    sentences = [sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(HYPS, REFS)]
    assert corpus_score("bleu", None, HYPS, REFS) != pytest.approx(sum(sentences) / len(sentences))


def test_corpus_rouge_is_the_mean_of_cases() -> None:
    direct = RougeScorer(["rougeL"], use_stemmer=True)
    per_case = [direct.score(r, h)["rougeL"].fmeasure for h, r in zip(HYPS, REFS)]
    assert corpus_score("rougeL", None, HYPS, REFS) == pytest.approx(sum(per_case) / len(per_case))


def test_corpus_score_rejects_bad_calls() -> None:
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_score("bleu", None, HYPS[:2], REFS[:1])
    with pytest.raises(ValueError, match="no hypotheses"):
        corpus_score("chrf", None, [], [])
    with pytest.raises(ValueError, match="not an overlap metric"):
        corpus_score("equals", None, HYPS, REFS)
    chrf = build_scorer("chrf", Path("suite.yaml"), 1, "s").params
    with pytest.raises(ValueError, match="params are for 'chrf'"):
        corpus_score("bleu", chrf, HYPS, REFS)


def test_signatures() -> None:
    v = sacrebleu.__version__
    assert (
        signature("bleu", None, "corpus")
        == f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{v}"
    )
    assert (
        signature("bleu", None, "sentence")
        == f"nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:{v}"
    )
    chrf_pp = build_scorer({"type": "chrf", "word_order": 2}, Path("suite.yaml"), 1, "s").params
    assert "|nc:6|nw:2|" in signature("chrf", chrf_pp, "corpus")
    assert (
        signature("ter", None, "corpus")
        == f"nrefs:1|case:lc|tok:tercom|norm:no|punct:yes|asian:no|version:{v}"
    )
    rv = version("rouge-score")
    assert (
        signature("rougeL", None, "sentence")
        == f"rouge-score {rv}, rougeL fmeasure, stemmer=on, tokenizer=default"
    )
    unstemmed = build_scorer(
        {"type": "rouge2", "use_stemmer": False}, Path("suite.yaml"), 1, "s"
    ).params
    assert (
        signature("rouge2", unstemmed, "corpus")
        == f"rouge-score {rv}, rouge2 fmeasure, stemmer=off, tokenizer=default, corpus=mean of"
        " cases"
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"type": "bleu", "tokenize": "nope"}, "unknown tokenizer 'nope'"),
        pytest.param(
            {"type": "bleu", "tokenize": "ja-mecab"},
            "sacrebleu rejects these settings",
            marks=pytest.mark.skipif(
                find_spec("MeCab") is not None, reason="MeCab is installed here"
            ),
        ),
        ({"type": "chrf", "word_order": -1}, "greater than or equal to 0"),
        ({"type": "rougeL", "measure": "f1"}, "fmeasure"),
        ({"type": "rouge", "use_stemmer": True}, "unknown scorer type 'rouge'"),
        ({"type": "ter", "tokenize": "13a"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_fail_when_the_suite_loads(raw: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        build_scorer(raw, Path("suite.yaml"), 1, "scorers[0]")
