"""The judging stage: `judge` scorers ask a model, with a rubric from judges/, after generation is
done.

What the judge sees: `question` is the case's own input (not the candidate's prompt, so every
candidate is judged on the same question), `answer` the stored output, `reference` the case's
reference when the rubric shows it, `metadata` the case's metadata, and `context` the retrieved
text: the stage reads stored responses and cannot re-run retrieval, so `context` is the last user
message the candidate was actually sent (the RAG prompt, with its chunks), and empty for candidates
without retrieval.

Asking (engine, cache, retries) is judging.asking; turning replies into scores is judging.replies.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

from harness.core.console import console
from harness.judging.asking import Answerer, ask
from harness.judging.calibrate import JudgeCalibration, calibrate_rubrics
from harness.judging.replies import reply_score
from harness.planning.judge import judge_metrics, judge_model
from harness.scoring.calibration import reading
from harness.scoring.judge import JudgeParams
from harness.store.meta import JudgeRecord

if TYPE_CHECKING:
    import pandas as pd

    from harness.planning.context import Run
    from harness.planning.plan import Plan
    from harness.planning.suites import Case


@dataclass(frozen=True)
class Judgement:
    """One score row to write: the template variables of the prompts that decide it (pairwise: both
    orders), or the problem that keeps it from being judged."""

    candidate: str
    suite: str
    case_id: str
    metric: str
    params: JudgeParams
    output: str
    variables: tuple[dict[str, Any], ...] = ()
    problem: str | None = None


def question_of(case: Case) -> str:
    """The case's input as the judge sees it: the message, or the whole chat when it has several
    turns."""
    if len(case.messages) == 1:
        return case.messages[0].content
    return "\n\n".join(f"{m.role.upper()}: {m.content}" for m in case.messages)


def retrieved_text(request_json: str, context_json: str | None) -> str:
    """The prompt a retrieval candidate was sent (its chunks are in it); '' when nothing was
    retrieved."""
    if not isinstance(context_json, str):
        return ""
    messages = json.loads(request_json)["messages"]
    return next((content for role, content in reversed(messages) if role == "user"), "")


def judgements(
    plan: Plan, responses: pd.DataFrame, candidates_order: Sequence[str], baseline: str
) -> list[Judgement]:
    """Every (judge scorer, candidate, case) with an answer stored without error; pairwise rubrics
    compare each candidate other than the baseline with the baseline's answer to the same case."""
    answered = {
        (r.candidate, r.suite, r.case_id): r
        for r in responses[responses["error"].isna()].itertuples()
    }
    out = []
    for suite in plan.suites:
        for spec in suite.scorers:
            if not (spec.deferred and spec.type == "judge"):
                continue
            params: JudgeParams = spec.params  # type: ignore[assignment]
            for candidate in candidates_order:
                pairwise_with_itself = params.loaded.mode == "pairwise" and candidate == baseline
                if pairwise_with_itself or not plan.answers(candidate, suite.name):
                    continue
                for case in suite.cases:
                    row = answered.get((candidate, suite.name, case.id))
                    if row is not None and not (
                        params.loaded.rubric.needs_context and not isinstance(row.context_json, str)
                    ):
                        other = answered.get((baseline, suite.name, case.id))
                        out.append(
                            _judgement(
                                params,
                                spec.metric,
                                candidate,
                                suite.name,
                                case,
                                row,
                                other,
                                baseline,
                            )
                        )
    return out


def _judgement(
    params: JudgeParams,
    metric: str,
    candidate: str,
    suite: str,
    case: Case,
    row: Any,
    baseline_row: Any,
    baseline: str,
) -> Judgement:
    rubric = params.loaded
    head = Judgement(candidate, suite, case.id, metric, params, row.output)
    variables: dict[str, Any] = {
        "question": question_of(case),
        "metadata": case.metadata,
        "context": retrieved_text(row.request_json, row.context_json),
    }
    if rubric.rubric.show_reference:
        if case.reference is None:
            return replace(head, problem="the case has no reference to judge against")
        variables["reference"] = case.reference
    if rubric.mode != "pairwise":
        return replace(head, variables=({"answer": row.output, **variables},))
    if baseline_row is None:
        return replace(
            head, problem=f"the baseline {baseline!r} has no answer to this case to compare with"
        )
    return replace(
        head,
        variables=(
            {"answer_a": row.output, "answer_b": baseline_row.output, **variables},
            {"answer_a": baseline_row.output, "answer_b": row.output, **variables},
        ),
    )


@dataclass(frozen=True)
class Judged:
    """What the judging stage hands on: how many judgements ended as errors, and per judge metric
    (suite, metric) its judge's calibration check, which the verdict needs and the report shows
    (stored in the run's meta).
    """

    errors: int
    checks: dict[tuple[str, str], JudgeRecord]


def run_judges(run: Run, only: set[tuple[str, str, str]] | None = None) -> Judged:
    """Check each rubric's judge against its calibration set, then judge every stored answer with
    every `judge` scorer of its suite; write one score row per judgement (value NULL, detail 'judge
    error: ...' for an error). `only` (a wave of stop_when_settled): judge just these (candidate,
    suite, case), and none already judged.
    """
    plan, store = run.plan, run.store
    metrics = judge_metrics(plan)
    if not metrics:
        return Judged(0, {})
    todo = judgements(
        plan,
        store.table("responses", run.run_id),
        [c.name for c in plan.config.candidates],
        plan.config.baseline_name,
    )
    if only is not None:
        scores = store.table("scores", run.run_id)
        judged = set(
            scores[scores["value"].notna()][["candidate", "suite", "case_id", "metric"]].itertuples(
                index=False, name=None
            )
        )
        todo = [
            j
            for j in todo
            if (j.candidate, j.suite, j.case_id) in only
            and (j.candidate, j.suite, j.case_id, j.metric) not in judged
        ]
    judge = judge_model(plan)
    attempts = plan.config.judge.attempts
    started = time.perf_counter()
    with ExitStack() as stack:
        answerer = Answerer.for_run(run, judge, stack)
        checks = calibrate_rubrics(answerer, list(metrics.values()), plan.config.judge)
        results = iter(
            ask(
                answerer,
                [(j.params.loaded, p) for j in todo for p in j.variables],
                plan.config.judge,
            )
        )
    store.put_timing(
        run.run_id,
        "judge",
        judge.label,
        time.perf_counter() - started - (answerer.started_s or 0.0),
    )
    if answerer.started_s is not None:
        store.put_timing(run.run_id, "engine_start", judge.label, answerer.started_s)
    records = {
        (suite, metric): JudgeRecord(
            suite=suite,
            metric=metric,
            rubric=rubric.name,
            calibrated=rubric.calibration is not None,
            check=_as_dict(checks[str(rubric.path)]),
        )
        for (suite, metric), rubric in metrics.items()
    }
    store.set_meta_key(run.run_id, "judges", list(records.values()))
    for check in filter(None, checks.values()):
        console.log(
            f"{judge.label} on {check.rubric}: {check.sentence()}; {reading(check.as_dict())}"
        )
    errors = fallbacks = 0
    for judgement in todo:
        score = reply_score(
            judgement.params,
            judgement.output,
            [next(results) for _ in judgement.variables],
            attempts,
            judgement.problem,
        )
        errors += score.value is None
        fallbacks += bool(score.meta and score.meta.get("fallback"))
        store.put_score(
            run.run_id,
            judgement.candidate,
            judgement.suite,
            judgement.case_id,
            judgement.metric,
            score.value,
            score.passed,
            score.detail,
            score.meta,
        )
    console.log(
        f"{judge.label}: {len(todo)} judgements ({answerer.cached} answers cached, {answerer.asked}"
        f" asked), {errors} errors, {fallbacks} decided by the refusal fallback"
    )
    return Judged(errors, records)


def _as_dict(check: JudgeCalibration | None) -> dict[str, Any] | None:
    return None if check is None else check.as_dict()
