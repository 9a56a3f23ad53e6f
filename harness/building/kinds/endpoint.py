"""`kind: endpoint`: an already-deployed model behind an OpenAI-compatible URL or Anthropic's API; the run
only calls it (no weights here, so no log-likelihood probes)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from harness.building.kinds.base import CandidateBase, Kind, register
from harness.core.caps import Concurrency, RequestsPerMinute, Retries, Seconds
from harness.serving.base import EndpointTarget
from harness.serving.limits import MAX_ANSWER_CHARS

if TYPE_CHECKING:
    from harness.core.models import ModelRef


class EndpointCandidate(CandidateBase):
    """An already-deployed model behind an OpenAI-compatible URL or Anthropic's API.

    The API key is read from the environment variable named here, at run time, and written nowhere: an answer
    that echoes it is stored, scored and shown with it replaced by *** (see generate.run_secrets).
    Responses are not cached by default: a deployed model can change under the same name.
    """

    kind: Literal["endpoint"]
    protocol: Literal["openai", "anthropic"] = "openai"
    base_url: str | None = Field(None, description="required for openai; anthropic defaults to Anthropic's API")
    model: str = Field(description="the model name the endpoint expects")
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    requests_per_minute: RequestsPerMinute | None = Field(
        None, gt=0, description="pace requests under the endpoint's rate limit")
    max_concurrency: Concurrency = Field(4, ge=1)
    request_timeout_s: Seconds = Field(60, gt=0)
    max_retries: Retries = Field(
        4, ge=0, description="retries with exponential backoff and jitter (429, 5xx, connection)")
    cache: bool = Field(False, description="reuse cached answers (off: a deployed model can change under one name)")
    max_answer_chars: int = Field(MAX_ANSWER_CHARS, gt=0, strict=True,
                                  description="cut longer answers (finish_reason length_cap) before they are stored: "
                                              "an endpoint need not heed max_tokens")

    @model_validator(mode="after")
    def _url(self) -> "EndpointCandidate":
        if self.protocol == "openai" and not self.base_url:
            raise ValueError("an openai endpoint needs `base_url:` (e.g. https://api.example.com/v1)")
        return self


def served(candidate: EndpointCandidate, model: ModelRef | None, artifact: object) -> tuple[str, str | None]:
    """Requests carry the endpoint's model name; answers are cached only when the config says so."""
    identity = hashlib.sha256(f"{candidate.protocol}|{candidate.base_url}|{candidate.model}".encode()).hexdigest()
    return candidate.model, f"endpoint:{identity}" if candidate.cache else None


def endpoint(candidate: EndpointCandidate) -> EndpointTarget:
    return EndpointTarget(candidate.protocol, candidate.base_url, candidate.api_key_env, candidate.max_concurrency,
                          candidate.request_timeout_s, candidate.max_retries, candidate.requests_per_minute,
                          candidate.max_answer_chars)


KIND = register(Kind("endpoint", EndpointCandidate, local=False, logliks=False, served=served, endpoint=endpoint))
