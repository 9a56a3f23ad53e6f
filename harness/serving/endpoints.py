"""What the engines for deployed models share (an OpenAI-compatible URL, Anthropic): the key read
from the environment, the credentials no answer may carry, one client per server. Each protocol's
engine is in its client's module, so calling one imports no other's library."""

from __future__ import annotations

import os
from typing import Callable, Iterable, Protocol

from harness.core.credentials import url_secrets
from harness.core.errors import HarnessError
from harness.core.urls import held, resolved, shown_url
from harness.serving.base import EndpointTarget
from harness.serving.fleet import Fleet, Replica
from harness.serving.limits import NO_KEY
from harness.serving.shapes import HttpEngine


def api_key(target: EndpointTarget) -> str:
    """The key is read at run time from the variable the config names; it is never stored or
    printed."""
    if target.api_key_env is None:
        return NO_KEY
    value = os.environ.get(target.api_key_env)
    if not value:
        raise HarnessError(
            f"the environment variable {target.api_key_env} (api_key_env) is not set\n"
            f"  fix: export {target.api_key_env}=... before running"
        )
    return value


class Called(Protocol):
    """What names the credentials an endpoint is called with (an EndpointSpec, an EndpointTarget)."""

    @property
    def api_key_env(self) -> str | None: ...

    @property
    def urls(self) -> tuple[str | None, ...]: ...


def secret_values(called: Iterable[Called]) -> tuple[str, ...]:
    """The credentials a run sends, which no answer may carry into the store, a score or a report
    (see limits.redacted): the value of each key variable that is set, and the user and password of
    each URL read from a variable (in the forms basic authentication sends them: see
    credentials.url_secrets)."""
    keys = {value for c in called if c.api_key_env and (value := os.environ.get(c.api_key_env))}
    in_urls = {secret for c in called for url in c.urls for secret in url_secrets(held(url))}
    return tuple(sorted(keys | in_urls))


def fleet(target: EndpointTarget, client: Callable[..., HttpEngine]) -> Fleet:
    """One client per server of the target (one, or each of `base_urls`, an `env:NAME` read now),
    each with its own max_concurrency."""
    key = api_key(target)
    urls = [resolved(url, "base_url" if target.base_url else "base_urls") for url in target.urls]
    engines = [
        client(
            url,
            key,
            target.max_concurrency,
            target.request_timeout_s,
            target.max_retries,
            target.requests_per_minute,
            max_answer_chars=target.max_answer_chars,
        )
        for url in urls
    ]
    for server in engines:
        server.answers_as = target.answers_as
    return Fleet(
        [
            Replica(shown_url(url), server, target.max_concurrency)
            for url, server in zip(urls, engines)
        ]
    )
