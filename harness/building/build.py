"""Build candidates before serving: each kind builds what it needs (a LoRA adapter trained or loaded, RAG
documents indexed), cached by content hash outside the run, so a second run with the same inputs reuses
them; what was built (training curve, index size) is stored with the run for the report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.building.kinds import kind_of
from harness.serving.base import Adapter

if TYPE_CHECKING:
    from harness.planning.context import Run


@dataclass
class Built:
    artifacts: dict[str, Any] = field(default_factory=dict)  # candidate -> what its kind built (None: nothing)

    @property
    def adapters(self) -> dict[str, Adapter]:
        return {name: a for name, a in self.artifacts.items() if isinstance(a, Adapter)}

    def identities(self) -> dict[str, dict[str, str]]:
        """What identifies each artifact (an adapter's fingerprint, an index's content-keyed folder): a resumed
        run must find the same."""
        adapters = self.adapters
        return {"adapters": {name: a.fingerprint for name, a in adapters.items()},
                "indexes": {name: str(getattr(a, "path", "")) for name, a in self.artifacts.items()
                            if a is not None and name not in adapters}}


def build(run: Run, retrain: bool = False) -> Built:
    built = Built()
    for i, candidate in enumerate(run.config.candidates):
        make = kind_of(candidate).build
        started = time.perf_counter()
        built.artifacts[candidate.name] = make(run.plan, i, candidate, run.store, run.run_id, retrain) if make else None
        if make:
            run.store.put_timing(run.run_id, "build", candidate.name, time.perf_counter() - started)
    return built
