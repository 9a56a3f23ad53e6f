"""Log-likelihood scoring: the pure rules on numbers, then vLLM and transformers on the real model.

Agreement tolerance: both engines run float32 and score the same token ids, so each item's log-prob
per scored token may differ by at most 1e-3 nats (measured on this CPU: at most 2e-5, mean 5e-6).
"""

from __future__ import annotations

import json
import math
import random
from typing import Iterator

import httpx
import pytest

from harness.core.models import ModelRef
from harness.core.request import Request
from harness.serving.loglik import (
    LogLik,
    LoglikScorer,
    Span,
    answer_all,
    mc_continuations,
    mc_prompt,
    perplexity,
    pick,
)
from harness.serving.transformers_loglik import HFScorer
from harness.serving.vllm_loglik import VLLMScorer, tokenizer_for
from support.helpers import probe
from support.paths import REPO

SUITES = REPO / "suites"
PER_TOKEN_TOLERANCE = 1e-3


def test_pick_by_sum_or_by_mean_per_token() -> None:
    scores = [LogLik(-2.0, 1), LogLik(-3.0, 6)]
    assert pick(scores, "sum") == 0
    assert pick(scores, "mean") == 1
    assert pick([(-1.0, 1), (-1.0, 1)]) == 0  # a tie goes to the first choice
    with pytest.raises(ValueError, match="normalise"):
        pick(scores, "max")  # type: ignore[arg-type]


def test_perplexity_weights_texts_by_their_tokens() -> None:
    assert perplexity([LogLik(-10.0, 10)]) == pytest.approx(math.e)
    assert perplexity([(-1.0, 1), (-9.0, 3)]) == pytest.approx(math.exp(10 / 4))
    with pytest.raises(ValueError, match="at least one"):
        perplexity([])


def test_mc_prompt_ends_before_the_space_that_each_choice_carries() -> None:
    assert mc_prompt("  What is 2 + 2? ") == "Question: What is 2 + 2?\nAnswer:"
    assert mc_continuations(["4", " five "]) == [" 4", " five"]


@pytest.fixture(scope="module")
def hf(model: ModelRef) -> HFScorer:
    return HFScorer.from_path(model.path)


@pytest.fixture(scope="module")
def vllm(vllm_url: str, model: ModelRef) -> Iterator[VLLMScorer]:
    with VLLMScorer(vllm_url, model.name, tokenizer_for(model.path)) as scorer:
        yield scorer


def _mc_questions(count: int) -> list[tuple[str, list[str]]]:
    cases = [
        json.loads(line)
        for line in (SUITES / "forgetting_mc" / "cases.jsonl").read_text().splitlines()[:count]
    ]
    return [(mc_prompt(case["prompt"]), mc_continuations(case["choices"])) for case in cases]


def logliks(scorer: LoglikScorer, requests: list[Request]) -> list[tuple[tuple[float, int], ...]]:
    """(log-prob, tokens) per text or choice of each probe, answered together as an engine answers a
    batch."""
    answered = answer_all(scorer, requests)
    assert [c.error for c in answered] == [None] * len(requests)
    return [c.logliks for c in answered]


def _paragraphs(count: int) -> list[str]:
    return [
        json.loads(line)["text"]
        for line in (SUITES / "perplexity" / "cases.jsonl").read_text().splitlines()[:count]
    ]


@pytest.mark.slow
def test_both_engines_cut_the_continuation_at_the_same_tokens(
    vllm: VLLMScorer, hf: HFScorer
) -> None:
    prompt = "The capital of France is"
    joined = hf.continuation(
        prompt, " Paris"
    )  # " Paris" is its own token: the tokenisations line up
    assert joined.ids[: joined.start] == tuple(hf.encode(prompt, special=True))
    assert len(joined.ids) == joined.start + 1
    # "un" + "happy" tokenises as one word, "unhappy": the prompt keeps its own tokens, the choice
    # follows.
    glued = hf.continuation("The opposite of happy is un", "happy")
    assert glued.ids == tuple(
        hf.encode("The opposite of happy is un", special=True) + hf.encode("happy", special=False)
    )
    for prefix, choice in [
        (prompt, " Paris"),
        ("The opposite of happy is un", "happy"),
        ("Answer:", " B"),
    ]:
        assert vllm.continuation(prefix, choice) == hf.continuation(prefix, choice)
    with pytest.raises(ValueError, match="at least one token"):
        hf.spans(probe("", (" Paris",)))
    with pytest.raises(ValueError, match="no tokens"):
        hf.spans(probe(prompt, ("",)))


@pytest.mark.slow
def test_vllm_and_transformers_agree(
    vllm_url: str, model: ModelRef, vllm: VLLMScorer, hf: HFScorer
) -> None:
    questions = _mc_questions(6) + [("The opposite of happy is un", ["happy", "sad"])]
    texts = _paragraphs(3) + ["Hi."]
    requests = [probe(prompt, tuple(choices)) for prompt, choices in questions] + [
        probe(text) for text in texts
    ]
    from_vllm, from_hf = logliks(vllm, requests), logliks(hf, requests)
    for (lp_vllm, n_vllm), (lp_hf, n_hf) in zip(
        *(sum(out, ()) for out in (from_vllm, from_hf)), strict=True
    ):
        assert n_vllm == n_hf
        assert abs(lp_vllm - lp_hf) / n_vllm <= PER_TOKEN_TOLERANCE, (
            (lp_vllm, n_vllm),
            (lp_hf, n_hf),
        )
    mc = len(questions)
    assert [pick(choices) for choices in from_vllm[:mc]] == [
        pick(choices) for choices in from_hf[:mc]
    ]
    # A scorer of its own (one prompt per call) gives the shared scorer's numbers (vLLM's to within
    # its batching).
    with VLLMScorer(vllm_url, model.name, tokenizer_for(model.path), per_request=1) as alone:
        one_call, (text,) = logliks(alone, [requests[0], probe("Hi.")])
    assert [lp for lp, _ in one_call] == pytest.approx(
        [lp for lp, _ in from_vllm[0]], abs=PER_TOKEN_TOLERANCE
    )
    assert text[0] == pytest.approx(
        from_hf[-1][0][0], abs=PER_TOKEN_TOLERANCE
    )  # "Hi." is the last text


@pytest.mark.slow
def test_local_token_ids_are_the_servers(vllm_url: str, model: ModelRef) -> None:
    """Probes are tokenized in the harness with the model folder's tokenizer: the ids must be the
    ones the server's own /tokenize gives, with and without special tokens, for every probe text and
    choice.
    """
    texts = [
        text
        for prompt, choices in _mc_questions(50)
        for text in (prompt, *choices, prompt + choices[0])
    ]
    texts += _paragraphs(40) + [
        "",
        " leading space",
        "tabs\tand\nnewlines",
        "café — ünïcode ✓",
        "un",
        "happy",
    ]
    local = tokenizer_for(model.path)
    root = vllm_url.rstrip("/").removesuffix("/v1")
    with httpx.Client(timeout=60) as client:
        for text in texts:
            for special in (True, False):
                served = client.post(
                    f"{root}/tokenize",
                    json={"model": model.name, "prompt": text, "add_special_tokens": special},
                ).json()["tokens"]
                assert local(text, add_special_tokens=special)["input_ids"] == served, (
                    text,
                    special,
                )


@pytest.mark.slow
def test_a_text_scores_every_token_after_the_first(vllm: VLLMScorer, hf: HFScorer) -> None:
    text = _paragraphs(1)[0]
    [((_, tokens),)] = logliks(vllm, [probe(text)])
    assert tokens == len(hf.encode(text, special=True)) - 1
    assert hf.score([Span(tuple(hf.encode(text, special=True)), 1)]) == list(
        *logliks(hf, [probe(text)])
    )


@pytest.mark.slow
def test_the_obvious_continuation_is_likelier(vllm: VLLMScorer, hf: HFScorer) -> None:
    for scorer in (vllm, hf):
        [((paris, _), (banana, _))] = logliks(
            scorer, [probe("The capital of France is", (" Paris", " banana"))]
        )
        assert paris > banana + 2


@pytest.mark.slow
def test_plain_english_is_less_perplexing_than_the_same_words_shuffled(vllm: VLLMScorer) -> None:
    texts = _paragraphs(4)
    rng = random.Random(0)
    shuffled = [" ".join(rng.sample(text.split(), len(text.split()))) for text in texts]
    english, nonsense = (
        perplexity(sum(logliks(vllm, [probe(text) for text in batch]), ()))
        for batch in (texts, shuffled)
    )
    assert math.isfinite(nonsense) and 1 < english < nonsense / 3, (english, nonsense)
