"""Candidate kinds, one module each (prompt, rag, lora, endpoint), found through one registry (base.KINDS).

A new kind is one module here: its config model, what it can do, and its functions; the config's
`candidates:` accepts it once it is imported below.
"""

from typing import Annotated, Union

from pydantic import Field

from harness.building.kinds import endpoint, lora, prompt, rag
from harness.building.kinds.base import KINDS, CandidateBase, Kind, LocalCandidateBase, Shot, kind_of
from harness.building.kinds.endpoint import EndpointCandidate
from harness.building.kinds.lora import LoraCandidate
from harness.building.kinds.prompt import PromptCandidate
from harness.building.kinds.rag import RagCandidate

Candidate = Annotated[Union[tuple(kind.model for kind in KINDS.values())], Field(discriminator="kind")]  # type: ignore[valid-type]

__all__ = ["KINDS", "Candidate", "CandidateBase", "EndpointCandidate", "Kind", "LocalCandidateBase", "LoraCandidate",
           "PromptCandidate", "RagCandidate", "Shot", "kind_of", "endpoint", "lora", "prompt", "rag"]
