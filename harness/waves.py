"""`stop_when_settled`: generate, score and judge in waves, and stop once the gates are settled.

Each wave asks only for the cases settle.wanted names (cached answers are used as always, stored ones are not
redone), judges what it generated, then looks at the gates. A resumed run replays its waves over what is stored,
so it continues from its last wave. The settlement's progress is recorded in the run's meta under `settle`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from harness.core.console import console
from harness.generation.generate import execute, targets
from harness.judging import run_judges
from harness.runs import stored_answers
from harness.verdict.settle import Settlement, observe, start, wanted

if TYPE_CHECKING:
    import pandas as pd

    from harness.building.build import Built
    from harness.planning.config import SettleConfig
    from harness.planning.context import Run

Wanted = set[tuple[str, str, str]]


def run_waves(run: Run, built: Built, settings: SettleConfig, pinned: pd.DataFrame | None) -> tuple[Settlement, Wanted]:
    """The settlement after the last wave, and every (candidate, suite, case) the waves asked for."""
    plan, store, run_id = run.plan, run.store, run.run_id
    run.engines.hold([target for target, _, _ in targets(run, built)])
    settlement = start(plan, settings)
    asked: Wanted = set()
    while True:
        want = wanted(settlement, plan, pinned is not None)
        if want <= asked and settlement.wave:
            break  # no case left to ask: every open gate is at its last case, or waits on a row without a value
        asked |= want
        started = time.perf_counter()
        execute(run, built, skip=stored_answers(plan, store, run_id, log=False), only=want)
        run_judges(run, only=want)
        responses = store.table("responses", run_id)
        observe(settlement, plan, store.table("scores", run_id), pinned)
        open_gates = sum(g.decision is None for g in settlement.gates)
        console.log(f"wave {settlement.wave}: {len(want)} answers so far; {len(settlement.gates) - open_gates} of "
                    f"{len(settlement.gates)} gates settled ({time.perf_counter() - started:.1f} s)")
        meta = (store.run(run_id) or {}).get("meta") or {}
        store.set_meta(run_id, {**meta, "settle": settlement.as_dict()})
        if responses["error"].notna().any():
            console.log("a request failed: no verdict can rest on partial results, so no more waves",
                        style="yellow")
            break
        if settlement.done():
            break
    return settlement, asked
