"""Requests through Anthropic's Messages API (Anthropic itself, or vLLM's /v1/messages).

Same contract as the OpenAI engine: paced, bounded, retried by the client, failures as error rows.
"""

from __future__ import annotations

import time
from typing import Iterator, Sequence

import anthropic

from harness.request import Completion, Request, no_loglik
from harness.serving.concurrency import run_concurrently
from harness.serving.limits import RatePacer
from harness.serving.openai_client import describe


def sampling(request: Request) -> dict[str, float]:
    """Sampling parameters for the body (this client version no longer names them; the API takes them).
    Current Claude models reject a request that sets both temperature and top_p, so top_p goes only
    when it narrows anything (below 1.0)."""
    body = {"temperature": request.temperature}
    if request.top_p != 1.0:
        body["top_p"] = request.top_p
    return body


class AnthropicEngine:
    def __init__(self, base_url: str | None, api_key: str, max_concurrency: int, timeout_s: float, max_retries: int,
                 requests_per_minute: float | None = None) -> None:
        self.client = anthropic.Anthropic(base_url=base_url, api_key=api_key, timeout=timeout_s,
                                          max_retries=max_retries)
        self.max_concurrency = max_concurrency
        self.pacer = RatePacer(requests_per_minute)
        self.secrets = (api_key,)

    def complete(self, request: Request) -> Completion:
        """The system prompt is a parameter here, not a message; consecutive turns pass through as given."""
        refused = no_loglik(request, "Anthropic's Messages API")
        if refused is not None:
            return refused
        self.pacer.wait()
        system = "\n\n".join(content for role, content in request.messages if role == "system")
        messages = [{"role": role, "content": content} for role, content in request.messages if role != "system"]
        started = time.perf_counter()
        kwargs = {"system": system} if system else {}
        try:
            response = self.client.messages.create(
                model=request.model, messages=messages, max_tokens=request.max_tokens,  # type: ignore[arg-type]
                stop_sequences=list(request.stop) or anthropic.NOT_GIVEN,
                extra_body=sampling(request), **kwargs,
            )
        except anthropic.AnthropicError as exc:
            return Completion(text="", latency_s=time.perf_counter() - started, error=describe(exc, self.secrets))
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        return Completion(
            text=text, prompt_tokens=response.usage.input_tokens, completion_tokens=response.usage.output_tokens,
            latency_s=time.perf_counter() - started, finish_reason=response.stop_reason,
        )

    def run(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        return run_concurrently(self.complete, requests, self.max_concurrency)
