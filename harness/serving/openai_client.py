"""Requests to any OpenAI-compatible server (our managed vLLM, or a deployed endpoint).

The openai client already retries connection errors, timeouts, 408/409/429 and 5xx with exponential
backoff and jitter; we pace requests to the endpoint's rate limit, bound how many are in flight,
hold each try and each request to a deadline (see serving.deadline), and turn final failures into
error completions, so one bad request never sinks a run.
"""

from __future__ import annotations

import json
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Awaitable, Callable, Iterator, Sequence

import openai

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
    logprob,
    may,
    need,
    own_secrets,
)


class Http(TryDeadline, openai.DefaultAsyncHttpxClient):
    """The openai client's own HTTP client, each try held to a deadline."""


class OpenAIEngine(HttpEngine):
    client_errors = (openai.OpenAIError,)
    unreachable_errors = (openai.APIConnectionError,)
    timeout_errors = (openai.APITimeoutError,)

    def __init__(
        self,
        base_url: str,
        api_key: str,
        max_concurrency: int,
        timeout_s: float,
        max_retries: int,
        requests_per_minute: float | None = None,
        loglik: Callable[[Sequence[Request]], list[Completion]] | None = None,
        isolate_models: bool = False,
        max_answer_chars: int | None = None,
    ) -> None:
        """`loglik`: how to answer log-likelihood requests (several of one served name at a time);
        only a server we run ourselves (vLLM) has one. `isolate_models`: never have requests for two
        served names in flight together (see `run`). `max_answer_chars`: cut longer answers (see
        limits.capped); None: an answer is as long as it comes.
        """
        self.loglik = loglik
        self.isolate_models = isolate_models
        self.client = openai.AsyncOpenAI(
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
        """One chat completion, read from the raw reply once its shape is checked (see
        HttpEngine.answer)."""
        if request.loglik != "none":
            return (
                self.loglik([request])[0]
                if self.loglik
                else no_loglik(request, "an OpenAI-compatible endpoint")
            )  # type: ignore[return-value]
        extra = {}
        if request.response_schema:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": json.loads(request.response_schema)},
            }
        if request.top_logprobs:
            extra.update(logprobs=True, top_logprobs=request.top_logprobs)

        def send() -> Awaitable[RawReply]:
            return self.client.chat.completions.with_raw_response.create(
                model=request.model,
                messages=request.chat(),  # type: ignore[arg-type]
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                stop=list(request.stop) or None,
                seed=request.seed,
                **extra,
            )

        return self.answer(send, lambda body: read_chat(body, request.top_logprobs), request.model)

    def list_models(self) -> Awaitable[RawReply]:
        return self.client.with_options(max_retries=0).models.with_raw_response.list()

    def logliks(self, requests: list[Request]) -> list[Completion]:
        return self.loglik(requests) if self.loglik else super().logliks(requests)

    def run(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        """This one server as a fleet of one (see fleet.Fleet.run)."""
        one = Replica(self.endpoint, self, self.max_concurrency)
        return Fleet([one], self.isolate_models).run(requests)


def read_chat(body: dict, top_logprobs: int) -> Completion:
    """A chat completion body -> the completion, or NotAnAnswer: an answer has a first choice with a
    message whose content is a string (null content is no answer, not an empty one). Token counts,
    the finish reason and the first token's alternatives (asked for: `top_logprobs`) may be absent,
    but not of another type.
    """
    choices = need(body, "choices", list, "")
    if not choices:
        raise NotAnAnswer("choices is empty")
    choice = checked(choices[0], dict, "choices[0]")
    message = need(choice, "message", dict, "choices[0]")
    usage = may(body, "usage", dict, "", {})
    return Completion(
        text=need(message, "content", str, "choices[0].message"),
        prompt_tokens=count(usage, "prompt_tokens", "usage"),
        completion_tokens=count(usage, "completion_tokens", "usage"),
        finish_reason=may(choice, "finish_reason", str, "choices[0]", None),
        top_logprobs=first_token_alternatives(choice) if top_logprobs else (),
    )


def first_token_alternatives(choice: dict) -> tuple[tuple[str, float], ...]:
    """(token, log-prob) of the first generated token's alternatives; () when the endpoint sent
    none."""
    tokens = may(
        may(choice, "logprobs", dict, "choices[0]", {}), "content", list, "choices[0].logprobs", []
    )
    if not tokens:
        return ()
    path = "choices[0].logprobs.content[0]"
    out = []
    for i, alternative in enumerate(
        may(checked(tokens[0], dict, path), "top_logprobs", list, path, [])
    ):
        where = f"{path}.top_logprobs[{i}]"
        checked(alternative, dict, where)
        out.append((need(alternative, "token", str, where), logprob(alternative, "logprob", where)))
    return tuple(out)


@contextmanager
def openai_endpoint(
    target: EndpointTarget, config: EngineSettings, run_dir: Path, seed: int
) -> Iterator[Engine]:
    """The `openai` protocol's engine (see settings.OPENAI): a client per server of the target."""
    with closing(fleet(target, OpenAIEngine)) as servers:
        yield servers
