"""A deployed model to call, as a config names it: the same keys for an `endpoint` candidate and for
`judge.endpoint`, checked once, identified once (the cache key of its answers) and turned into a
target once.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness.core.caps import Concurrency, RequestsPerMinute
from harness.core.strict import Strict
from harness.core.urls import ENCODE_FIX, normal, userinfo, variable
from harness.serving.base import EndpointTarget
from harness.serving.engines import protocols
from harness.serving.limits import MAX_ANSWER_CHARS

URL_FIX = "add e.g. base_url: https://api.example.com/v1"
CREDENTIALS_FIX = (
    "put an API key in an environment variable and name it, `api_key_env: NAME`; a server that"
    " takes its user and password in the URL: put the whole URL in an environment variable and"
    " write `env:NAME` in its place"
)
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _url(text: str) -> str:
    """A server's URL as a config may hold it: one that parses and names no user or password (a
    config is committed, and every run stores it and shows it), or `env:NAME`, read at run time (see
    urls.resolved).
    """
    name = variable(text)
    if name is not None:
        if not VARIABLE.fullmatch(name):
            raise PydanticCustomError(
                "url_env",
                "`env:` names no environment variable",
                {"fix": "write env:NAME, NAME a variable holding the URL"},
            )
        return text
    try:
        user, password = userinfo(text)
    except ValueError as exc:
        raise PydanticCustomError(
            "url_parse", str(exc), {"fix": f"write scheme://HOST:PORT/PATH; {ENCODE_FIX}"}
        ) from None
    if user or password:
        raise PydanticCustomError(
            "url_credentials",
            "the URL holds a user or password, which every run would store and every report show",
            {"fix": CREDENTIALS_FIX},
        )
    return text


Url = Annotated[str, AfterValidator(_url)]


class EndpointSpec(Strict):
    """Where a deployed model is and how hard it may be called. The API key is read from the
    environment variable named here, at run time, and written nowhere."""

    protocol: str = Field(
        "openai",
        description=(
            "the engine that calls it: openai (any OpenAI-compatible "
            "server), anthropic, or an installed plugin's (see docs/plugins.md)"
        ),
    )
    base_url: Url | None = Field(
        None,
        description=(
            "required for openai (or base_urls); anthropic defaults to "
            "Anthropic's API. No user or password in it: `env:NAME` reads "
            "a URL that needs them from that variable"
        ),
    )
    base_urls: list[Url] | None = Field(
        None,
        min_length=1,
        description=(
            "several servers of this same model (vLLM on several nodes, a Ray Serve "
            "deployment, replicas behind no router): each request goes to the one with the "
            "fewest in flight, max_concurrency each; one that cannot be reached is left "
            "and its requests move to the others"
        ),
    )
    model: str = Field(description="the model name the endpoint expects")
    answers_as: list[str] = Field(
        [],
        description=(
            "other names its servers may list the model by or answer as (a deployment name behind a"
            " router that answers as the model it routes to, as Azure OpenAI and LiteLLM do); a"
            " server listing, or a reply naming, any other model is left as one of another model"
        ),
    )
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    requests_per_minute: RequestsPerMinute | None = Field(
        None, gt=0, description="pace requests under the endpoint's rate limit"
    )
    max_concurrency: Concurrency = Field(4, ge=1)

    @field_validator("protocol")
    @classmethod
    def _known(cls, protocol: str) -> str:
        """One of the engine table's protocols, read when a config is (a plugin's engine may import
        this module)."""
        if protocol not in protocols():
            raise PydanticCustomError(
                "protocol",
                "unknown protocol {given}",
                {"given": repr(protocol), "fix": f"use one of: {', '.join(protocols())}"},
            )
        return protocol

    @field_validator("base_urls")
    @classmethod
    def _distinct(cls, urls: list[str] | None) -> list[str] | None:
        """Each server once, however it is spelt (see urls.normal): listed twice, it takes twice its
        concurrency."""
        if urls is not None:
            spelt = [normal(url) for url in urls]
            twice = sorted({url for url in spelt if spelt.count(url) > 1})
            if twice:
                raise ValueError(f"{', '.join(twice)} listed more than once: each server once")
        return urls

    @model_validator(mode="after")
    def _one_way(self) -> "EndpointSpec":
        if self.base_url is not None and self.base_urls is not None:
            raise ValueError(
                "`base_url` and `base_urls` both set: use base_urls alone for several servers"
            )
        return self

    def missing_url(self) -> str | None:
        """Why it cannot be called as given (fix: URL_FIX): an OpenAI-compatible server has no
        default address (Anthropic's client has Anthropic's). A candidate is held to it when the
        config is read, the judge when it is resolved, that is when some suite is judged."""
        return (
            "an openai endpoint needs `base_url:`"
            if self.protocol == "openai" and not self.base_url and not self.base_urls
            else None
        )

    @property
    def urls(self) -> tuple[str | None, ...]:
        """Every server it names (None: the protocol's default address)."""
        return tuple(self.base_urls or (self.base_url,))

    @property
    def identity(self) -> str:
        """What answers, for the cache: the same model name at the same address (or set of them,
        each spelt one way: see urls.normal) under the same protocol."""
        where = (
            ",".join(sorted(normal(url) for url in self.base_urls))
            if self.base_urls
            else self.base_url and normal(self.base_url)
        )
        return hashlib.sha256(f"{self.protocol}|{where}|{self.model}".encode()).hexdigest()

    def target(
        self, request_timeout_s: float, max_retries: int, max_answer_chars: int = MAX_ANSWER_CHARS
    ) -> EndpointTarget:
        return EndpointTarget(
            self.protocol,
            self.base_url,
            self.api_key_env,
            self.max_concurrency,
            request_timeout_s,
            max_retries,
            self.requests_per_minute,
            max_answer_chars,
            tuple(self.base_urls or ()),
            tuple(self.answers_as),
        )
