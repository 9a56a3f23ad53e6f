"""Candidate kinds, one module each (prompt, rag, lora, endpoint), named once in base.KINDS.

A new kind is one module here (its config model, what it can do, and its functions) and its line in
KINDS, or an installed package's entry point; the config's `candidates:` accepts it because the
union of every kind in the table is taken when the config's model is defined (see candidate_union).
"""

from typing import Annotated, Any, Union

from pydantic import Field

from harness.building.kinds import endpoint, lora, prompt, rag
from harness.building.kinds.base import (
    KINDS,
    CandidateBase,
    Kind,
    KindContext,
    LocalCandidateBase,
    Shot,
    kind_of,
    on_base_model,
)
from harness.building.kinds.endpoint import EndpointCandidate
from harness.building.kinds.lora import LoraCandidate
from harness.building.kinds.prompt import PromptCandidate
from harness.building.kinds.rag import RagCandidate


def candidate_union() -> Any:
    """`candidates:` entries: one of the table's kinds' config models (plugins' too), told apart by
    `kind:`."""
    return Annotated[
        Union[tuple(kind.model for kind in KINDS.loaded().values())], Field(discriminator="kind")
    ]


__all__ = [
    "KINDS",
    "CandidateBase",
    "EndpointCandidate",
    "Kind",
    "KindContext",
    "LocalCandidateBase",
    "LoraCandidate",
    "PromptCandidate",
    "RagCandidate",
    "Shot",
    "candidate_union",
    "kind_of",
    "on_base_model",
    "endpoint",
    "lora",
    "prompt",
    "rag",
]
