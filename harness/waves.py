"""Turning a built run into the evidence its verdict rests on, one of two ways: at once (every case
a candidate answers, then judged), or with `stop_when_settled` in waves that stop once the gates are
settled.

Each wave asks only for the cases settle.wanted names (cached answers are used as always, stored
ones are not redone), judges what it generated, then observes the gates. A resumed run replays its
waves over what is stored, so it continues from its last wave. The settlement's progress is recorded
in the run's meta under `settle` for whoever watches the run; the verdict gets it handed on, in the
evidence.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Protocol

from harness.core.console import console
from harness.generation.generate import execute, targets
from harness.judging import Judged, run_judges
from harness.runs import stored_answers
from harness.verdict.evidence import Evidence, Expected, Settled
from harness.verdict.settle import Settlement, drawn, observe, start, wanted

if TYPE_CHECKING:
    import pandas as pd

    from harness.building.build import Built
    from harness.planning.config import SettleConfig
    from harness.planning.context import Run
    from harness.planning.plan import Plan

Wanted = set[tuple[str, str, str]]  # (candidate, suite, case)


class Gather(Protocol):
    """`pinned`: the scores relative rules compare with when they are not this run's; `skip`: what
    an earlier attempt at this run stored already (resume)."""

    def __call__(
        self, run: Run, built: Built, pinned: pd.DataFrame | None, skip: Wanted
    ) -> Evidence: ...


def gatherer(settings: SettleConfig | None) -> Gather:
    """How a run gathers its evidence: at once, or in waves under these settings."""
    return at_once if settings is None else partial(in_waves, settings)


def at_once(run: Run, built: Built, pinned: pd.DataFrame | None, skip: Wanted) -> Evidence:
    execute(run, built, skip=skip)
    judged = run_judges(run)
    return _evidence(
        run, run.store.table("scores", run.run_id), pinned, judged, run.plan.expected()
    )


def in_waves(
    settings: SettleConfig, run: Run, built: Built, pinned: pd.DataFrame | None, skip: Wanted
) -> Evidence:
    """The evidence of the cases the waves asked for, each gate decided by its settlement after the
    last wave."""
    plan, store, run_id = run.plan, run.store, run.run_id
    run.engines.hold([target for target, _, _ in targets(run, built)])
    settlement = start(plan, settings)
    asked: Wanted = set()
    judged = Judged(0, {})
    while True:
        want = wanted(settlement, plan, pinned is not None)
        if want <= asked and settlement.wave:
            break  # no case left to ask: every open gate is at its last case, or waits on a row without a value
        asked |= want
        started = time.perf_counter()
        execute(run, built, skip=skip, only=want)
        judged = run_judges(run, only=want)
        responses = store.table("responses", run_id)
        observe(settlement, plan, store.table("scores", run_id), pinned)
        open_gates = sum(g.decision is None for g in settlement.gates)
        console.log(
            f"wave {settlement.wave}: {len(want)} answers so far;"
            f" {len(settlement.gates) - open_gates} of {len(settlement.gates)} gates settled"
            f" ({time.perf_counter() - started:.1f} s)"
        )
        store.set_meta_key(run_id, "settle", settlement.as_dict())
        if responses["error"].notna().any():
            console.log(
                "a request failed: no verdict can rest on partial results, so no more waves",
                style="yellow",
            )
            break
        if settlement.done():
            break
        skip = stored_answers(plan, store, run_id, log=False)
    scores = store.table("scores", run_id)
    expected = {
        key: [c for c in ids if (key[0], key[1], c) in asked]
        for key, ids in plan.expected().items()
    }
    states = [
        (state, drawn(settlement, plan, scores, pinned, i))
        for i, state in enumerate(settlement.gates)
    ]
    return _evidence(run, scores, pinned, judged, expected, states, settlement)


def _evidence(
    run: Run,
    scores: pd.DataFrame,
    pinned: pd.DataFrame | None,
    judged: Judged,
    expected: Expected,
    settled: Settled | None = None,
    settlement: Settlement | None = None,
) -> Evidence:
    responses = run.store.table("responses", run.run_id)
    return Evidence(
        scores,
        errors=int(responses["error"].notna().sum()),
        requests=len(responses),
        pinned=pinned,
        directions=run.plan.directions(),
        expected=expected,
        judges=judged.checks,
        settled=settled,
        savings=None if settlement is None else savings(run.plan, settlement, responses),
    )


def savings(plan: Plan, settlement: Settlement, responses: pd.DataFrame) -> dict:
    """What the settled run cost against the full run: cases per (candidate, suite), requests,
    tokens (the full run's tokens estimated at the mean per request of those made)."""
    made = responses.groupby(["candidate", "suite"]).size()
    pairs = [
        {
            "candidate": c.name,
            "suite": s.name,
            "cases": int(made.get((c.name, s.name), 0)),
            "total": len(s.cases),
        }
        for s in plan.suites
        for c in plan.config.candidates
        if plan.answers(c.name, s.name)
    ]
    full = sum(p["total"] for p in pairs)
    tokens = int(
        responses["prompt_tokens"].fillna(0).sum() + responses["completion_tokens"].fillna(0).sum()
    )
    return {
        **settlement.as_dict(),
        "pairs": pairs,
        "requests": len(responses),
        "requests_full": full,
        "tokens": tokens,
        "tokens_full": round(tokens / len(responses) * full) if len(responses) else 0,
    }
