"""What every candidate kind says about itself, and the registry the rest of the harness asks.

A kind is data (its config model and what it can do) plus a few plain functions: how it is checked
at plan time, how it is built (an adapter trained, documents indexed), where it is served and under
what name, and what it adds to a case's prompt. Nothing outside harness/building/kinds/ asks which
kind a candidate is, and a kind knows no Plan: its hooks get a KindContext. A new kind is one module
here and its line in KINDS below, or a module of an installed package and its entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from pydantic import Field

from harness.core.errors import ConfigError
from harness.core.plugins import Table
from harness.core.sampling import Generation
from harness.core.strict import Strict
from harness.core.yamlfile import key_path
from harness.serving.base import LocalTarget, Target

if TYPE_CHECKING:
    from harness.core.models import ModelRef
    from harness.store.store import Store


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
    """A candidate on a base model (alias or HF folder) that the plan resolves and this run serves."""

    model: str | None = Field(
        None, description="model alias or HF folder; defaults to the config's `model`"
    )


def on_base_model(candidate: CandidateBase) -> bool:
    """Whether the plan resolves a base model for `candidate` (its config model says so), passed to
    its hooks."""
    return isinstance(candidate, LocalCandidateBase)


@dataclass(frozen=True)
class KindContext:
    """What a kind's hooks are told about their candidate's place in the run, and nothing more:
    errors name the config's file:line and key path, files are found from the config's folder."""

    locate: Callable[..., str]  # file:line of a key path from the config's top (LoadedConfig.where)
    loc: tuple[Any, ...]  # the candidate's own key path, ("candidates", i)
    resolve_path: Callable[[str], Path]  # a path as the config gives it, relative to its folder
    model: ModelRef | None  # the base model it runs on (see on_base_model); None: it has none
    base_dir: Path

    def error(self, keys: tuple[Any, ...], message: str, fix: str) -> ConfigError:
        """A config error at one of the candidate's keys (e.g. ("train", "data"))."""
        return ConfigError(
            self.locate(*self.loc, *keys), key_path((*self.loc, *keys)), message, fix
        )

    def where(self, *keys: Any) -> str:
        return self.locate(*self.loc, *keys)

    def key(self, *keys: Any) -> str:
        return key_path((*self.loc, *keys))


class Artifact(Protocol):
    """What a kind builds (an adapter, an index) says what identifies it: a resumed run must find
    the same."""

    def identity(
        self,
    ) -> tuple[str, str]: ...  # (what it is, plural: "adapters"; its fingerprint or folder)


CheckFn = Callable[[Any, KindContext], None]
BuildFn = Callable[
    [Any, KindContext, "Store", str, bool], Artifact
]  # (candidate, context, store, run id, retrain)
TargetFn = Callable[
    [Any, "ModelRef | None", Any], Target
]  # (candidate, base model, artifact) -> what answers it
ServedFn = Callable[
    [Any, "ModelRef | None", Any], tuple[str, "str | None"]
]  # -> (served name, cache fingerprint)
ContextFn = Callable[
    [Any, Any, list[dict[str, str]]], tuple[list[dict[str, str]], "list[dict] | None"]
]


def _base_model(candidate: Any, model: ModelRef | None, artifact: Any) -> tuple[str, str | None]:
    """Served as the base model itself, and cached under its weights' fingerprint."""
    assert model is not None
    return model.name, model.fingerprint


def _served_here(candidate: Any, model: ModelRef | None, artifact: Any) -> Target:
    """Its base model, served by this run's engine."""
    assert model is not None
    return LocalTarget(model)


@dataclass(frozen=True)
class Kind:
    name: str
    model: type[CandidateBase]
    retrieves: bool = False  # its prompts carry retrieved documents
    logliks: bool = True  # it can answer log-likelihood probes (prompt log-probabilities)
    check: CheckFn | None = None
    build: BuildFn | None = None
    target: TargetFn = (
        _served_here  # a LocalTarget (with any adapters it built) or an EndpointTarget
    )
    served: ServedFn = _base_model
    context: ContextFn | None = None  # what it adds to the case's turns, and the record of it


# Every candidate kind, name -> its Kind: one line here, or an entry point in an installed package's
# `harness.kinds` group (see docs/plugins.md).
KINDS: Table[Kind] = Table(
    "harness.kinds",
    {
        "prompt": "harness.building.kinds.prompt:KIND",
        "rag": "harness.building.kinds.rag:KIND",
        "lora": "harness.building.kinds.lora:KIND",
        "endpoint": "harness.building.kinds.endpoint:KIND",
    },
)


def kind_of(candidate: CandidateBase) -> Kind:
    return KINDS.load(candidate.kind)  # type: ignore[attr-defined]  (every kind's model has a `kind` literal)
