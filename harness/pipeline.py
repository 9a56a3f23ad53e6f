"""`harness compare` and `harness drift`: plan -> build -> generate and score -> judge -> gate ->
report.

One plain call per stage. A run can be resumed: rows already stored are not redone, and the
store's primary keys keep every (candidate, suite, case, metric) row exactly once.
"""

from __future__ import annotations

import time

from harness.building.build import build
from harness.core.console import console
from harness.core.paths import inside
from harness.generation.generate import run_secrets
from harness.planning.context import Run
from harness.planning.judge import judge_targets
from harness.planning.options import RunOptions
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
from harness.verdict.evidence import Evidence
from harness.verdict.gate import ERROR, Verdict, decide
from harness.waves import gatherer


def run(options: RunOptions) -> RunOutcome:
    """The run `options` describe (RunOptions.from_cli merges them), to its verdict and reports."""
    plan, resume = options.plan, options.resume
    run_id = resume if resume is not None else new_run_id(plan.config.name)
    with (
        Store(options.store) as store,
        held(store, run_id),
        Engines(keep=judge_targets(plan)) as engines,
    ):
        pinned, against = baseline(plan, store, options.against)
        run_id = (
            resume_run(plan, store, options.mode, run_id)
            if resume is not None
            else begin(plan, store, options.mode, run_id, against)
        )
        current = Run(plan, store, run_id, inside(options.out, run_id), options.use_cache, engines)
        with ended_on_failure(current, run_secrets(plan) + options.store.secrets, options.mode):
            skip = stored_answers(plan, store, run_id) if resume is not None else set()
            store.put_timing(
                run_id, "plan", plan.config.name, time.perf_counter() - options.started
            )
            current.run_dir.mkdir(parents=True, exist_ok=True)
            console.log(
                f"run {run_id}: {len(plan.config.candidates)} candidates × {len(plan.suites)}"
                f" suites ({sum(len(s.cases) for s in plan.suites)} cases) → {current.run_dir}"
            )
            built = build(
                plan.config.candidates, plan.contexts(), store, run_id, retrain=options.retrain
            )
            record_built(current, built, resumed=resume is not None)
            evidence = gatherer(options.stop_when_settled)(current, built, pinned, skip)
            engines.close()
            verdict = _gate(current, evidence)
            finished = finish(current, verdict)
    track(plan.config.report.mlflow, finished)
    if verdict.decision == ERROR:
        console.log(verdict.reason, style="yellow")
    return finished


def _gate(run: Run, evidence: Evidence) -> Verdict:
    """The gates' verdict on the evidence, stored for the reports (the run is not finished yet)."""
    started = time.perf_counter()
    verdict = decide(run.plan.config, evidence)
    run.store.set_verdict(run.run_id, verdict.as_dict())
    run.store.put_timing(run.run_id, "gate", run.plan.config.name, time.perf_counter() - started)
    return verdict
