"""Requests through Anthropic's Messages API (Anthropic itself, or vLLM's /v1/messages).

Same contract as the OpenAI engine: paced, bounded, retried by the client, replies checked for the
shape of an answer (see serving.shapes), failures as error rows, answers redacted of the key and
capped in length.
"""

from __future__ import annotations

from contextlib import closing, contextmanager
from pathlib import Path
from typing import Awaitable, Iterator, Sequence

import anthropic

from harness.core.request import Completion, Request, no_loglik
from harness.serving.base import EndpointTarget, Engine
from harness.serving.deadline import TryDeadline
from harness.serving.endpoints import fleet
from harness.serving.fleet import Fleet, Replica
from harness.serving.limits import RatePacer
from harness.serving.settings import EngineSettings
from harness.serving.shapes import (
    HttpEngine,
    NotAnAnswer,
    RawReply,
    checked,
    count,
    may,
    need,
    own_secrets,
)


def sampling(request: Request) -> dict[str, float]:
    """Sampling parameters for the body (this client version no longer names them; the API takes
    them). Current Claude models reject a request that sets both temperature and top_p, so top_p
    goes only when it narrows anything (below 1.0)."""
    body = {"temperature": request.temperature}
    if request.top_p != 1.0:
        body["top_p"] = request.top_p
    return body


class Http(TryDeadline, anthropic.DefaultAsyncHttpxClient):
    """The anthropic client's own HTTP client, each try held to a deadline."""


class AnthropicEngine(HttpEngine):
    client_errors = (anthropic.AnthropicError,)
    unreachable_errors = (anthropic.APIConnectionError,)
    timeout_errors = (anthropic.APITimeoutError,)

    def __init__(
        self,
        base_url: str | None,
        api_key: str,
        max_concurrency: int,
        timeout_s: float,
        max_retries: int,
        requests_per_minute: float | None = None,
        max_answer_chars: int | None = None,
    ) -> None:
        self.client = anthropic.AsyncAnthropic(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=Http(timeout_s),
        )
        self.max_concurrency = max_concurrency
        self.max_retries, self.timeout_s, self.max_answer_chars = (
            max_retries,
            timeout_s,
            max_answer_chars,
        )
        self.pacer = RatePacer(requests_per_minute)
        self.secrets = own_secrets(api_key, base_url)

    def complete(self, request: Request) -> Completion:
        """The system prompt is a parameter here, not a message; consecutive turns pass through as
        given."""
        refused = no_loglik(request, "Anthropic's Messages API")
        if refused is not None:
            return refused
        system = "\n\n".join(content for role, content in request.messages if role == "system")
        messages = [
            {"role": role, "content": content}
            for role, content in request.messages
            if role != "system"
        ]
        kwargs = {"system": system} if system else {}

        def send() -> Awaitable[RawReply]:
            return self.client.messages.with_raw_response.create(
                model=request.model,
                messages=messages,
                max_tokens=request.max_tokens,  # type: ignore[arg-type]
                stop_sequences=list(request.stop) or anthropic.NOT_GIVEN,
                extra_body=sampling(request),
                **kwargs,
            )

        return self.answer(send, read_message, request.model)

    def list_models(self) -> Awaitable[RawReply]:
        """All of them on one page (Anthropic's own list pages by 20 unless told)."""
        return self.client.with_options(max_retries=0).models.with_raw_response.list(limit=1000)

    def run(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        """This one server as a fleet of one (see fleet.Fleet.run)."""
        return Fleet([Replica(self.endpoint, self, self.max_concurrency)]).run(requests)


def read_message(body: dict) -> Completion:
    """A Messages API body -> the completion, or NotAnAnswer: an answer's `content` is a list of
    typed blocks with at least one text block (its text blocks joined are the answer); token counts
    and the stop reason may be absent, but not of another type."""
    blocks = [
        checked(block, dict, f"content[{i}]")
        for i, block in enumerate(need(body, "content", list, ""))
    ]
    texts = [
        need(block, "text", str, f"content[{i}]")
        for i, block in enumerate(blocks)
        if need(block, "type", str, f"content[{i}]") == "text"
    ]
    if not texts:
        raise NotAnAnswer("content has no text block")
    usage = may(body, "usage", dict, "", {})
    return Completion(
        text="".join(texts),
        prompt_tokens=count(usage, "input_tokens", "usage"),
        completion_tokens=count(usage, "output_tokens", "usage"),
        finish_reason=may(body, "stop_reason", str, "", None),
    )


@contextmanager
def anthropic_endpoint(
    target: EndpointTarget, config: EngineSettings, run_dir: Path, seed: int
) -> Iterator[Engine]:
    """The `anthropic` protocol's engine (see settings.ANTHROPIC): a client per server of the
    target."""
    with closing(fleet(target, AnthropicEngine)) as servers:
        yield servers
