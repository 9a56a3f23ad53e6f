"""Generate and score: every (candidate, suite, case) becomes a request, answered from the cache or
by the engine, redacted of the run's secrets, scored at once, and written to the store as it is made
(nothing lost on a crash).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.building.build import Built
from harness.building.kinds import CandidateBase, kind_of
from harness.core.console import console
from harness.core.progress import StageProgress
from harness.core.request import Completion
from harness.generation.prompts import Prepared, prepare
from harness.planning.suites import Case, Suite
from harness.scoring.registry import Score, ScoreInput
from harness.serving.base import LocalTarget, Target
from harness.serving.endpoints import secret_values
from harness.serving.fleet import Fleet
from harness.serving.limits import redacted

if TYPE_CHECKING:
    from harness.planning.context import Run
    from harness.planning.plan import Plan
    from harness.store.store import Store

Member = tuple[
    CandidateBase, str, "str | None"
]  # (candidate, served name, cache fingerprint; None: never cached)


@dataclass(frozen=True)
class Job:
    candidate: CandidateBase
    suite: Suite
    case: Case
    prepared: Prepared
    fingerprint: str | None  # what answers, for the cache key; None: never cached


def targets(run: Run, built: Built) -> list[tuple[Target, str, list[Member]]]:
    """(target, label, members): one engine per target, as each candidate's kind names it.
    Candidates on one base model share it, so each model's server starts once per run with every
    adapter its candidates need; each endpoint is its own."""
    plan = run.plan
    local: dict[str, tuple[LocalTarget, str, list[Member]]] = {}
    remote: list[tuple[Target, str, list[Member]]] = []
    for c in plan.config.candidates:
        kind, model, artifact = kind_of(c), plan.models.get(c.name), built.artifacts.get(c.name)
        target, member = kind.target(c, model, artifact), (c, *kind.served(c, model, artifact))
        if isinstance(target, LocalTarget):
            key = target.model.fingerprint
            before, _, members = local.get(key, (LocalTarget(target.model), "", []))
            local[key] = (
                LocalTarget(target.model, before.adapters + target.adapters),
                target.model.name,
                [*members, member],
            )
        else:
            remote.append((target, f"{c.name} ({target.protocol} endpoint)", [member]))
    out = [*local.values(), *remote]
    return sorted(
        out, key=lambda t: run.engines.kept(t[0])
    )  # what a later stage reuses goes last (see pool)


def run_secrets(plan: Plan) -> tuple[str, ...]:
    """The credentials every endpoint of the config is called with (each endpoint candidate's and
    the judge endpoint's key, and the user and password of a URL read from a variable; see
    endpoints.secret_values). Every answer of the run, fresh or cached, a candidate's or the
    judge's, is redacted of all of them before it is stored, scored or shown: an endpoint may echo
    what it was sent, and an answer cached by an older harness may hold any of them."""
    judge = plan.config.judge.endpoint
    remotes = [remote for c in plan.config.candidates if (remote := plan.remote(c)) is not None]
    return secret_values([*remotes, *([judge] if judge else [])])


def execute(
    run: Run,
    built: Built,
    skip: set[tuple[str, str, str]] | None = None,
    only: set[tuple[str, str, str]] | None = None,
) -> None:
    """`skip`: (candidate, suite, case) already stored by an earlier attempt at this run (resume);
    `only`: the (candidate, suite, case) to answer, where not every one is (a wave of
    stop_when_settled). Answers are scored on their redacted text (see run_secrets): a score never
    rests on a key."""
    plan, store, run_id = run.plan, run.store, run.run_id
    skip = skip or set()
    secrets = run_secrets(plan)
    for suite in plan.suites:
        for case in suite.cases:
            store.put_case(
                run_id,
                suite.name,
                case.id,
                [m.model_dump() for m in case.messages],
                case.reference,
                case.tags,
                case.metadata,
            )
    for target, label, members in targets(run, built):
        jobs = [
            Job(
                c,
                s,
                case,
                prepare(plan.config, c, s, case, served, built.artifacts.get(c.name)),
                fingerprint,
            )
            for c, served, fingerprint in members
            for s in plan.suites
            if plan.answers(c.name, s.name)
            for case in s.cases
            if (c.name, s.name, case.id) not in skip
            and (only is None or (c.name, s.name, case.id) in only)
        ]
        if only is not None and not jobs:
            continue  # nothing of this wave for this engine
        misses = []
        for job in jobs:
            hit = (
                store.cache_get(job.prepared.request.cache_key(job.fingerprint))
                if run.use_cache and job.fingerprint
                else None
            )
            if hit is None:
                misses.append(job)
            else:
                record(store, run_id, job, redacted(hit, secrets), cached=True)
        console.log(f"{label}: {len(jobs) - len(misses)} cached, {len(misses)} to generate")
        if not misses:
            continue
        started = time.perf_counter()
        # Candidates that send the same request to the same weights (log-likelihood probes on one
        # base model, say) get one answer: each distinct request is asked once.
        distinct: dict[str, list[Job]] = {}
        for job in misses:
            key = (
                job.prepared.request.cache_key(job.fingerprint) if job.fingerprint else str(id(job))
            )
            distinct.setdefault(key, []).append(job)
        groups = list(distinct.values())
        with run.engines.use(target, plan.config.engine, run.run_dir, plan.config.seed) as engine:
            store.put_timing(run_id, "engine_start", label, time.perf_counter() - started)
            # Wall time by stage: each answer is charged the time since the one before it, so
            # generation and the log-likelihood probes (which an engine answers after it, alone) get
            # their own rows.
            spent = {"generate": 0.0, "loglik": 0.0}
            last = time.perf_counter()
            with StageProgress(
                f"generate {label} ({', '.join(c.name for c, _, _ in members)})",
                len(misses),
                unit="answers",
            ) as progress:
                for index, answered in engine.run([group[0].prepared.request for group in groups]):
                    completion = redacted(answered, secrets)
                    now = time.perf_counter()
                    spent[
                        (
                            "generate"
                            if groups[index][0].prepared.request.loglik == "none"
                            else "loglik"
                        )
                    ] += now - last
                    last = now
                    for job in groups[index]:
                        record(store, run_id, job, completion, cached=False)
                    progress.advance(len(groups[index]))
            for stage, seconds in spent.items():
                if seconds:
                    store.put_timing(run_id, stage, label, seconds)
            if isinstance(engine, Fleet) and engine.eventful():
                store.put_artifact(run_id, label, "serving", engine.summary())


def record(store: Store, run_id: str, job: Job, completion: Completion, cached: bool) -> None:
    """An answer and its inline scores land in one transaction: a crash never leaves an answer that
    looks done but has no scores (a resumed run would skip it forever)."""
    names = (run_id, job.candidate.name, job.suite.name, job.case.id)
    scores = [] if completion.error is not None else inline_scores(job, completion)
    with store.transaction():
        store.put_response(
            *names, job.prepared.request.as_json(), completion, cached, job.prepared.context
        )
        for metric, score in scores:
            store.put_score(*names, metric, score.value, score.passed, score.detail, score.meta)
        if completion.error is None and not cached and job.fingerprint:
            store.cache_put(
                job.prepared.request.cache_key(job.fingerprint), job.fingerprint, completion
            )


def inline_scores(job: Job, completion: Completion) -> list[tuple[str, Score]]:
    """(metric, score) of every scorer that needs no model and applies to this case and candidate."""
    gold = tuple(job.case.metadata.get("gold_doc_ids") or ())
    retrieved = tuple(hit["doc_id"] for hit in job.prepared.context or ())
    item = ScoreInput(
        output=completion.text,
        reference=job.case.reference,
        logliks=completion.logliks,
        answer_index=job.case.answer_index,
        retrieved=retrieved,
        gold=gold,
    )
    retrieves = job.prepared.context is not None
    return [
        (s.metric, s(item))
        for s in job.suite.scorers
        if not s.deferred and s.applies(bool(gold), retrieves)
    ]
