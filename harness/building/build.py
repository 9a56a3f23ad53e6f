"""Build candidates before serving: each kind builds what it needs (a LoRA adapter trained or
loaded, RAG documents indexed), cached by content hash outside the run, so a second run with the
same inputs reuses them; what was built (training curve, index size) is stored with the run for the
report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from harness.building.kinds import CandidateBase, KindContext, kind_of
from harness.building.kinds.base import Artifact

if TYPE_CHECKING:
    from harness.store.store import Store


@dataclass
class Built:
    artifacts: dict[str, Artifact | None] = field(
        default_factory=dict
    )  # candidate -> what its kind built

    def identities(self) -> dict[str, dict[str, str]]:
        """What identifies each artifact, as it says itself (an adapter's fingerprint, an index's
        content-keyed folder), by what it is: a resumed run must find the same."""
        out: dict[str, dict[str, str]] = {}
        for name, artifact in self.artifacts.items():
            if artifact is not None:
                what, identity = artifact.identity()
                out.setdefault(what, {})[name] = identity
        return out


def build(
    candidates: Sequence[CandidateBase],
    contexts: Sequence[KindContext],
    store: Store,
    run_id: str,
    retrain: bool = False,
) -> Built:
    """`contexts`: each candidate's, in the same order (see Plan.contexts)."""
    built = Built()
    for candidate, context in zip(candidates, contexts, strict=True):
        make = kind_of(candidate).build
        started = time.perf_counter()
        built.artifacts[candidate.name] = (
            make(candidate, context, store, run_id, retrain) if make else None
        )
        if make:
            store.put_timing(run_id, "build", candidate.name, time.perf_counter() - started)
    return built
