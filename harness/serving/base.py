"""What engines are: the targets they answer for and one small interface.

An engine factory is a context manager: whatever it starts (a vLLM server, a model in memory) is
released on every exit path, so a run never leaves a process or a GPU allocation behind.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, Sequence

from harness.serving.limits import MAX_ANSWER_CHARS

if TYPE_CHECKING:
    from harness.core.models import ModelRef
    from harness.core.request import Completion, Request


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter served beside its base model; requests name it to use it."""

    name: str
    path: Path
    rank: int
    fingerprint: str

    def identity(self) -> tuple[str, str]:
        """(what it is, what a resumed run must find the same): the adapter's weights."""
        return "adapters", self.fingerprint


@dataclass(frozen=True)
class LocalTarget:
    """One base model (and its adapters) this run serves itself, through vLLM or transformers."""

    model: "ModelRef"
    adapters: tuple[Adapter, ...] = ()


@dataclass(frozen=True)
class EndpointTarget:
    """A deployed model this run only calls, through the engine its protocol names in the engine
    table."""

    protocol: str
    base_url: str | None
    api_key_env: str | None
    max_concurrency: int
    request_timeout_s: float
    max_retries: int
    requests_per_minute: float | None
    max_answer_chars: int = MAX_ANSWER_CHARS  # longer answers are cut (see limits.capped)
    base_urls: tuple[str, ...] = ()  # a fleet: several servers of the model, in place of base_url
    answers_as: tuple[
        str, ...
    ] = ()  # other names its servers may list or answer as (see HttpEngine.names)

    @property
    def urls(self) -> tuple[str | None, ...]:
        """Every server to spread requests over (None: the protocol's default address)."""
        return self.base_urls or (self.base_url,)


Target = LocalTarget | EndpointTarget


class Engine(Protocol):
    """Answers requests, yielding (index into `requests`, completion) as each one finishes."""

    def run(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]: ...


EngineFactory = Callable[..., AbstractContextManager[Engine]]


def engine_name(target: Target, local_kind: str) -> str:
    """The engine that answers `target` (its table name): the configured local engine, or the
    protocol."""
    return local_kind if isinstance(target, LocalTarget) else target.protocol
