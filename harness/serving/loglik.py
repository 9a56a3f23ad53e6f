"""Log-likelihood scoring for forgetting probes: multiple choice by the likeliest choice, and
perplexity.

Two engines give the same numbers on the same weights: a vLLM server (prompt log-probabilities
through its OpenAI-compatible /v1/completions; serving/vllm_loglik.py) and transformers in-process
(serving/transformers_loglik.py). This module is the scoring rule they share. Both work on token
ids: the text is tokenised once, by the engine's own tokenizer, and the engine is asked for the
log-probability of each of those exact tokens. The boundary rules therefore live here, once, not in
each engine.

Definitions (the ones lm-eval-harness uses):

- A choice's log-likelihood is the sum of log p(token | everything before it) over the choice's tokens,
  scored as the continuation of the prompt. The continuation's tokens are those of `prompt + choice`
  after the prompt's tokens, when the tokenisation of `prompt` is a prefix of that of `prompt + choice`
  (the usual case: the choice starts with a space or punctuation). Where it is not — the choice glues
  onto the prompt's last word, "un" + "happy" — the prompt's tokens and the choice's own tokens are
  concatenated, as lm-eval does, so the prompt is always scored as the same tokens for every choice.
- Choices carry their own leading space (" Paris", not "Paris") and prompts end without one. A
  byte-level BPE tokenizer puts the space inside the next word's token (" Paris" is one token), so a
  prompt ending in a space would leave a lone space token that real text never contains.
- A text's log-likelihood is summed over every token after the first. With a tokenizer that adds a
  BOS token that first token is BOS, so every token of the text is scored; SmolLM2's adds none, so its
  first token (which has nothing to be conditioned on) is not scored. The count of scored tokens comes
  back with the sum, so perplexity is exp(-total / tokens) over exactly the tokens that were scored.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterable, Literal, NamedTuple, Sequence

from harness.core.errors import EngineError
from harness.core.request import Completion, Request, loglik_completion


class LogLik(NamedTuple):
    """A summed log-probability (nats) and how many tokens it covers; a plain (float, int) pair."""

    logprob: float
    tokens: int


@dataclass(frozen=True)
class Span:
    """Score ids[start:], each token given all the ids before it (start >= 1: the first has no
    context)."""

    ids: tuple[int, ...]
    start: int


def mc_prompt(question: str) -> str:
    """The question as "Question: ...\\nAnswer:", continued by each choice's text (lm-eval's ARC
    format).

    The choice text, not its letter, and the choices not listed in the prompt: on
    builtin:forgetting_mc (50 easy questions, 4 choices each) SmolLM2-135M-Instruct picks the right
    one 58% of the time this way (52% by mean per token); with the lettered choices listed above
    "Answer:" it picked 32% scoring the text and 28% scoring " A".." D" (chance is 25%). Answering
    by letter is a skill models gain late (MMLU scores it that way for large models); a small model,
    or one whose fine-tune cost it that skill, sits at chance either way, and the probe would then
    not see it forget the facts themselves. Unlisted choices also keep the prompt short: 4
    continuations of a ~15-token prompt, not of a ~50-token one. The prompt is raw text, not wrapped
    in the chat template (lm-eval's default): the probe asks what the weights know, and that text is
    the same for every candidate.
    """
    return f"Question: {question.strip()}\nAnswer:"


def mc_continuations(choices: Sequence[str]) -> list[str]:
    """What is scored after mc_prompt: each choice's text with its leading space."""
    return [" " + choice.strip() for choice in choices]


def pick(
    choice_logprobs: Sequence[tuple[float, int]], normalise: Literal["sum", "mean"] = "sum"
) -> int:
    """Index of the likeliest choice: by total log-prob, or by log-prob per token ("mean").

    "sum" favours short choices (every extra token costs probability); "mean" removes most of that
    bias for choices of different lengths. Ties go to the first choice, so the pick is
    deterministic.
    """
    if normalise == "sum":
        values = [logprob for logprob, _ in choice_logprobs]
    elif normalise == "mean":
        values = [logprob / tokens for logprob, tokens in choice_logprobs]
    else:
        raise ValueError(f"normalise must be 'sum' or 'mean', not {normalise!r}")
    return max(range(len(values)), key=lambda i: (values[i], -i))


def perplexity(pairs: Iterable[tuple[float, int]]) -> float:
    """exp(-total log-prob / total tokens) over a corpus: token-weighted, not a mean of per-text
    values."""
    total, tokens = 0.0, 0
    for logprob, count in pairs:
        total += logprob
        tokens += count
    if tokens == 0:
        raise ValueError("perplexity needs at least one scored token")
    return math.exp(-total / tokens)


class LoglikScorer:
    """The shared rules; an engine supplies `tokenizer` (a transformers tokenizer, or its own
    `encode`) and `score` (its forward pass)."""

    tokenizer: Any

    def encode(self, text: str, special: bool) -> list[int]:
        """Token ids of text; with special=True, as the model sees a whole input (BOS where it has
        one)."""
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def score(self, spans: Sequence[Span]) -> list[LogLik]:
        """Summed log-probability of each span's scored tokens; batching is the engine's business."""
        raise NotImplementedError

    def continuation(self, prompt: str, choice: str) -> Span:
        context = self.encode(prompt, special=True)
        whole = self.encode(prompt + choice, special=True)
        if whole[: len(context)] == context and len(whole) > len(context):
            return Span(tuple(whole), len(context))
        own = self.encode(choice, special=False)
        if not own:
            raise ValueError(f"choice {choice!r} has no tokens to score")
        return Span(tuple(context + own), len(context))

    def choice_spans(self, prompt: str, choices: Sequence[str]) -> list[Span]:
        spans = [self.continuation(prompt, choice) for choice in choices]
        if any(span.start == 0 for span in spans):
            raise ValueError(
                "every prompt needs at least one token: an empty context has nothing to"
                " condition on"
            )
        return spans

    def text_span(self, text: str) -> Span:
        span = Span(tuple(self.encode(text, special=True)), 1)
        if len(span.ids) < 2:
            raise ValueError("a text needs at least two tokens to have one scored token")
        return span

    def spans(self, request: Request) -> list[Span]:
        """What a request asks to score: its text, or each choice as the continuation of its prompt
        (mc_prompt-style text exactly as the request gives it)."""
        if request.loglik == "text":
            return [self.text_span(request.prompt)]
        return self.choice_spans(request.prompt, request.choices)


# Log-likelihood requests answered per `answer_all` call: enough to fill an engine batch (16
# questions of 4 choices are 64 spans), few enough that progress moves while a suite is scored.
LOGLIK_BATCH = 16


def loglik_batches(requests: Sequence[Request]) -> list[list[int]]:
    """Indices of the log-likelihood requests, one served name per batch (a scorer scores one
    model), LOGLIK_BATCH at a time."""
    by_model: dict[str, list[int]] = {}
    for i, request in enumerate(requests):
        if request.loglik != "none":
            by_model.setdefault(request.model, []).append(i)
    return [
        indices[start : start + LOGLIK_BATCH]
        for indices in by_model.values()
        for start in range(0, len(indices), LOGLIK_BATCH)
    ]


def answer_all(scorer: LoglikScorer, requests: Sequence[Request]) -> list[Completion]:
    """Log-likelihood requests answered together: every span of every request goes to the engine in
    one `score` call, so its batches span cases, not one case's choices. A failure is an error row,
    as for generation: a request whose spans cannot be built fails alone, and when the engine fails
    a call of several requests each is asked again on its own, so one bad request never sinks the
    rest."""
    started = time.perf_counter()
    built: list[list[Span] | str] = []
    for request in requests:
        try:
            built.append(scorer.spans(request))
        except ValueError as exc:
            built.append(f"ValueError: {exc}"[:500])
    try:
        scored = iter(
            scorer.score([span for spans in built if not isinstance(spans, str) for span in spans])
        )
    except EngineError as exc:
        if len(requests) > 1:
            return [answer_all(scorer, [request])[0] for request in requests]
        built = [f"EngineError: {exc}"[:500]]
    latency = (time.perf_counter() - started) / max(
        len(requests), 1
    )  # a share of the call that answered it
    return [
        (
            Completion(text="", latency_s=latency, error=spans)
            if isinstance(spans, str)
            else loglik_completion(request, [next(scored) for _ in spans], latency)
        )
        for request, spans in zip(requests, built, strict=True)
    ]
