"""The base of every config, suite, rubric and scorer-settings model: unknown keys are errors, so a
typo never falls back to a default; every float is finite (`.nan` and `.inf` are no bound, timeout
or rate: a gate's `min: .nan` crashed the verdict, and `max: .inf` wrote `Infinity`, which is not
JSON, into results.json); and every value has its own type, never one converted from another
(pydantic's strict mode). YAML and JSON give numbers and booleans natively, so a conversion only
ever hid a mistake: `alpha_split: true` was read as 1.0 and quietly changed the statistics, `wave:
"20"` as 20, `fail_fast: "yes"` as true. An int still goes where a float belongs (1 for 1.0).

Strict mode takes a tuple only as a tuple, which YAML and JSON have no notation for: a pair is
declared `Pair`.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

First = TypeVar("First")
Second = TypeVar("Second")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


def _as_tuple(value: Any) -> Any:
    """A two-item list as written in YAML or JSON is the pair it stands for; anything else is
    checked as given."""
    return tuple(value) if isinstance(value, list) else value


Pair = Annotated[tuple[First, Second], BeforeValidator(_as_tuple)]
