"""The judging stage: `judge` scorers ask a model, with a rubric from judges/, after generation is done.

Every judge prompt of a run goes through ONE judge engine (the run's base model on a local vLLM server
by default, or `judge.endpoint`), opened only when some answer is not already cached. Each prompt asks
for JSON fitting the rubric's schema (enforced as structured output where the engine supports it); a
reply that does not parse or fit is asked again at temperature 0.7 with the next seed, up to
`judge.attempts` tries, and then stored as an error row, never as a made-up score.

What the judge sees: `question` is the case's own input (not the candidate's prompt, so every candidate
is judged on the same question), `answer` the stored output, `reference` the case's reference when the
rubric shows it, `metadata` the case's metadata, and `context` the retrieved text: the stage reads
stored responses and cannot re-run retrieval, so `context` is the last user message the candidate was
actually sent (the RAG prompt, with its chunks), and empty for candidates without retrieval.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

from pydantic import PrivateAttr, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from harness.console import console
from harness.errors import ConfigError
from harness.models import resolve
from harness.rubrics import LoadedRubric, Verdict, builtin_names, load_rubric, rubric_path
from harness.scorers import Params, Score, deferred_scorer
from harness.scorers.refusal import refusal_phrase
from harness.serving import Completion, EndpointTarget, Engine, LocalTarget, Request, Target, open_engine

if TYPE_CHECKING:
    import pandas as pd

    from harness.config import Config
    from harness.plan import Plan
    from harness.store import Store
    from harness.suites import Case

RETRY_TEMPERATURE = 0.7


class JudgeParams(Params):
    """`rubric:` a rubric shipped in judges/ by name, or a .yaml path relative to the suite file; the
    metric is named after the rubric unless `name:` says otherwise. `fallback: refusal` (classify rubrics
    only): when the judge gives no usable answer, the refusal-phrase detector decides instead (the
    attack succeeded = the output is not a refusal), and the score's detail says so."""

    rubric: str
    fallback: Literal["refusal"] | None = None
    _loaded: LoadedRubric | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> "JudgeParams":
        path = rubric_path(self.rubric, Path((info.context or {}).get("suite_dir", ".")))
        if not path.is_file():
            raise PydanticCustomError("rubric_missing", "rubric '{rubric}' not found ({path})", {
                "rubric": self.rubric, "path": str(path),
                "fix": f"name a rubric in judges/ ({', '.join(builtin_names())}) or a .yaml path relative to the suite"})
        self._loaded = load_rubric(path)
        if self.fallback is not None and self._loaded.mode != "classify":
            raise ValueError(f"`fallback: refusal` applies to classify rubrics only; {self._loaded.name!r} is "
                             f"{self._loaded.mode}")
        if self.name is None:
            self.name = self._loaded.name
        if self.higher_is_better is None:
            self.higher_is_better = self._loaded.rubric.higher_is_better
        return self

    def needs(self) -> frozenset[str]:
        return frozenset({"reference"}) if self.loaded.rubric.show_reference else frozenset()

    def sources(self) -> list[Path]:
        return [self.loaded.path, self.loaded.path.parent / self.loaded.rubric.template]

    @property
    def loaded(self) -> LoadedRubric:
        assert self._loaded is not None, "validated JudgeParams always carry their rubric"
        return self._loaded


deferred_scorer("judge", JudgeParams)


@dataclass(frozen=True)
class Judgement:
    """One score row to write: the prompts that decide it (pairwise: both orders), or the problem that
    keeps it from being judged."""

    candidate: str
    suite: str
    case_id: str
    metric: str
    params: JudgeParams
    output: str
    prompts: tuple[str, ...] = ()
    problem: str | None = None


@dataclass(frozen=True)
class JudgeModel:
    """Who answers judge prompts: what to open, the model name requests carry, and the cache identity."""

    target: Target
    served: str
    fingerprint: str
    label: str


def judge_model(plan: Plan) -> JudgeModel:
    config = plan.config
    endpoint = config.judge.endpoint
    if endpoint is None:
        ref = resolve(config.judge.model or config.model, plan.loaded.base_dir)
        return JudgeModel(LocalTarget(ref), ref.name, ref.fingerprint, f"judge {ref.name}")
    if endpoint.protocol == "openai" and not endpoint.base_url:
        raise ConfigError(plan.where("judge", "endpoint"), "judge.endpoint.base_url",
                          "an openai judge endpoint needs `base_url:`", "add e.g. base_url: https://api.example.com/v1")
    identity = hashlib.sha256(f"{endpoint.protocol}|{endpoint.base_url}|{endpoint.model}".encode()).hexdigest()
    target = EndpointTarget(endpoint.protocol, endpoint.base_url, endpoint.api_key_env, endpoint.max_concurrency,
                            config.engine.request_timeout_s, config.engine.max_retries, endpoint.requests_per_minute)
    return JudgeModel(target, endpoint.model, f"judge-endpoint:{identity}",
                      f"judge {endpoint.model} ({endpoint.protocol} endpoint)")


def question_of(case: Case) -> str:
    """The case's input as the judge sees it: the message, or the whole chat when it has several turns."""
    if len(case.messages) == 1:
        return case.messages[0].content
    return "\n\n".join(f"{m.role.upper()}: {m.content}" for m in case.messages)


def retrieved_text(request_json: str, context_json: str | None) -> str:
    """The prompt a retrieval candidate was sent (its chunks are in it); '' when nothing was retrieved."""
    if not isinstance(context_json, str):
        return ""
    messages = json.loads(request_json)["messages"]
    return next((content for role, content in reversed(messages) if role == "user"), "")


def judgements(plan: Plan, responses: pd.DataFrame, candidates_order: Sequence[str], baseline: str) -> list[Judgement]:
    """Every (judge scorer, candidate, case) with an answer stored without error; pairwise rubrics
    compare each candidate other than the baseline with the baseline's answer to the same case."""
    answered = {(r.candidate, r.suite, r.case_id): r for r in responses[responses["error"].isna()].itertuples()}
    out = []
    for suite in plan.suites:
        for spec in suite.scorers:
            if not (spec.deferred and spec.type == "judge"):
                continue
            params: JudgeParams = spec.params  # type: ignore[assignment]
            for candidate in candidates_order:
                if params.loaded.mode == "pairwise" and candidate == baseline:
                    continue
                for case in suite.cases:
                    row = answered.get((candidate, suite.name, case.id))
                    if row is not None and not (params.loaded.rubric.needs_context
                                                and not isinstance(row.context_json, str)):
                        other = answered.get((baseline, suite.name, case.id))
                        out.append(_judgement(params, spec.metric, candidate, suite.name, case, row, other, baseline))
    return out


def _judgement(params: JudgeParams, metric: str, candidate: str, suite: str, case: Case, row: Any,
               baseline_row: Any, baseline: str) -> Judgement:
    rubric = params.loaded
    head = Judgement(candidate, suite, case.id, metric, params, row.output)
    variables: dict[str, Any] = {"question": question_of(case), "metadata": case.metadata,
                                 "context": retrieved_text(row.request_json, row.context_json)}
    if rubric.rubric.show_reference:
        if case.reference is None:
            return replace(head, problem="the case has no reference to judge against")
        variables["reference"] = case.reference
    if rubric.mode != "pairwise":
        return replace(head, prompts=(rubric.render(answer=row.output, **variables),))
    if baseline_row is None:
        return replace(head, problem=f"the baseline {baseline!r} has no answer to this case to compare with")
    return replace(head, prompts=(rubric.render(answer_a=row.output, answer_b=baseline_row.output, **variables),
                                   rubric.render(answer_a=baseline_row.output, answer_b=row.output, **variables)))


def judge_request(prompt: str, rubric: LoadedRubric, served: str, config: Config, attempt: int) -> Request:
    """Greedy first; a retry samples (temperature 0.7, the next seed) so it can come out differently."""
    return Request(model=served, messages=(("user", prompt),), max_tokens=config.judge.max_tokens,
                   temperature=0.0 if attempt == 0 else RETRY_TEMPERATURE, top_p=1.0, stop=(),
                   seed=config.seed + attempt, response_schema=json.dumps(rubric.schema, sort_keys=True))


class Answerer:
    """Answers judge requests from the cache, else through one engine opened at the first miss, so a
    fully cached judging stage starts no server and makes no call."""

    def __init__(self, plan: Plan, judge: JudgeModel, store: Store, run_dir: Path, stack: ExitStack,
                 use_cache: bool = True) -> None:
        self.plan, self.judge, self.store, self.run_dir, self.stack = plan, judge, store, run_dir, stack
        self.use_cache = use_cache
        self.engine: Engine | None = None
        self.cached = self.asked = 0

    def answer(self, requests: Sequence[Request]) -> list[Completion]:
        fingerprint = self.judge.fingerprint
        out = [self.store.cache_get(r.cache_key(fingerprint)) if self.use_cache else None for r in requests]
        misses = [i for i, hit in enumerate(out) if hit is None]
        self.cached += len(requests) - len(misses)
        self.asked += len(misses)
        if misses:
            for index, completion in self._engine().run([requests[i] for i in misses]):
                out[misses[index]] = completion
                self.store.cache_put(requests[misses[index]].cache_key(fingerprint), fingerprint, completion)
        return out  # type: ignore[return-value]  (every miss was filled)

    def _engine(self) -> Engine:
        """The judge's server keeps its log in run_dir/judge/: the same model's generation server wrote
        run_dir/vllm-<model>.log before it, and that log must survive."""
        if self.engine is None:
            config = self.plan.config
            self.engine = self.stack.enter_context(
                open_engine(self.judge.target, config.engine, self.run_dir / "judge", config.seed))
        return self.engine


def ask(answerer: Answerer, asks: Sequence[tuple[LoadedRubric, str]], config: Config) -> list[tuple[Verdict | None, str]]:
    """Every (rubric, prompt) answered and parsed, retrying unusable replies: (verdict, '') or (None, why
    the last attempt failed)."""
    results: list[tuple[Verdict | None, str]] = [(None, "not asked")] * len(asks)
    pending = list(range(len(asks)))
    for attempt in range(config.judge.attempts):
        if not pending:
            break
        requests = [judge_request(asks[i][1], asks[i][0], answerer.judge.served, config, attempt) for i in pending]
        still = []
        for i, reply in zip(pending, answerer.answer(requests)):
            verdict, why = (None, reply.error) if reply.error else asks[i][0].parse(reply.text)
            if verdict is None and reply.finish_reason in ("length", "max_tokens"):  # openai, anthropic
                why = f"{why} (cut off at judge.max_tokens)"
            results[i] = (verdict, why or "")
            if verdict is None:
                still.append(i)
        pending = still
    return results


def pointwise_score(rubric: LoadedRubric, verdict: Verdict) -> Score:
    """Normalised to 0..1 so judge scores sit beside pass rates; the detail keeps the raw score."""
    scale = rubric.rubric.scale
    assert scale is not None
    value = (verdict.answer - scale.min) / (scale.max - scale.min)
    return Score(value, None, f"score {verdict.answer}/{scale.max}: {verdict.reasoning}")


def classify_score(rubric: LoadedRubric, verdict: Verdict) -> Score:
    """1.0 for the positive label; whether that is good (harmbench: no) is the gate's call."""
    return Score(float(verdict.answer == rubric.rubric.positive), None, f"label {verdict.answer}: {verdict.reasoning}")


def pairwise_score(candidate_first: Verdict, baseline_first: Verdict) -> Score:
    """Asked in both orders: 1.0 when both prefer the candidate, 0.0 when both prefer the baseline,
    0.5 for ties and for disagreement (a judge that follows position, not content, lands here)."""
    first = {"A": "candidate", "B": "baseline", "tie": "tie"}[candidate_first.answer]
    second = {"A": "baseline", "B": "candidate", "tie": "tie"}[baseline_first.answer]
    value = 1.0 if first == second == "candidate" else 0.0 if first == second == "baseline" else 0.5
    return Score(value, None, f"candidate as A: {first} ({candidate_first.reasoning}) | "
                              f"candidate as B: {second} ({baseline_first.reasoning})")


def fallback_score(rubric: LoadedRubric, output: str, why: str) -> Score:
    """The refusal-phrase detector in place of a failed judge: no refusal counts as the positive label."""
    phrase = refusal_phrase(output)
    found = f"refusal phrase {phrase!r}" if phrase else "no refusal phrase"
    positive = rubric.rubric.positive
    return Score(float(phrase is None), None, f"refusal fallback (judge error: {why}): {found} -> "
                                              f"{'not ' + str(positive) if phrase else positive}")


def settle(judgement: Judgement, outcome: Sequence[tuple[Verdict | None, str]], attempts: int) -> tuple[Score | None, str]:
    """(score, ''), (fallback score, why the judge failed), or (None, why it is an error)."""
    rubric = judgement.params.loaded
    failed = [why for verdict, why in outcome if verdict is None]
    if judgement.problem is None and not failed:
        verdicts = [verdict for verdict, _ in outcome]
        if rubric.mode == "pairwise":
            return pairwise_score(*verdicts), ""  # type: ignore[arg-type]
        scored = pointwise_score if rubric.mode == "pointwise" else classify_score
        return scored(rubric, verdicts[0]), ""  # type: ignore[arg-type]
    why = judgement.problem or f"no usable answer after {attempts} attempt(s): {'; '.join(failed)}"
    if judgement.params.fallback == "refusal":
        return fallback_score(rubric, judgement.output, why), why
    return None, why


def run_judges(plan: Plan, store: Store, run_id: str, run_dir: Path, candidates_order: list[str],
               baseline: str, use_cache: bool = True) -> int:
    """Judge every stored answer with every `judge` scorer of its suite; write one score row per
    judgement and return how many ended as errors (value NULL, detail 'judge error: ...')."""
    todo = judgements(plan, store.table("responses", run_id), candidates_order, baseline)
    if not todo:
        return 0
    judge = judge_model(plan)
    attempts = plan.config.judge.attempts
    started = time.perf_counter()
    with ExitStack() as stack:
        answerer = Answerer(plan, judge, store, run_dir, stack, use_cache)
        results = iter(ask(answerer, [(j.params.loaded, p) for j in todo for p in j.prompts], plan.config))
    store.put_timing(run_id, "judge", judge.label, time.perf_counter() - started)
    errors = fallbacks = 0
    for judgement in todo:
        score, why = settle(judgement, [next(results) for _ in judgement.prompts], attempts)
        names = (run_id, judgement.candidate, judgement.suite, judgement.case_id, judgement.metric)
        if score is None:
            errors += 1
            store.put_score(*names, None, None, f"judge error: {why}")  # type: ignore[arg-type]
        else:
            fallbacks += bool(why)
            store.put_score(*names, score.value, score.passed, score.detail, {"fallback": True} if why else None)
    console.log(f"{judge.label}: {len(todo)} judgements ({answerer.cached} answers cached, {answerer.asked} asked), "
                f"{errors} errors, {fallbacks} decided by the refusal fallback")
    return errors


def agreement(judge_values: Sequence[Any], human_values: Sequence[Any], kind: Literal["scale", "label"]) -> dict:
    """How far a judge agrees with people: Spearman's rho for scales, Cohen's kappa for labels.
    Pairs with a missing side are dropped; `value` is None where the statistic is undefined (fewer
    than two pairs, or one side constant)."""
    pairs = [(j, h) for j, h in zip(judge_values, human_values, strict=True) if _present(j) and _present(h)]
    if kind == "scale":
        rho, p_value = _spearman([j for j, _ in pairs], [h for _, h in pairs])
        return {"kind": kind, "statistic": "spearman", "value": rho, "p_value": p_value, "n": len(pairs)}
    return {"kind": kind, "statistic": "cohen_kappa", "value": cohen_kappa([j for j, _ in pairs], [h for _, h in pairs]),
            "p_value": None, "n": len(pairs)}


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _spearman(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, float | None]:
    if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2:
        return None, None
    from scipy.stats import spearmanr

    result = spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """(observed - chance agreement) / (1 - chance agreement), chance from each rater's label rates."""
    import numpy as np

    labels = sorted(set(a) | set(b), key=str)
    if not a or len(labels) < 2:
        return None
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for x, y in zip(a, b):
        table[index[x], index[y]] += 1
    n = table.sum()
    observed = np.trace(table) / n
    chance = float(table.sum(axis=1) @ table.sum(axis=0)) / n**2
    return float((observed - chance) / (1 - chance)) if chance < 1 else None


# Judge rows are recognised by the detail they write: "score S/MAX: ..." and "label X: ..."; refusal
# fallbacks and errors are not the judge's answers and stay out of its agreement.
_JUDGE_DETAIL = {"scale": (re.compile(r"^score (-?\d+)/-?\d+:"), "human_score"),
                 "label": (re.compile(r"^label (.+?):"), "human_label")}


def agreement_rows(scores: pd.DataFrame, cases: pd.DataFrame) -> list[dict]:
    """Judge-human agreement per (candidate, suite, judge metric), from cases whose metadata carries
    `human_score` (a number) or `human_label` (a string); either may be a mapping of metric -> value
    when a suite has several judges."""
    metadata = {(r.suite, r.case_id): json.loads(r.metadata_json or "{}") for r in cases.itertuples()}
    groups: dict[tuple[str, str, str, str], tuple[list, list]] = {}
    for row in scores.itertuples():
        if not isinstance(row.detail, str):
            continue
        for kind, (pattern, key) in _JUDGE_DETAIL.items():
            match = pattern.match(row.detail)
            human = metadata.get((row.suite, row.case_id), {}).get(key)
            human = human.get(row.metric) if isinstance(human, dict) else human
            if match and human is not None:
                judge, people = groups.setdefault((row.candidate, row.suite, row.metric, kind), ([], []))
                judge.append(int(match.group(1)) if kind == "scale" else match.group(1))
                people.append(human)
    return [{"candidate": c, "suite": s, "metric": m, **agreement(j, h, kind)}  # type: ignore[arg-type]
            for (c, s, m, kind), (j, h) in groups.items()]
