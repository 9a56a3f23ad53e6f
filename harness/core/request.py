"""The data every stage passes along: a request for a model, and the completion that answers it.

Plain frozen dataclasses at the bottom of the import graph, so the store, the engines and the
scorers of log-likelihood can all use them without importing each other.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Literal, Sequence

# Part of every cache key. Bumped when answers cached by an earlier harness cannot be trusted: 2 =
# from before requests for different served names were kept apart on vLLM-CPU, where some baseline
# answers had been generated with the adapter applied (issue 11).
CACHE_VERSION = 2


@dataclass(frozen=True)
class Request:
    """One chat completion; frozen and plain so it can be hashed into a cache key and stored."""

    model: str
    messages: tuple[tuple[str, str], ...]
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int
    response_schema: str | None = (
        None  # JSON Schema text: structured output where the engine supports it
    )
    # Log-likelihood requests score text instead of generating: "text" scores the one message's
    # text, "choices" scores each of `choices` as its continuation. Nothing is generated.
    loglik: Literal["none", "text", "choices"] = "none"
    choices: tuple[str, ...] = ()
    # Return the first generated token's `top_logprobs` likeliest alternatives with their
    # log-probabilities (a judge read G-Eval style); 0: none.
    top_logprobs: int = 0

    @property
    def prompt(self) -> str:
        """A log-likelihood request's raw text (no chat template: the probe asks what the weights
        know)."""
        return self.messages[-1][1]

    def chat(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def fields(self) -> dict:
        """The request as data. Fields added since cache version 2 appear only when set, so the keys
        of every request that does not use them, and the answers cached under those keys, stay what
        they were.
        """
        return {
            k: v
            for k, v in asdict(self).items()
            if not (k in LATER_FIELDS and v == LATER_FIELDS[k])
        }

    def as_json(self) -> str:
        return json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))

    def cache_key(self, model_fingerprint: str) -> str:
        """Same weights + same request + same settings -> same key (the served name does not count)."""
        payload = {**self.fields(), "model": model_fingerprint, "cache_version": CACHE_VERSION}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


LATER_FIELDS = {"top_logprobs": 0}  # field -> its default, which leaves the request's key as it was


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None
    error: str | None = None
    logliks: tuple[
        tuple[float, int], ...
    ] = ()  # log-likelihood requests: (sum log-prob, tokens) per text or choice
    top_logprobs: tuple[
        tuple[str, float], ...
    ] = ()  # Request.top_logprobs: (token, log-prob) of the first token


def loglik_completion(
    request: Request, logliks: Sequence[tuple[float, int]], latency_s: float
) -> Completion:
    """The answer to a log-likelihood request: the numbers, and a readable text of them for the
    report."""
    if request.loglik == "text":
        ((logprob, tokens),) = logliks
        text = (
            f"log-likelihood {logprob:.3f} over {tokens} tokens (perplexity"
            f" {math.exp(-logprob / tokens):.3f})"
        )
    else:
        text = "\n".join(
            f"{choice.strip()!r}: log-likelihood {lp:.3f} over {n} tokens"
            for choice, (lp, n) in zip(request.choices, logliks, strict=True)
        )
    return Completion(
        text=text,
        prompt_tokens=sum(n for _, n in logliks),
        latency_s=latency_s,
        finish_reason="loglik",
        logliks=tuple((float(lp), int(n)) for lp, n in logliks),
    )


def no_loglik(request: Request, engine_name: str) -> Completion | None:
    """An error row for a log-likelihood request an engine cannot score; None for an ordinary
    request."""
    if request.loglik == "none":
        return None
    return Completion(
        text="",
        error=(
            f"{engine_name} gives no prompt log-probabilities, so it cannot score "
            "log-likelihood probes; run them on a local candidate (vLLM or transformers)"
        ),
    )
