"""Sampling settings, laid over each other from general to specific: defaults < config < suite <
candidate."""

from __future__ import annotations

from pydantic import Field

from harness.core.caps import Tokens
from harness.core.strict import Strict


class Generation(Strict):
    """Sampling settings; every field is optional so suites and candidates can override a few."""

    max_tokens: Tokens | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: list[str] | None = None

    def over(self, base: "Generation") -> "Generation":
        """These settings laid over `base` (set fields win)."""
        return base.model_copy(update=self.model_dump(exclude_none=True))


DEFAULT_GENERATION = Generation(max_tokens=256, temperature=0.0, top_p=1.0, stop=[])
