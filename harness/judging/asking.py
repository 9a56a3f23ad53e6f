"""Asking the judge: which model answers, the request for a rubric's prompt, the cache, and retries.

Every judge prompt of a run goes through ONE judge engine (the run's base model on a local vLLM server
by default, or `judge.endpoint`), opened only when some answer is not already cached. Each prompt asks
for JSON fitting the rubric's schema (enforced as structured output where the engine supports it); a
reply that does not parse or fit is asked again at temperature 0.7 with the next seed, up to
`judge.attempts` tries, and then left as a failure with the last reason, never a made-up answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from harness.errors import ConfigError
from harness.models import resolve
from harness.progress import StageProgress
from harness.request import Completion, Request
from harness.rubrics import LoadedRubric, Reply
from harness.serving.base import EndpointTarget, Engine, LocalTarget, Target

if TYPE_CHECKING:
    from harness.config import Config
    from harness.context import Run
    from harness.plan import Plan

RETRY_TEMPERATURE = 0.7


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


def judge_request(prompt: str, rubric: LoadedRubric, served: str, config: Config, attempt: int) -> Request:
    """Greedy first; a retry samples (temperature 0.7, the next seed) so it can come out differently."""
    return Request(model=served, messages=(("user", prompt),), max_tokens=config.judge.max_tokens,
                   temperature=0.0 if attempt == 0 else RETRY_TEMPERATURE, top_p=1.0, stop=(),
                   seed=config.seed + attempt, response_schema=json.dumps(rubric.schema, sort_keys=True))


class Answerer:
    """Answers judge requests from the cache, else through one engine opened at the first miss, so a
    fully cached judging stage starts no server and makes no call."""

    def __init__(self, run: Run, judge: JudgeModel, stack: ExitStack) -> None:
        self.plan, self.judge, self.store, self.run_dir, self.stack = run.plan, judge, run.store, run.run_dir, stack
        self.use_cache, self.engines = run.use_cache, run.engines
        self.engine: Engine | None = None
        self.started_s: float | None = None  # starting an engine for the judge; None: none started (reused)
        self.cached = self.asked = 0

    def answer(self, requests: Sequence[Request]) -> list[Completion]:
        fingerprint = self.judge.fingerprint
        out = [self.store.cache_get(r.cache_key(fingerprint)) if self.use_cache else None for r in requests]
        misses = [i for i, hit in enumerate(out) if hit is None]
        self.cached += len(requests) - len(misses)
        self.asked += len(misses)
        if misses:
            engine = self._engine()
            with StageProgress(self.judge.label, len(misses), unit="judge answers") as progress:
                for index, completion in engine.run([requests[i] for i in misses]):
                    out[misses[index]] = completion
                    self.store.cache_put(requests[misses[index]].cache_key(fingerprint), fingerprint, completion)
                    progress.advance()
        return out  # type: ignore[return-value]  (every miss was filled)

    def _engine(self) -> Engine:
        """The server that generated with the judge's model when the run kept it (see serving.pool); a server
        started for the judge alone keeps its log in run_dir/judge/, beside the generation servers' logs."""
        if self.engine is None:
            config = self.plan.config
            started, opened = time.perf_counter(), self.engines.started
            self.engine = self.stack.enter_context(
                self.engines.use(self.judge.target, config.engine, self.run_dir / "judge", config.seed))
            if self.engines.started > opened:
                self.started_s = time.perf_counter() - started
        return self.engine


def ask(answerer: Answerer, asks: Sequence[tuple[LoadedRubric, str]], config: Config) -> list[tuple[Reply | None, str]]:
    """Every (rubric, prompt) answered and parsed, retrying unusable replies: (reply, '') or (None, why
    the last attempt failed)."""
    results: list[tuple[Reply | None, str]] = [(None, "not asked")] * len(asks)
    pending = list(range(len(asks)))
    for attempt in range(config.judge.attempts):
        if not pending:
            break
        requests = [judge_request(asks[i][1], asks[i][0], answerer.judge.served, config, attempt) for i in pending]
        still = []
        for i, completion in zip(pending, answerer.answer(requests)):
            reply, why = (None, completion.error) if completion.error else asks[i][0].parse(completion.text)
            if reply is None and completion.finish_reason in ("length", "max_tokens"):  # openai, anthropic
                why = f"{why} (cut off at judge.max_tokens)"
            results[i] = (reply, why or "")
            if reply is None:
                still.append(i)
        pending = still
    return results
