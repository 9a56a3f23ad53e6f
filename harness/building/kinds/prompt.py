"""`kind: prompt`: the base model driven only by a prompt (system message, few-shot examples,
settings)."""

from __future__ import annotations

from typing import Literal

from harness.building.kinds.base import Kind, LocalCandidateBase


class PromptCandidate(LocalCandidateBase):
    kind: Literal["prompt"]


KIND = Kind("prompt", PromptCandidate)
