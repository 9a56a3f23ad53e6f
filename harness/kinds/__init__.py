"""Candidate kinds, one module each (prompt, rag, lora, endpoint), found through one registry (base.KINDS).

A new kind is one module here: its config model, what it can do, and its functions; the config's
`candidates:` accepts it once it is imported below.
"""

from typing import Annotated, Union

from pydantic import Field

from harness.kinds import endpoint, lora, prompt, rag
from harness.kinds.base import KINDS, CandidateBase, Kind, LocalCandidateBase, Shot, kind_of
from harness.kinds.endpoint import EndpointCandidate
from harness.kinds.lora import LoraCandidate
from harness.kinds.prompt import PromptCandidate
from harness.kinds.rag import RagCandidate

Candidate = Annotated[Union[tuple(kind.model for kind in KINDS.values())], Field(discriminator="kind")]  # type: ignore[valid-type]

__all__ = ["KINDS", "Candidate", "CandidateBase", "EndpointCandidate", "Kind", "LocalCandidateBase", "LoraCandidate",
           "PromptCandidate", "RagCandidate", "Shot", "kind_of", "endpoint", "lora", "prompt", "rag"]
