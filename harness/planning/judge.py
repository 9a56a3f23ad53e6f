"""Who judges a plan's answers, resolved at plan time: the judge's model (the config's base model by default, a
local folder, or `judge.endpoint`), what it is asked through, its cache identity, and which of the plan's
metrics are judged. `harness check` resolves it too, so a judge that cannot be reached fails before a run."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import ConfigError
from harness.core.models import resolve
from harness.serving.base import EndpointTarget, LocalTarget, Target

if TYPE_CHECKING:
    from harness.planning.config import EngineConfig, JudgeConfig
    from harness.planning.plan import Plan
    from harness.scoring.rubrics import LoadedRubric


@dataclass(frozen=True)
class JudgeModel:
    """Who answers judge prompts: what to open, the model name requests carry, the cache identity, and
    whether it returns token probabilities (Anthropic's API does not)."""

    target: Target
    served: str
    fingerprint: str
    label: str
    logprobs: bool = True


def judge_model(plan: Plan) -> JudgeModel:
    return judge_for(plan.config.judge, plan.config.model, plan.loaded.base_dir, plan.config.engine,
                     plan.where("judge", "endpoint"))


def judge_for(judge: JudgeConfig, default_model: str, base_dir: Path, engine: EngineConfig,
              where: str = "judge") -> JudgeModel:
    endpoint = judge.endpoint
    if endpoint is None:
        ref = resolve(judge.model or default_model, base_dir)
        return JudgeModel(LocalTarget(ref), ref.name, ref.fingerprint, f"judge {ref.name}")
    if endpoint.protocol == "openai" and not endpoint.base_url:
        raise ConfigError(where, "judge.endpoint.base_url",
                          "an openai judge endpoint needs `base_url:`", "add e.g. base_url: https://api.example.com/v1")
    identity = hashlib.sha256(f"{endpoint.protocol}|{endpoint.base_url}|{endpoint.model}".encode()).hexdigest()
    target = EndpointTarget(endpoint.protocol, endpoint.base_url, endpoint.api_key_env, endpoint.max_concurrency,
                            engine.request_timeout_s, engine.max_retries, endpoint.requests_per_minute)
    return JudgeModel(target, endpoint.model, f"judge-endpoint:{identity}",
                      f"judge {endpoint.model} ({endpoint.protocol} endpoint)", logprobs=endpoint.protocol == "openai")


def judge_metrics(plan: Plan) -> dict[tuple[str, str], LoadedRubric]:
    """(suite, metric) -> rubric of every judge scorer in the plan."""
    return {(suite.name, spec.metric): spec.params.loaded  # type: ignore[attr-defined]
            for suite in plan.suites for spec in suite.scorers if spec.deferred and spec.type == "judge"}


def judge_targets(plan: Plan) -> list[Target]:
    """What the judging stage will ask, if any suite has a judge scorer: the run keeps that engine open
    from generation on (see serving.pool)."""
    return [judge_model(plan).target] if judge_metrics(plan) else []
