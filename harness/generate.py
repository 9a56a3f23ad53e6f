"""Generate and score: every (candidate, suite, case) becomes a request, answered from the cache
or by the engine, scored at once, and written to the store as it is made (nothing lost on a crash).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.build import Built
from harness.candidates import Prepared, prepare
from harness.console import console
from harness.config import CandidateBase, LoraCandidate
from harness.plan import Plan
from harness.retrieval import recall_at_k, reciprocal_rank
from harness.scorers import ScoreInput
from harness.serving import Completion, EndpointTarget, LocalTarget, Target, open_engine
from harness.store import Store
from harness.suites import Case, Suite


@dataclass(frozen=True)
class Job:
    candidate: CandidateBase
    suite: Suite
    case: Case
    prepared: Prepared
    fingerprint: str | None  # what answers, for the cache key; None: never cached


def targets(plan: Plan, built: Built) -> list[tuple[Target, str, list[tuple[CandidateBase, str, str | None]]]]:
    """(target, label, [(candidate, served name, cache fingerprint)]): one engine per target."""
    out: list = []
    for model, candidates in plan.by_model():
        adapters = tuple(built.adapters[c.name] for c in candidates if isinstance(c, LoraCandidate))
        members = []
        for c in candidates:
            if isinstance(c, LoraCandidate):
                adapter = built.adapters[c.name]
                members.append((c, adapter.name, adapter.fingerprint))
            else:
                members.append((c, model.name, model.fingerprint))
        out.append((LocalTarget(model, adapters), model.name, members))
    for c in plan.endpoints():
        identity = hashlib.sha256(f"{c.protocol}|{c.base_url}|{c.model}".encode()).hexdigest()
        target = EndpointTarget(c.protocol, c.base_url, c.api_key_env, c.max_concurrency, c.request_timeout_s,
                                c.max_retries, c.requests_per_minute)
        out.append((target, f"{c.name} ({c.protocol} endpoint)", [(c, c.model, f"endpoint:{identity}" if c.cache else None)]))
    return out


def execute(plan: Plan, store: Store, run_id: str, run_dir: Path, built: Built, use_cache: bool = True,
            skip: set[tuple[str, str, str]] | None = None) -> None:
    """`skip`: (candidate, suite, case) already stored by an earlier attempt at this run (resume)."""
    skip = skip or set()
    for suite in plan.suites:
        for case in suite.cases:
            store.put_case(run_id, suite.name, case.id, [m.model_dump() for m in case.messages], case.reference,
                           case.tags, case.metadata)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        for target, label, members in targets(plan, built):
            jobs = [Job(c, s, case, prepare(plan.config, c, s, case, served, built.indexes.get(c.name)), fingerprint)
                    for c, served, fingerprint in members for s in plan.suites for case in s.cases
                    if (c.name, s.name, case.id) not in skip]
            task = progress.add_task(f"{label}: {', '.join(c.name for c, _, _ in members)}", total=len(jobs))
            misses = []
            for job in jobs:
                hit = store.cache_get(job.prepared.request.cache_key(job.fingerprint)) \
                    if use_cache and job.fingerprint else None
                if hit is None:
                    misses.append(job)
                else:
                    record(store, run_id, job, hit, cached=True)
                    progress.advance(task)
            if not misses:
                continue
            progress.console.log(f"{label}: {len(jobs) - len(misses)} cached, {len(misses)} to generate")
            started = time.perf_counter()
            # Candidates that send the same request to the same weights (log-likelihood probes on one base
            # model, say) get one answer: each distinct request is asked once.
            distinct: dict[str, list[Job]] = {}
            for job in misses:
                key = job.prepared.request.cache_key(job.fingerprint) if job.fingerprint else str(id(job))
                distinct.setdefault(key, []).append(job)
            groups = list(distinct.values())
            with open_engine(target, plan.config.engine, run_dir, plan.config.seed) as engine:
                store.put_timing(run_id, "engine_start", label, time.perf_counter() - started)
                started = time.perf_counter()
                for index, completion in engine.run([group[0].prepared.request for group in groups]):
                    for job in groups[index]:
                        record(store, run_id, job, completion, cached=False)
                        progress.advance(task)
                store.put_timing(run_id, "generate", label, time.perf_counter() - started)


def record(store: Store, run_id: str, job: Job, completion: Completion, cached: bool) -> None:
    """An answer and its inline scores land in one transaction: a crash never leaves an answer that
    looks done but has no scores (a resumed run would skip it forever)."""
    names = (run_id, job.candidate.name, job.suite.name, job.case.id)
    rows = [] if completion.error is not None else inline_scores(job, completion)
    with store.transaction():
        store.put_response(*names, job.prepared.request.as_json(), completion, cached, job.prepared.context)
        for metric, value, passed, detail in rows:
            store.put_score(*names, metric, value, passed, detail)
        if completion.error is None and not cached and job.fingerprint:
            store.cache_put(job.prepared.request.cache_key(job.fingerprint), job.fingerprint, completion)


def inline_scores(job: Job, completion: Completion) -> list[tuple[str, float, bool | None, str]]:
    """(metric, value, passed, detail) of every scorer that needs no model, plus retrieval metrics."""
    item = ScoreInput(output=completion.text, reference=job.case.reference, logliks=completion.logliks,
                      answer_index=job.case.answer_index)
    rows = []
    for scorer in job.suite.scorers:
        if not scorer.deferred:
            score = scorer(item)
            rows.append((scorer.metric, score.value, score.passed, score.detail))
    gold = job.case.metadata.get("gold_doc_ids")
    if job.prepared.context is not None and gold:
        retrieved = [hit["doc_id"] for hit in job.prepared.context]
        k = len(retrieved)
        rows.append(("recall_at_k", recall_at_k(retrieved, gold, k), None, f"k={k}"))
        rows.append(("mrr", reciprocal_rank(retrieved, gold), None, ""))
    return rows
