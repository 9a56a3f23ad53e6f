"""Asking the judge: which model answers, how its answer is read, the request for a prompt, the
cache, retries.

Every judge prompt of a run goes through ONE judge engine (the run's base model on a local vLLM
server by default, or `judge.endpoint`), opened only when some answer is not already cached. An
answer is read one of two ways (`judge.method`): off the probabilities of the reply's first token
(G-Eval: one token per judgement, a scale's expected score), or from a JSON reply with reasons,
enforced as structured output where the engine supports it. A reply that cannot be read is asked
again as structured output, greedy first, then at temperature 0.7 with the next seed, up to
`judge.attempts` tries, and is then left as a failure with the last reason, never a made-up answer.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from harness.core.progress import StageProgress
from harness.core.request import Completion, Request
from harness.generation.generate import run_secrets
from harness.planning.judge import JudgeModel
from harness.scoring.rubrics import LoadedRubric, Method, Reply
from harness.serving.base import Engine
from harness.serving.limits import redacted

if TYPE_CHECKING:
    from harness.planning.config import JudgeConfig
    from harness.planning.context import Run
    from harness.serving.pool import Engines
    from harness.serving.settings import EngineSettings
    from harness.store.store import Store

RETRY_TEMPERATURE = 0.7
TOP_LOGPROBS = 20  # alternatives of the first token asked for (the most OpenAI's API returns)


def method_for(rubric: LoadedRubric, judge: JudgeModel, config: JudgeConfig) -> Method:
    """How this judge's answers to this rubric are read (see JudgeConfig.method)."""
    if config.method == "structured" or not (judge.logprobs and rubric.reads_logprobs):
        return "structured"
    return "logprobs"


def judge_request(
    prompt: str,
    rubric: LoadedRubric,
    served: str,
    settings: JudgeConfig,
    seed: int,
    attempt: int,
    method: Method = "structured",
) -> Request:
    """Read by probabilities: one greedy token with its likeliest alternatives. Structured: greedy
    on the first try at it, then sampled (temperature 0.7, the next seed) so it can come out
    differently.
    """
    if method == "logprobs":
        return Request(
            model=served,
            messages=(("user", prompt),),
            max_tokens=1,
            temperature=0.0,
            top_p=1.0,
            stop=(),
            seed=seed,
            top_logprobs=TOP_LOGPROBS,
        )
    return Request(
        model=served,
        messages=(("user", prompt),),
        max_tokens=settings.max_tokens,
        temperature=0.0 if attempt == 0 else RETRY_TEMPERATURE,
        top_p=1.0,
        stop=(),
        seed=seed + attempt,
        response_schema=json.dumps(rubric.schema, sort_keys=True),
    )


class Answerer:
    """Answers judge requests from the cache, else through one engine opened at the first miss, so a
    fully cached judging stage starts no server and makes no call. Every answer, cached or fresh, is
    redacted of `secrets` before it is cached or read (see generate.run_secrets); the engine redacts
    its own key.
    """

    def __init__(
        self,
        judge: JudgeModel,
        store: Store,
        engines: Engines,
        engine: EngineSettings,
        seed: int,
        run_dir: Path,
        stack: ExitStack,
        use_cache: bool = True,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.judge, self.store, self.engines, self.engine_config = judge, store, engines, engine
        self.seed, self.run_dir, self.stack, self.use_cache = seed, run_dir, stack, use_cache
        self.secrets = secrets
        self.engine: Engine | None = None
        self.started_s: float | None = (
            None  # starting an engine for the judge; None: none started (reused)
        )
        self.cached = self.asked = 0

    @classmethod
    def for_run(cls, run: Run, judge: JudgeModel, stack: ExitStack) -> Answerer:
        config = run.plan.config
        return cls(
            judge,
            run.store,
            run.engines,
            config.engine,
            config.seed,
            run.run_dir,
            stack,
            run.use_cache,
            run_secrets(run.plan),
        )

    def answer(self, requests: Sequence[Request], label: str = "") -> list[Completion]:
        fingerprint = self.judge.fingerprint
        hits = [
            self.store.cache_get(r.cache_key(fingerprint)) if self.use_cache else None
            for r in requests
        ]
        out = [None if hit is None else redacted(hit, self.secrets) for hit in hits]
        misses = [i for i, hit in enumerate(out) if hit is None]
        self.cached += len(requests) - len(misses)
        self.asked += len(misses)
        if misses:
            engine = self.open()
            with StageProgress(
                label or self.judge.label, len(misses), unit="judge answers"
            ) as progress:
                for index, answered in engine.run([requests[i] for i in misses]):
                    completion = redacted(answered, self.secrets)
                    out[misses[index]] = completion
                    self.store.cache_put(
                        requests[misses[index]].cache_key(fingerprint), fingerprint, completion
                    )
                    progress.advance()
        return out  # type: ignore[return-value]  (every miss was filled)

    def open(self) -> Engine:
        """The server that generated with the judge's model when the run kept it (see serving.pool);
        a server started for the judge alone keeps its log in run_dir/judge/, beside the generation
        servers' logs.
        """
        if self.engine is None:
            started, opened = time.perf_counter(), self.engines.started
            self.engine = self.stack.enter_context(
                self.engines.use(
                    self.judge.target, self.engine_config, self.run_dir / "judge", self.seed
                )
            )
            if self.engines.started > opened:
                self.started_s = time.perf_counter() - started
        return self.engine


def ask(
    answerer: Answerer,
    asks: Sequence[tuple[LoadedRubric, dict[str, Any]]],
    settings: JudgeConfig,
    label: str = "",
) -> list[tuple[Reply | None, str]]:
    """Every (rubric, template variables) answered and read, retrying unreadable replies as
    structured output: (reply, '') or (None, why the last attempt failed)."""
    results: list[tuple[Reply | None, str]] = [(None, "not asked")] * len(asks)
    first = [method_for(rubric, answerer.judge, settings) for rubric, _ in asks]
    pending = list(range(len(asks)))
    for attempt in range(settings.attempts):
        if not pending:
            break
        # a reply read by probabilities that could not be read is asked again as structured output,
        # greedy first
        methods: list[Method] = [first[i] if attempt == 0 else "structured" for i in pending]
        tries = [attempt - (first[i] == "logprobs") for i in pending]
        requests = [
            judge_request(
                asks[i][0].render(m, **asks[i][1]),
                asks[i][0],
                answerer.judge.served,
                settings,
                answerer.seed,
                t,
                m,
            )
            for i, m, t in zip(pending, methods, tries)
        ]
        still = []
        for i, method, completion in zip(pending, methods, answerer.answer(requests, label)):
            rubric = asks[i][0]
            if completion.error:
                reply, why = None, completion.error
            elif method == "logprobs":
                reply, why = rubric.read_logprobs(completion.top_logprobs)
            else:
                reply, why = rubric.parse(completion.text)
            if (
                reply is None
                and method == "structured"
                and completion.finish_reason in ("length", "max_tokens")
            ):
                why = f"{why} (cut off at judge.max_tokens)"  # openai, anthropic
            results[i] = (reply, why or "")
            if reply is None:
                still.append(i)
        pending = still
    return results
