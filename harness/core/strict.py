"""The base of every config and suite model: unknown keys are errors, so a typo never falls back to a default;
and every float is finite (`.nan` and `.inf` are no bound, timeout or rate: a gate's `min: .nan` crashed the
verdict, and `max: .inf` wrote `Infinity`, which is not JSON, into results.json)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
