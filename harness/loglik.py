"""Log-likelihood scoring for forgetting probes: multiple choice by the likeliest choice, and perplexity.

Two engines give the same numbers on the same weights: a vLLM server (prompt log-probabilities through
its OpenAI-compatible /v1/completions) and transformers in-process. Both work on token ids: the text is
tokenised once, by the engine's own tokenizer, and the engine is asked for the log-probability of each
of those exact tokens. The boundary rules therefore live here, once, not in each engine.

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
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Literal, NamedTuple, Sequence

import httpx

from harness.errors import EngineError
from harness.serving import Completion, Request, loglik_completion


class LogLik(NamedTuple):
    """A summed log-probability (nats) and how many tokens it covers; a plain (float, int) pair."""

    logprob: float
    tokens: int


@dataclass(frozen=True)
class Span:
    """Score ids[start:], each token given all the ids before it (start >= 1: the first has no context)."""

    ids: tuple[int, ...]
    start: int


def mc_prompt(question: str) -> str:
    """The question as "Question: ...\\nAnswer:", continued by each choice's text (lm-eval's ARC format).

    The choice text, not its letter, and the choices not listed in the prompt: on builtin:forgetting_mc (50 easy
    questions, 4 choices each) SmolLM2-135M-Instruct picks the right one 58% of the time this way
    (52% by mean per token); with the lettered choices listed above "Answer:" it picked 32% scoring
    the text and 28% scoring " A".." D" (chance is 25%). Answering by letter is a skill models gain
    late (MMLU scores it that way for large models); a small model, or one whose fine-tune cost it
    that skill, sits at chance either way, and the probe would then not see it forget the facts
    themselves. Unlisted choices also keep the prompt short: 4 continuations of a ~15-token prompt,
    not of a ~50-token one.
    The prompt is raw text, not wrapped in the chat template (lm-eval's default): the probe asks
    what the weights know, and that text is the same for every candidate.
    """
    return f"Question: {question.strip()}\nAnswer:"


def mc_continuations(choices: Sequence[str]) -> list[str]:
    """What is scored after mc_prompt: each choice's text with its leading space."""
    return [" " + choice.strip() for choice in choices]


def pick(choice_logprobs: Sequence[tuple[float, int]], normalise: Literal["sum", "mean"] = "sum") -> int:
    """Index of the likeliest choice: by total log-prob, or by log-prob per token ("mean").

    "sum" favours short choices (every extra token costs probability); "mean" removes most of that
    bias for choices of different lengths. Ties go to the first choice, so the pick is deterministic.
    """
    if normalise == "sum":
        values = [logprob for logprob, _ in choice_logprobs]
    elif normalise == "mean":
        values = [logprob / tokens for logprob, tokens in choice_logprobs]
    else:
        raise ValueError(f"normalise must be 'sum' or 'mean', not {normalise!r}")
    return max(range(len(values)), key=lambda i: (values[i], -i))


def perplexity(pairs: Iterable[tuple[float, int]]) -> float:
    """exp(-total log-prob / total tokens) over a corpus: token-weighted, not a mean of per-text values."""
    total, tokens = 0.0, 0
    for logprob, count in pairs:
        total += logprob
        tokens += count
    if tokens == 0:
        raise ValueError("perplexity needs at least one scored token")
    return math.exp(-total / tokens)


class LoglikScorer:
    """The shared rules; an engine supplies `encode` (its tokenizer) and `score` (its forward pass)."""

    def encode(self, text: str, special: bool) -> list[int]:
        """Token ids of text; with special=True, as the model sees a whole input (BOS where it has one)."""
        raise NotImplementedError

    def score(self, spans: Sequence[Span]) -> list[LogLik]:
        """Summed log-probability of each span's scored tokens; batching is the engine's business."""
        raise NotImplementedError

    def continuation(self, prompt: str, choice: str) -> Span:
        context = self.encode(prompt, special=True)
        whole = self.encode(prompt + choice, special=True)
        if whole[:len(context)] == context and len(whole) > len(context):
            return Span(tuple(whole), len(context))
        own = self.encode(choice, special=False)
        if not own:
            raise ValueError(f"choice {choice!r} has no tokens to score")
        return Span(tuple(context + own), len(context))

    def batch_choice_logprobs(self, questions: Sequence[tuple[str, Sequence[str]]]) -> list[list[LogLik]]:
        """Many (prompt, choices) at once: all their continuations go to the engine in one call."""
        spans = [self.continuation(prompt, choice) for prompt, choices in questions for choice in choices]
        if any(span.start == 0 for span in spans):
            raise ValueError("every prompt needs at least one token: an empty context has nothing to condition on")
        flat = iter(self.score(spans))
        return [[next(flat) for _ in choices] for _, choices in questions]

    def choice_logprobs(self, prompt: str, choices: Sequence[str]) -> list[LogLik]:
        return self.batch_choice_logprobs([(prompt, choices)])[0]

    def text_logprobs(self, texts: Sequence[str]) -> list[LogLik]:
        spans = [Span(tuple(self.encode(text, special=True)), 1) for text in texts]
        if any(len(span.ids) < 2 for span in spans):
            raise ValueError("a text needs at least two tokens to have one scored token")
        return self.score(spans)

    def text_logprob(self, text: str) -> LogLik:
        return self.text_logprobs([text])[0]


class VLLMScorer(LoglikScorer):
    """A vLLM server: /tokenize for ids, /v1/completions with `prompt_logprobs` for the scores.

    `prompt_logprobs=0` (a vLLM extra parameter) returns, for every prompt position after the first,
    the log-probability of the token actually there, keyed by its id, so a reply can be checked
    against the ids that were sent. Prompts go as token-id lists, several per request, with
    `max_tokens=1` (the least the server generates; that token is ignored). The OpenAI-style
    `echo=True, logprobs=0` gives the same numbers, but per token string, in OpenAI's layout.
    """

    def __init__(self, base_url: str, model: str, per_request: int = 64, timeout_s: float = 600) -> None:
        self.base_url = base_url.rstrip("/")
        self.root = self.base_url.removesuffix("/v1")  # /tokenize is served beside /v1, not under it
        self.model = model
        self.per_request = per_request
        self.client = httpx.Client(timeout=timeout_s)

    def __enter__(self) -> "VLLMScorer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()

    def _post(self, url: str, payload: dict) -> dict:
        try:
            response = self.client.post(url, json=payload)
        except httpx.TransportError as exc:
            raise EngineError(f"log-likelihood request to {url} failed: {exc}") from exc
        if response.status_code != 200:
            raise EngineError(f"{url} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def encode(self, text: str, special: bool) -> list[int]:
        payload = {"model": self.model, "prompt": text, "add_special_tokens": special}
        return self._post(f"{self.root}/tokenize", payload)["tokens"]

    def score(self, spans: Sequence[Span]) -> list[LogLik]:
        results: list[LogLik] = []
        for start in range(0, len(spans), self.per_request):
            chunk = spans[start:start + self.per_request]
            reply = self._post(f"{self.base_url}/completions", {
                "model": self.model, "prompt": [list(span.ids) for span in chunk],
                "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0,
            })
            choices = sorted(reply["choices"], key=lambda c: c["index"])
            results += [_sum_prompt_logprobs(span, choice["prompt_logprobs"])
                        for span, choice in zip(chunk, choices, strict=True)]
        return results


def _sum_prompt_logprobs(span: Span, positions: list[dict[str, dict] | None]) -> LogLik:
    if len(positions) != len(span.ids):
        raise EngineError(f"vLLM returned {len(positions)} prompt log-probs for {len(span.ids)} prompt tokens")
    total = 0.0
    for position in range(span.start, len(span.ids)):
        entry = positions[position].get(str(span.ids[position]))
        if entry is None:
            raise EngineError(f"vLLM's prompt log-probs at position {position} miss token {span.ids[position]}")
        total += entry["logprob"]
    return LogLik(total, len(span.ids) - span.start)


class HFScorer(LoglikScorer):
    """The model in-process with transformers, in float32, scoring spans in padded batches."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16) -> None:
        """`model`: any causal LM in eval mode, a peft model included (the transformers engine's own)."""
        import torch

        self.torch = torch
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    @classmethod
    def from_path(cls, model_path: str | Path, batch_size: int = 16) -> "HFScorer":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
        return cls(model, AutoTokenizer.from_pretrained(model_path), batch_size)

    def encode(self, text: str, special: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def score(self, spans: Sequence[Span]) -> list[LogLik]:
        """Left-padded, so every row's scored tokens end in the last column and the vocabulary
        projection (a fifth of this model's compute) runs only on the columns some row scores."""
        torch = self.torch
        order = sorted(range(len(spans)), key=lambda i: len(spans[i].ids))  # similar lengths pad least
        results: dict[int, LogLik] = {}
        for start in range(0, len(order), self.batch_size):
            chunk = [spans[i] for i in order[start:start + self.batch_size]]
            width = max(len(span.ids) for span in chunk)
            scored = max(len(span.ids) - span.start for span in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, span in enumerate(chunk):
                ids[row, width - len(span.ids):] = torch.tensor(span.ids)
                mask[row, width - len(span.ids):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # each row counts from its own first token
            with torch.inference_mode():
                # The logits at column t predict column t+1: keep the `scored` columns before the last.
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                    logits_to_keep=scored + 1).logits[:, :-1].float()
                logprobs = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, width - scored:, None])[..., 0]
            for row, (index, span) in enumerate(zip(order[start:start + self.batch_size], chunk)):
                count = len(span.ids) - span.start
                results[index] = LogLik(float(logprobs[row, scored - count:].sum()), count)
        return [results[i] for i in range(len(spans))]


def choice_logprobs_vllm(base_url: str, model: str, prompt: str, choices: Sequence[str]) -> list[LogLik]:
    with VLLMScorer(base_url, model) as scorer:
        return scorer.choice_logprobs(prompt, choices)


def text_logprob_vllm(base_url: str, model: str, text: str) -> LogLik:
    with VLLMScorer(base_url, model) as scorer:
        return scorer.text_logprob(text)


def hf_scorer(model_path: str | Path) -> HFScorer:
    """The scorer for a model folder, loaded once: calls for one model in a row share it."""
    return _cached_hf_scorer(str(Path(model_path).resolve()))


@lru_cache(maxsize=1)
def _cached_hf_scorer(model_path: str) -> HFScorer:
    return HFScorer.from_path(model_path)


def choice_logprobs_hf(model_path: str | Path, prompt: str, choices: Sequence[str]) -> list[LogLik]:
    return hf_scorer(model_path).choice_logprobs(prompt, choices)


def text_logprob_hf(model_path: str | Path, text: str) -> LogLik:
    return hf_scorer(model_path).text_logprob(text)


def answer(scorer: LoglikScorer, request: Request) -> Completion:
    """A log-likelihood request answered by an engine's scorer; a failure is an error row, as for generation.
    A choice is scored as the continuation of mc_prompt-style text exactly as the request gives it."""
    started = time.perf_counter()
    try:
        if request.loglik == "text":
            logliks = [scorer.text_logprob(request.prompt)]
        else:
            logliks = scorer.choice_logprobs(request.prompt, request.choices)
    except (EngineError, ValueError, httpx.HTTPError) as exc:
        return Completion(text="", latency_s=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"[:500])
    return loglik_completion(request, logliks, time.perf_counter() - started)
