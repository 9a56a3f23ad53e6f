"""The run in progress: what every stage after the plan is handed, instead of the same five arguments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.config import Config
    from harness.plan import Plan
    from harness.store import Store


@dataclass(frozen=True)
class Run:
    plan: Plan
    store: Store
    run_id: str
    run_dir: Path
    use_cache: bool = True

    @property
    def config(self) -> Config:
        return self.plan.config
