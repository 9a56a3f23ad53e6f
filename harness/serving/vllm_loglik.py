"""Log-likelihoods from a vLLM server: token ids from the model folder's own tokenizer (the files
the server loads), prompt log-probs from /v1/completions."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import httpx

from harness.core.errors import EngineError
from harness.serving.loglik import LogLik, LoglikScorer, Span


class VLLMScorer(LoglikScorer):
    """A vLLM server: the model's tokenizer in-process for ids, /v1/completions with
    `prompt_logprobs` for the scores.

    Tokenizing here, not through the server's /tokenize, saves two round trips per choice (the
    prompt and prompt + choice), which on a LoRA server, where prompts go one at a time, were most
    of the requests. The ids are the server's own: vLLM loads this same tokenizer from the same
    folder (and serves adapters with their base model's tokenizer); every reply is checked against
    the ids sent.

    `prompt_logprobs=0` (a vLLM extra parameter) returns, for every prompt position after the first,
    the log-probability of the token actually there, keyed by its id, so a reply can be checked
    against the ids that were sent. Prompts go as token-id lists, several per request, with
    `max_tokens=1` (the least the server generates; that token is ignored). The OpenAI-style
    `echo=True, logprobs=0` gives the same numbers, but per token string, in OpenAI's layout.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer: Any,
        per_request: int = 64,
        timeout_s: float = 600,
    ) -> None:
        """`tokenizer`: a transformers tokenizer loaded from the served model's folder (see
        `tokenizer_for`)."""
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.tokenizer = tokenizer
        self.per_request = per_request
        self.client = httpx.Client(timeout=timeout_s)

    def __enter__(self) -> "VLLMScorer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()

    def _post(self, url: str, payload: dict) -> dict:
        try:
            response = self.client.post(url, json=payload)
        except httpx.HTTPError as exc:
            raise EngineError(f"log-likelihood request to {url} failed: {exc}") from exc
        if response.status_code != 200:
            raise EngineError(f"{url} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def score(self, spans: Sequence[Span]) -> list[LogLik]:
        results: list[LogLik] = []
        for start in range(0, len(spans), self.per_request):
            chunk = spans[start : start + self.per_request]
            reply = self._post(
                f"{self.base_url}/completions",
                {
                    "model": self.model,
                    "prompt": [list(span.ids) for span in chunk],
                    "max_tokens": 1,
                    "temperature": 0.0,
                    "prompt_logprobs": 0,
                },
            )
            choices = sorted(reply["choices"], key=lambda c: c["index"])
            results += [
                _sum_prompt_logprobs(span, choice["prompt_logprobs"])
                for span, choice in zip(chunk, choices, strict=True)
            ]
        return results


def _sum_prompt_logprobs(span: Span, positions: list[dict[str, dict] | None]) -> LogLik:
    if len(positions) != len(span.ids):
        raise EngineError(
            f"vLLM returned {len(positions)} prompt log-probs for {len(span.ids)} prompt tokens"
        )
    total = 0.0
    for position in range(span.start, len(span.ids)):
        entry = positions[position].get(str(span.ids[position]))
        if entry is None:
            raise EngineError(
                f"vLLM's prompt log-probs at position {position} miss token {span.ids[position]}"
            )
        total += entry["logprob"]
    return LogLik(total, len(span.ids) - span.start)


@lru_cache(maxsize=4)
def tokenizer_for(model_path: Path) -> Any:
    """The tokenizer vLLM loads for a model folder, loaded once per folder."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path, local_files_only=True)
