"""Every engine, registered by importing it (a new engine: its module and its name on the import line below),
and the one call that opens the engine a target needs."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from harness.serving import endpoints, scripted, transformers_engine, vllm_server  # noqa: F401  (register)
from harness.serving.base import ENGINES, Engine, Target, engine_name

if TYPE_CHECKING:
    from harness.serving.settings import EngineConfig


def open_engine(target: Target, config: EngineConfig, run_dir: Path, seed: int) -> AbstractContextManager[Engine]:
    """Start what answers a target's requests: the configured local engine, or an endpoint's client."""
    return ENGINES[engine_name(target, config.kind)](target, config, run_dir, seed)
