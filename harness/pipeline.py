"""`harness compare` and `harness drift`: plan -> build -> generate and score -> judge -> gate -> report.

One plain call per stage. A run can be resumed: rows already stored are not redone, and the
store's primary keys keep every (candidate, suite, case, metric) row exactly once.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from harness.building.build import Built, build
from harness.core.console import console
from harness.core.errors import HarnessError
from harness.core.progress import quiet_library_bars
from harness.core.provenance import environment, new_run_id, package_versions
from harness.generation.generate import execute, run_secrets
from harness.judging import run_judges
from harness.planning.check import check
from harness.planning.context import Run
from harness.planning.judge import judge_metrics, judge_targets
from harness.planning.plan import Plan
from harness.report import report_paths, write_reports
from harness.report.tracking import log_to_mlflow
from harness.serving.limits import redact
from harness.serving.pool import Engines
from harness.store.sqlite import Store, now
from harness.verdict.gate import ERROR, Verdict, decide

STORE_NAME = "harness.sqlite"
REASON_CHARS = 2000  # of a stopped run's reason, as the store keeps it (a message with its fix line fits)


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    verdict: Verdict
    files: dict[str, Path]


def inputs(plan: Plan) -> dict[str, dict[str, str]]:
    """What a run's answers depend on besides the config: suite contents and model weights. A resume
    must find them unchanged (adapters and indexes are compared once built)."""
    return {"suites": {s.name: s.content_hash for s in plan.suites},
            "models": {c: m.fingerprint for c, m in plan.models.items()}}




def run_metadata(plan: Plan) -> dict:
    return {
        "inputs": inputs(plan),
        "seed": plan.config.seed,
        "config_path": str(plan.loaded.path.resolve()),
        "models": {c: {"path": str(m.path), "fingerprint": m.fingerprint} for c, m in plan.models.items()},
        "endpoints": {c.name: {"protocol": c.protocol, "base_url": c.base_url, "model": c.model}  # type: ignore[attr-defined]
                      for c in plan.endpoints()},
        "suites": {s.name: {"path": str(s.path), "cases": len(s.cases), "content_hash": s.content_hash,
                            "candidates": plan.answering.get(s.name, [c.name for c in plan.config.candidates]),
                            "metrics": s.metrics, "directions": s.directions,
                            "scorers": {x.metric: x.params.model_dump(mode="json") for x in s.scorers}}
                   for s in plan.suites},
        "packages": package_versions(),
        "environment": environment(),
    }


def run(config_path: str, *, kind: str = "compare", out: str | None = None, use_cache: bool = True,
        retrain: bool = False, resume: str | None = None, against: str | None = None) -> RunOutcome:
    """`against`: a stored run (id or pin name) whose scores are the baseline side of relative gates, each
    candidate compared with itself there, as `harness drift` does with its pin."""
    quiet_library_bars()  # for library users; the command line did it already
    started = time.perf_counter()
    plan = check(config_path, out=out, against=against).ready()
    root = plan.output_root(out)
    with Store(root / STORE_NAME) as store, Engines(keep=judge_targets(plan)) as engines:
        pinned, against = _pinned(plan, store, kind, against is not None)
        run_id = _start(plan, store, kind, resume, against)
        current = Run(plan, store, run_id, root / run_id, use_cache, engines)
        with _ended_on_failure(store, run_id, report_paths(current.run_dir), run_secrets(plan)):
            skip = _stored_answers(plan, store, run_id) if resume is not None else set()
            store.put_timing(run_id, "plan", plan.config.name, time.perf_counter() - started)
            current.run_dir.mkdir(parents=True, exist_ok=True)
            console.log(f"run {run_id}: {len(plan.config.candidates)} candidates × {len(plan.suites)} suites "
                        f"({sum(len(s.cases) for s in plan.suites)} cases) → {current.run_dir}")
            built = build(current, retrain=retrain)
            _check_built(current, built, resumed=resume is not None)
            execute(current, built, skip=skip)
            run_judges(current)
            engines.close()
            verdict = _gate(current, pinned)
            files = _finish(current, verdict)
    _track(plan, files)
    if verdict.decision == ERROR:
        console.log(verdict.reason, style="yellow")
    return RunOutcome(run_id, current.run_dir, verdict, files)


@contextmanager
def _ended_on_failure(store: Store, run_id: str, reports: dict[str, Path], secrets: tuple[str, ...]
                      ) -> Iterator[None]:
    """Whatever stops a begun run before it finished (an exception, Ctrl-C, SIGTERM) ends it in the store as
    `failed` or `interrupted`, with the reason (redacted of the run's keys: a client library's message may
    quote one) and no verdict, and takes back any report file already renamed into place: those say
    `finished`, which the run is not. Pin, drift and diff refuse such a run; `--resume` finishes it."""
    try:
        yield
    except BaseException as exc:
        for path in reports.values():
            with suppress(OSError):  # what cannot be removed (a folder in a report's place) is no report
                path.unlink(missing_ok=True)
        store.finish_run(run_id, *_stopped(exc, secrets))
        raise


def _stopped(exc: BaseException, secrets: tuple[str, ...]) -> tuple[str, None, str]:
    """(status, verdict, reason) of a run stopped by `exc`: an Exception is a failure; anything else
    (KeyboardInterrupt, the CLI's Terminated for SIGTERM, SystemExit) an interruption. Redacted before it is cut,
    so no key is left half shown."""
    status = "failed" if isinstance(exc, Exception) else "interrupted"
    message = redact(str(exc), secrets)
    return status, None, f"{type(exc).__name__}: {message}"[:REASON_CHARS] if message else type(exc).__name__


def _gate(run: Run, pinned: pd.DataFrame | None) -> Verdict:
    """The gates' verdict over the stored rows, stored for the reports (the run is not finished yet)."""
    started = time.perf_counter()
    plan, store = run.plan, run.store
    responses = store.table("responses", run.run_id)
    verdict = decide(plan.config, store.table("scores", run.run_id), errors=int(responses["error"].notna().sum()),
                     requests=len(responses), pinned=pinned, directions=plan.directions(),
                     expected=plan.expected(), judges=judge_checks(plan, store, run.run_id))
    store.set_verdict(run.run_id, verdict.as_dict())
    store.put_timing(run.run_id, "gate", plan.config.name, time.perf_counter() - started)
    return verdict


def _finish(run: Run, verdict: Verdict) -> dict[str, Path]:
    """Every report file written (each atomically), then, and only then, the run `finished` in the store, at
    the time the files state: a finished run always has its verdict and all of its reports."""
    at = now()
    files = write_reports(run.store, run.run_id, run.run_dir, finished_at=at)
    run.store.finish_run(run.run_id, "finished", verdict.as_dict(), at=at)
    return files


def _track(plan: Plan, files: dict[str, Path]) -> None:
    """MLflow gets the run once it is finished, never before: the tracker holds a copy of the reports for
    browsing, it is not where the verdict lives. So a tracker that is down or refuses the run is a warning
    (report.tracking says it), and the run stays finished with its verdict and exit code: a SHIP that CI may
    act on must not turn into an error, or a DO NOT SHIP into a pass, because a dashboard was unreachable."""
    if plan.config.report.mlflow is not None:
        log_to_mlflow(plan.config.report.mlflow, json.loads(files["results"].read_text()), files)


def judge_checks(plan: Plan, store: Store, run_id: str) -> dict[tuple[str, str], tuple[str, bool, dict | None]]:
    """(suite, metric) -> (rubric, has a calibration set, its check as the judging stage recorded it)."""
    meta = (store.run(run_id) or {}).get("meta") or {}
    recorded = {(j["suite"], j["metric"]): j["check"] for j in meta.get("judges", [])}
    return {key: (rubric.name, rubric.calibration is not None, recorded.get(key))
            for key, rubric in judge_metrics(plan).items()}


def _pinned(plan: Plan, store: Store, kind: str, against: bool) -> tuple[pd.DataFrame | None, str | None]:
    """For drift and `compare --against`: the earlier run's scores, which relative gates compare against."""
    if kind != "drift" and not against:
        return None, None
    if plan.config.drift is None:
        raise HarnessError(f"{plan.loaded.path}: `harness drift` needs a `drift:` block naming the pinned baseline\n"
                           "  fix: add `drift: {baseline: NAME}` after `harness pin RUN --as NAME`")
    name = plan.config.drift.baseline
    run_id = store.pinned(name) or (name if store.run(name) is not None else None)
    if run_id is None:
        raise HarnessError(f"no run or pin named {name!r} in {store.path}\n"
                           f"  fix: name a run id from `harness runs --store {store.path}`, or pin one: "
                           f"harness pin RUN --as {name} --store {store.path}")
    record = store.run(run_id) or {}
    decision = (record.get("verdict") or {}).get("decision")
    why = f" ({record['reason'][:300]})" if record.get("reason") else ""
    if record.get("status") != "finished" or (decision == "error" and store.pinned(name) is None):
        raise HarnessError(f"run {run_id} is {record.get('status')}{why}"
                           f"{' with no verdict (ERROR)' if decision == 'error' else ''}: its scores are partial\n"
                           "  fix: compare against a run that finished with a verdict (see `harness runs`)")
    comparable(plan, run_id, record)
    return store.table("scores", run_id), run_id


def comparable(plan: Plan, run_id: str, record: dict) -> None:
    """The earlier run must have the relative gates' baselines and have scored their suites with the same content
    (suite file, cases, scorer settings, rubrics): otherwise its scores are not a baseline for these cases."""
    before = ((record.get("meta") or {}).get("inputs") or {}).get("suites", {})
    hashes = {s.name: s.content_hash for s in plan.suites}
    had = [c["name"] for c in (record.get("config") or {}).get("candidates", [])]
    problems = [f"candidate {who!r} is not in run {run_id} (it has: {', '.join(had)})"
                for who in sorted({plan.config.gate_baseline(g) for g in plan.config.gates if g.relative})
                if who not in had]
    for suite in sorted({g.suite for g in plan.config.gates if g.relative}):
        if suite not in before:
            problems.append(f"suite {suite!r} is not in run {run_id} (it has: {', '.join(before) or 'none'})")
        elif before[suite] != hashes[suite]:
            problems.append(f"suite {suite!r} changed since run {run_id} (content hash {before[suite][:12]} -> "
                            f"{hashes[suite][:12]}: its file, cases, scorer settings or rubrics differ)")
    if problems:
        raise HarnessError(f"run {run_id} cannot be the baseline: " + "; ".join(problems) +
                           "\n  fix: compare against a run of the same suites, or restore the suites it used")


def _start(plan: Plan, store: Store, kind: str, resume: str | None, against: str | None) -> str:
    """A new run begun in the store, or the one to resume (refused if its config, kind or inputs differ) set
    running again; its last act is the store's, so that whatever follows ends the run if it fails."""
    if resume is None:
        run_id = new_run_id(plan.config.name)
        store.begin_run(run_id, plan.config.name, plan.loaded.hash, plan.config.model_dump(mode="json"),
                        run_metadata(plan), kind=kind, against=against)
        return run_id
    record = store.run(resume)
    if record is None:
        raise HarnessError(f"no run {resume!r} in {store.path}\n  fix: see `harness runs --store {store.path}`")
    if record["config_hash"] != plan.loaded.hash:
        raise HarnessError(f"run {resume} was made with another config (hash {record['config_hash'][:12]}, now "
                           f"{plan.loaded.hash[:12]})\n  fix: resume with the same config, or start a new run")
    if record["kind"] != kind:
        raise HarnessError(f"run {resume} is a {record['kind']} run\n  fix: resume it with `harness {record['kind']}`")
    _refuse_changed(resume, (record["meta"] or {}).get("inputs", {}), inputs(plan))
    store.resume_run(resume)
    return resume


def _stored_answers(plan: Plan, store: Store, resume: str) -> set[tuple[str, str, str]]:
    """(candidate, suite, case) a resumed run need not redo: answered, with every inline score stored."""
    answered = store.answered(resume)
    skip = set()
    for suite in plan.suites:
        for case in suite.cases:
            for candidate in plan.config.candidates:
                if not plan.runs(candidate.name, suite.name):
                    continue
                key = (candidate.name, suite.name, case.id)
                if key in answered and plan.inline_metrics(candidate.name, suite, case) <= answered[key]:
                    skip.add(key)
    console.log(f"resuming {resume}: {len(skip)} answers already stored (with their scores)")
    return skip


def _refuse_changed(run_id: str, before: dict[str, dict[str, str]], now: dict[str, dict[str, str]]) -> None:
    """A resumed run must not mix answers from two versions of its inputs: name every one that changed."""
    changed = []
    for kind, values in now.items():
        old = before.get(kind)
        if old is None:
            changed.append(f"{kind}: not recorded by the run (made by an older harness)")
            continue
        for name in sorted(set(values) | set(old)):
            if values.get(name) != old.get(name):
                changed.append(f"{kind[:-1]} {name!r}: {str(old.get(name, 'absent'))[:12]} -> "
                               f"{str(values.get(name, 'absent'))[:12]}")
    if changed:
        raise HarnessError(f"run {run_id} cannot be resumed: its inputs changed since it started ("
                           + "; ".join(changed) + ")\n  fix: start a new run (drop --resume), or restore the inputs")


def _check_built(run: Run, built: Built, resumed: bool) -> None:
    """Record what was built with the run; on a resume, refuse when an adapter or index differs."""
    meta = (run.store.run(run.run_id) or {}).get("meta") or {}
    now = built.identities()
    if resumed and "built" in meta:
        _refuse_changed(run.run_id, meta["built"], now)
    run.store.set_meta(run.run_id, {**meta, "built": now})
