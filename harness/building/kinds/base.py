"""What every candidate kind says about itself, and the registry the rest of the harness asks.

A kind is data (its config model and what it can do) plus a few plain functions: how it is checked at
plan time, how it is built (an adapter trained, documents indexed), where it is served and under what
name, and what it adds to a case's prompt. Nothing outside harness/kinds/ asks which kind a candidate is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import Field

from harness.core.sampling import Generation
from harness.core.strict import Strict

if TYPE_CHECKING:
    from harness.core.models import ModelRef
    from harness.planning.plan import Plan
    from harness.serving.base import EndpointTarget
    from harness.store.sqlite import Store


class Shot(Strict):
    user: str
    assistant: str


class CandidateBase(Strict):
    """What every candidate has: a name, the prompt around each case, and sampling overrides."""

    name: str
    system: str | None = None
    few_shot: list[Shot] = []
    generation: Generation = Generation()


class LocalCandidateBase(CandidateBase):
    """A candidate this run serves itself, on a base model (alias or HF folder)."""

    model: str | None = Field(None, description="model alias or HF folder; defaults to the config's `model`")


CheckFn = Callable[["Plan", int, Any], None]
BuildFn = Callable[["Plan", int, Any, "Store", str, bool], Any]  # -> the built artifact (an adapter, an index)
ServedFn = Callable[[Any, "ModelRef | None", Any], tuple[str, "str | None"]]  # -> (served name, cache fingerprint)
ContextFn = Callable[[Any, Any, list[dict[str, str]]], tuple[list[dict[str, str]], "list[dict] | None"]]


def _base_model(candidate: Any, model: ModelRef | None, artifact: Any) -> tuple[str, str | None]:
    """Served as the base model itself, and cached under its weights' fingerprint."""
    assert model is not None
    return model.name, model.fingerprint


@dataclass(frozen=True)
class Kind:
    name: str
    model: type[CandidateBase]
    local: bool = True  # served by this run on its base model (vLLM, transformers), not called at a URL
    retrieves: bool = False  # its prompts carry retrieved documents
    logliks: bool = True  # it can answer log-likelihood probes (prompt log-probabilities)
    check: CheckFn | None = None
    build: BuildFn | None = None
    served: ServedFn = _base_model
    context: ContextFn | None = None  # what it adds to the case's turns, and the record of it
    endpoint: Callable[[Any], EndpointTarget] | None = None  # non-local kinds: what to call


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def kind_of(candidate: CandidateBase) -> Kind:
    return KINDS[candidate.kind]  # type: ignore[attr-defined]  (every registered model has a `kind` literal)
