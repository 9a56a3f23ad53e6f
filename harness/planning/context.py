"""The run in progress: what every stage after the plan is handed, instead of the same five
arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.serving.pool import Engines

if TYPE_CHECKING:
    from harness.planning.config import Config
    from harness.planning.plan import Plan
    from harness.store.store import Store


@dataclass(frozen=True)
class Run:
    plan: Plan
    store: Store
    run_id: str
    run_dir: Path
    use_cache: bool = True
    engines: Engines = field(
        default_factory=Engines
    )  # shared by the stages: one server per model per run

    @property
    def config(self) -> Config:
        return self.plan.config
