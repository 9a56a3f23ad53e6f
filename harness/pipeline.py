"""`harness compare` and `harness drift`: plan -> build -> generate and score -> judge -> gate -> report.

One plain call per stage. A run can be resumed: rows already stored are not redone, and the
store's primary keys keep every (candidate, suite, case, metric) row exactly once.
"""

from __future__ import annotations

import time

import pandas as pd

from harness.building.build import build
from harness.core.console import console
from harness.core.paths import inside
from harness.generation.generate import execute, run_secrets
from harness.judging import run_judges
from harness.planning.context import Run
from harness.planning.judge import judge_metrics, judge_targets
from harness.planning.options import RunOptions
from harness.planning.plan import Plan
from harness.runs import (
    RunOutcome,
    baseline,
    begin,
    ended_on_failure,
    finish,
    new_run_id,
    record_built,
    resume_run,
    stored_answers,
    track,
)
from harness.serving.pool import Engines
from harness.store.lease import held
from harness.store.store import Store
from harness.verdict.gate import ERROR, Verdict, decide
from harness.verdict.settle import Settlement, drawn
from harness.waves import Wanted, run_waves


def run(options: RunOptions) -> RunOutcome:
    """The run `options` describe (RunOptions.from_cli merges them), to its verdict and reports."""
    plan, resume = options.plan, options.resume
    run_id = resume if resume is not None else new_run_id(plan.config.name)
    with Store(options.store) as store, held(store, run_id), Engines(keep=judge_targets(plan)) as engines:
        pinned, against = baseline(plan, store, options.against)
        run_id = resume_run(plan, store, options.mode, run_id) if resume is not None else \
            begin(plan, store, options.mode, run_id, against)
        current = Run(plan, store, run_id, inside(options.out, run_id), options.use_cache, engines)
        with ended_on_failure(current, run_secrets(plan) + options.store.secrets, options.mode):
            skip = stored_answers(plan, store, run_id) if resume is not None else set()
            store.put_timing(run_id, "plan", plan.config.name, time.perf_counter() - options.started)
            current.run_dir.mkdir(parents=True, exist_ok=True)
            console.log(f"run {run_id}: {len(plan.config.candidates)} candidates × {len(plan.suites)} suites "
                        f"({sum(len(s.cases) for s in plan.suites)} cases) → {current.run_dir}")
            built = build(plan.config.candidates, plan.contexts(), store, run_id, retrain=options.retrain)
            record_built(current, built, resumed=resume is not None)
            settled: tuple[Settlement, Wanted] | None = None
            if options.stop_when_settled is None:
                execute(current, built, skip=skip)
                run_judges(current)
            else:
                settled = run_waves(current, built, options.stop_when_settled, pinned)
            engines.close()
            verdict = _gate(current, pinned, settled)
            finished = finish(current, verdict)
    track(plan.config.report.mlflow, finished)
    if verdict.decision == ERROR:
        console.log(verdict.reason, style="yellow")
    return finished


def _gate(run: Run, pinned: pd.DataFrame | None, settled: tuple[Settlement, Wanted] | None = None) -> Verdict:
    """The gates' verdict over the stored rows, stored for the reports (the run is not finished yet). A settled
    run's gates need the rows of the cases its waves asked for, and are decided by its settlement."""
    started = time.perf_counter()
    plan, store = run.plan, run.store
    responses = store.table("responses", run.run_id)
    scores = store.table("scores", run.run_id)
    expected, states = plan.expected(), None
    if settled is not None:
        settlement, asked = settled
        expected = {key: [c for c in ids if (key[0], key[1], c) in asked] for key, ids in expected.items()}
        states = [(state, drawn(settlement, plan, scores, pinned, i)) for i, state in enumerate(settlement.gates)]
    verdict = decide(plan.config, scores, errors=int(responses["error"].notna().sum()),
                     requests=len(responses), pinned=pinned, directions=plan.directions(),
                     expected=expected, judges=judge_calibrations(plan, store, run.run_id), settled=states)
    if settled is not None:
        verdict.settle = savings(plan, settled[0], responses)
    store.set_verdict(run.run_id, verdict.as_dict())
    store.put_timing(run.run_id, "gate", plan.config.name, time.perf_counter() - started)
    return verdict


def judge_calibrations(plan: Plan, store: Store, run_id: str) -> dict[tuple[str, str], tuple[str, bool, dict | None]]:
    """(suite, metric) -> (rubric, has a calibration set, its check as the judging stage recorded it)."""
    meta = (store.run(run_id) or {}).get("meta") or {}
    recorded = {(j["suite"], j["metric"]): j["check"] for j in meta.get("judges", [])}
    return {key: (rubric.name, rubric.calibration is not None, recorded.get(key))
            for key, rubric in judge_metrics(plan).items()}


def savings(plan: Plan, settlement: Settlement, responses: pd.DataFrame) -> dict:
    """What the settled run cost against the full run: cases per (candidate, suite), requests, tokens (the full
    run's tokens estimated at the mean per request of those made)."""
    made = responses.groupby(["candidate", "suite"]).size()
    pairs = [{"candidate": c.name, "suite": s.name, "cases": int(made.get((c.name, s.name), 0)), "total": len(s.cases)}
             for s in plan.suites for c in plan.config.candidates if plan.answers(c.name, s.name)]
    full = sum(p["total"] for p in pairs)
    tokens = int(responses["prompt_tokens"].fillna(0).sum() + responses["completion_tokens"].fillna(0).sum())
    return {**settlement.as_dict(), "pairs": pairs, "requests": len(responses), "requests_full": full,
            "tokens": tokens, "tokens_full": round(tokens / len(responses) * full) if len(responses) else 0}
