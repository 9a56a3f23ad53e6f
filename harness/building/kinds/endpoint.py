"""`kind: endpoint`: an already-deployed model behind an OpenAI-compatible URL or Anthropic's API;
the run only calls it (no weights here, so no log-likelihood probes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from harness.building.kinds.base import CandidateBase, Kind
from harness.core.caps import Retries, Seconds
from harness.serving.base import EndpointTarget
from harness.serving.deadline import TIMEOUT
from harness.serving.endpoint_spec import URL_FIX, EndpointSpec
from harness.serving.limits import MAX_ANSWER_CHARS

if TYPE_CHECKING:
    from harness.core.models import ModelRef


class EndpointCandidate(EndpointSpec, CandidateBase):
    """An already-deployed model (see EndpointSpec), with how long and how often to try each
    request.

    An answer that echoes the API key is stored, scored and shown with it replaced by *** (see
    generate.run_secrets). Responses are not cached by default: a deployed model can change under
    the same name.
    """

    kind: Literal["endpoint"]
    request_timeout_s: Seconds = Field(60, gt=0, description=TIMEOUT)
    max_retries: Retries = Field(
        4, ge=0, description="retries with exponential backoff and jitter (429, 5xx, connection)"
    )
    cache: bool = Field(
        False, description="reuse cached answers (off: a deployed model can change under one name)"
    )
    max_answer_chars: int = Field(
        MAX_ANSWER_CHARS,
        gt=0,
        description=(
            "cut longer answers (finish_reason length_cap) before they are stored: "
            "an endpoint need not heed max_tokens"
        ),
    )

    @model_validator(mode="after")
    def _url(self) -> "EndpointCandidate":
        if (why := self.missing_url()) is not None:
            raise PydanticCustomError("missing_url", why, {"fix": URL_FIX})
        return self


def target(
    candidate: EndpointCandidate, model: ModelRef | None, artifact: object
) -> EndpointTarget:
    return candidate.target(
        candidate.request_timeout_s, candidate.max_retries, candidate.max_answer_chars
    )


def served(
    candidate: EndpointCandidate, model: ModelRef | None, artifact: object
) -> tuple[str, str | None]:
    """Requests carry the endpoint's model name; answers are cached only when the config says so."""
    return candidate.model, f"endpoint:{candidate.identity}" if candidate.cache else None


KIND = Kind("endpoint", EndpointCandidate, logliks=False, target=target, served=served)
