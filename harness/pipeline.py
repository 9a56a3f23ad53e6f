"""`harness compare` and `harness drift`: plan -> build -> generate and score -> judge -> gate -> report.

One plain call per stage. A run can be resumed: rows already stored are not redone, and the
store's primary keys keep every (candidate, suite, case, metric) row exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from harness.console import console

from harness.build import build
from harness.config import load_config
from harness.errors import HarnessError
from harness.gate import ERROR, Verdict, decide
from harness.generate import execute
from harness.judging import run_judges
from harness.plan import Plan, make_plan
from harness.provenance import environment, new_run_id, package_versions
from harness.report import write_reports
from harness.store import Store


STORE_NAME = "harness.sqlite"


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    verdict: Verdict
    files: dict[str, Path]


def output_root(plan: Plan, override: str | None) -> Path:
    if override:
        return Path(override).resolve()
    configured = plan.config.output_dir
    return (plan.loaded.base_dir / configured).resolve() if configured else Path("reports").resolve()


def run_metadata(plan: Plan) -> dict:
    return {
        "seed": plan.config.seed,
        "config_path": str(plan.loaded.path.resolve()),
        "models": {c: {"path": str(m.path), "fingerprint": m.fingerprint} for c, m in plan.models.items()},
        "endpoints": {c.name: {"protocol": c.protocol, "base_url": c.base_url, "model": c.model}
                      for c in plan.endpoints()},
        "suites": {s.name: {"path": str(s.path), "cases": len(s.cases), "content_hash": s.content_hash,
                            "metrics": s.metrics, "directions": s.directions,
                            "scorers": {x.metric: x.params.model_dump(mode="json") for x in s.scorers}}
                   for s in plan.suites},
        "packages": package_versions(),
        "environment": environment(),
    }


def run(config_path: str, *, kind: str = "compare", out: str | None = None, use_cache: bool = True,
        retrain: bool = False, resume: str | None = None) -> RunOutcome:
    plan = make_plan(load_config(config_path))
    root = output_root(plan, out)
    store = Store(root / STORE_NAME)
    try:
        reference, against = _reference(plan, store, kind)
        run_id, skip = _start(plan, store, kind, resume, against)
        run_dir = root / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        console.log(f"run {run_id}: {len(plan.config.candidates)} candidates × {len(plan.suites)} suites "
                    f"({sum(len(s.cases) for s in plan.suites)} cases) → {run_dir}")
        try:
            built = build(plan, store, run_id, retrain=retrain)
            execute(plan, store, run_id, run_dir, built, use_cache=use_cache, skip=skip)
            run_judges(plan, store, run_id, run_dir, [c.name for c in plan.config.candidates],
                       plan.config.baseline_name, use_cache=use_cache)
        except BaseException as exc:
            store.finish_run(run_id, "failed" if isinstance(exc, Exception) else "interrupted", None)
            raise
        responses = store.table("responses", run_id)
        verdict = decide(plan.config, store.table("scores", run_id), errors=int(responses["error"].notna().sum()),
                         requests=len(responses), reference=reference, directions=plan.directions())
        store.finish_run(run_id, "finished", verdict.as_dict())
        files = write_reports(store, run_id, run_dir)
    finally:
        store.close()
    if verdict.decision == ERROR:
        console.log(f"[yellow]{verdict.reason}[/]")
    return RunOutcome(run_id, run_dir, verdict, files)


def _reference(plan: Plan, store: Store, kind: str) -> tuple[pd.DataFrame | None, str | None]:
    """For drift: the pinned run's scores, which relative gates compare against."""
    if kind != "drift":
        return None, None
    if plan.config.drift is None:
        raise HarnessError(f"{plan.loaded.path}: `harness drift` needs a `drift:` block naming the pinned baseline\n"
                           "  fix: add `drift: {baseline: NAME}` after `harness pin RUN --as NAME`")
    name = plan.config.drift.baseline
    pinned = store.pinned(name)
    if pinned is None:
        raise HarnessError(f"no run is pinned as {name!r} in {store.path}\n"
                           f"  fix: harness pin RUN --as {name} --store {store.path} (see `harness runs`)")
    return store.table("scores", pinned), pinned


def _start(plan: Plan, store: Store, kind: str, resume: str | None, against: str | None) -> tuple[str, set]:
    if resume is None:
        run_id = new_run_id(plan.config.name)
        store.begin_run(run_id, plan.config.name, plan.loaded.hash, plan.config.model_dump(mode="json"),
                        run_metadata(plan), kind=kind, against=against)
        return run_id, set()
    record = store.run(resume)
    if record is None:
        raise HarnessError(f"no run {resume!r} in {store.path}\n  fix: see `harness runs --store {store.path}`")
    if record["config_hash"] != plan.loaded.hash:
        raise HarnessError(f"run {resume} was made with another config (hash {record['config_hash'][:12]}, now "
                           f"{plan.loaded.hash[:12]})\n  fix: resume with the same config, or start a new run")
    if record["kind"] != kind:
        raise HarnessError(f"run {resume} is a {record['kind']} run\n  fix: resume it with `harness {record['kind']}`")
    store.resume_run(resume)
    skip = store.done_keys(resume)
    console.log(f"resuming {resume}: {len(skip)} answers already stored")
    return resume, skip
