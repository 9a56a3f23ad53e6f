"""Engines for deployed models: an OpenAI-compatible URL or Anthropic, keyed from the environment."""

from __future__ import annotations

import os
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Protocol

from harness.core.credentials import url_secrets
from harness.core.errors import HarnessError
from harness.core.urls import held, resolved, shown_url
from harness.serving.anthropic_client import AnthropicEngine
from harness.serving.base import EndpointTarget, Engine, engine
from harness.serving.fleet import Fleet, Replica
from harness.serving.limits import NO_KEY
from harness.serving.openai_client import OpenAIEngine
from harness.serving.settings import EngineConfig


def api_key(target: EndpointTarget) -> str:
    """The key is read at run time from the variable the config names; it is never stored or printed."""
    if target.api_key_env is None:
        return NO_KEY
    value = os.environ.get(target.api_key_env)
    if not value:
        raise HarnessError(f"the environment variable {target.api_key_env} (api_key_env) is not set\n"
                           f"  fix: export {target.api_key_env}=... before running")
    return value


class Called(Protocol):
    """What names the credentials an endpoint is called with (an EndpointSpec, an EndpointTarget)."""

    @property
    def api_key_env(self) -> str | None: ...

    @property
    def urls(self) -> tuple[str | None, ...]: ...


def secret_values(called: Iterable[Called]) -> tuple[str, ...]:
    """The credentials a run sends, which no answer may carry into the store, a score or a report (see
    limits.redacted): the value of each key variable that is set, and the user and password of each URL read
    from a variable (in the forms basic authentication sends them: see credentials.url_secrets)."""
    keys = {value for c in called if c.api_key_env and (value := os.environ.get(c.api_key_env))}
    in_urls = {secret for c in called for url in c.urls for secret in url_secrets(held(url))}
    return tuple(sorted(keys | in_urls))


def fleet(target: EndpointTarget, client: type[OpenAIEngine] | type[AnthropicEngine]) -> Fleet:
    """One client per server of the target (one, or each of `base_urls`, an `env:NAME` read now), each with its
    own max_concurrency."""
    key = api_key(target)
    urls = [resolved(url, "base_url" if target.base_url else "base_urls") for url in target.urls]
    engines = [client(url, key, target.max_concurrency, target.request_timeout_s, target.max_retries,
                      target.requests_per_minute, max_answer_chars=target.max_answer_chars) for url in urls]
    for server in engines:
        server.answers_as = target.answers_as
    return Fleet([Replica(shown_url(url), server, target.max_concurrency) for url, server in zip(urls, engines)])


@engine("openai", local=False)
@contextmanager
def openai_endpoint(target: EndpointTarget, config: EngineConfig, run_dir: Path, seed: int) -> Iterator[Engine]:
    with closing(fleet(target, OpenAIEngine)) as servers:
        yield servers


@engine("anthropic", local=False, logprobs=False)  # the Messages API returns no token probabilities
@contextmanager
def anthropic_endpoint(target: EndpointTarget, config: EngineConfig, run_dir: Path, seed: int) -> Iterator[Engine]:
    with closing(fleet(target, AnthropicEngine)) as servers:
        yield servers
