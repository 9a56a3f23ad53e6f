"""What the verdict rests on, handed from the stage that gathered it (harness.waves) to
verdict.gate.decide: nothing of it is read back from the store the same process wrote it to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    import pandas as pd

    from harness.store.meta import JudgeRecord
    from harness.verdict.comparisons import Directions
    from harness.verdict.settle import GateState

Settled = Sequence[
    tuple["GateState", list[dict]]
]  # per gate: its settlement state and each check's drawn sequence
Expected = Mapping[
    tuple[str, str, str], Sequence[str]
]  # (candidate, suite, metric) -> case ids a gate needs
Judges = Mapping[tuple[str, str], "JudgeRecord"]  # (suite, metric) -> its judge's calibration check


@dataclass(frozen=True, eq=False)
class Evidence:
    """`scores`: this run's score rows; `errors` of `requests`: failed requests; `pinned`: the
    scores relative rules compare with when they are not this run's (drift, --against);
    `directions`: (suite, metric) -> higher is better; `expected`: every (candidate, suite, metric)
    row's case ids that the run asked for (None: every case some candidate has); `judges`: every
    judge metric's check as the judging stage returned it; `settled` (stop_when_settled): each
    gate's settlement, and `savings` what it spared against a full run."""

    scores: pd.DataFrame
    errors: int = 0
    requests: int = 0
    pinned: pd.DataFrame | None = None
    directions: Directions = field(default_factory=dict)
    expected: Expected | None = None
    judges: Judges | None = None
    settled: Settled | None = None
    savings: dict[str, Any] | None = None
