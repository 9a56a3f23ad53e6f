"""A remote candidate kind defined outside the harness, with the engine its protocol names: `kind: relay` calls a
"relay" service that is neither OpenAI nor Anthropic (here: the run's script, as the scripted engine answers).

This file is everything such an extension needs: its config model, its hooks, its engine. Importing it before the
config is read stands for the one registry line a shipped kind has (harness/building/kinds/__init__.py) and a
shipped engine has (harness/serving/engines.py); test_new_kind runs a whole comparison with it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal

from harness.building.kinds.base import CandidateBase, Kind, register
from harness.core.models import ModelRef
from harness.serving.base import EndpointTarget, Engine, engine
from harness.serving.scripted import ScriptedEngine
from harness.serving.settings import EngineConfig

PROTOCOL = "relay"


class RelayCandidate(CandidateBase):
    kind: Literal["relay"]
    address: str
    model: str


def target(candidate: RelayCandidate, model: ModelRef | None, artifact: object) -> EndpointTarget:
    return EndpointTarget(PROTOCOL, candidate.address, None, max_concurrency=2, request_timeout_s=10, max_retries=0,
                          requests_per_minute=None)


def served(candidate: RelayCandidate, model: ModelRef | None, artifact: object) -> tuple[str, str | None]:
    return candidate.model, None  # never cached: the service may change


KIND = register(Kind("relay", RelayCandidate, logliks=False, target=target, served=served))


@engine(PROTOCOL, local=False, logprobs=False)
@contextmanager
def relay(target: EndpointTarget, config: EngineConfig, run_dir: Path, seed: int) -> Iterator[Engine]:
    yield ScriptedEngine(config.script, target.max_concurrency)
