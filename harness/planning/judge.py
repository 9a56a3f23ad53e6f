"""Who judges a plan's answers, resolved at plan time: the judge's model (the config's base model by
default, a local folder, or `judge.endpoint`), what it is asked through, its cache identity, and
which of the plan's metrics are judged. `harness check` resolves it too, so a judge that cannot be
reached fails before a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import ConfigError
from harness.core.models import resolve
from harness.serving.base import LocalTarget, Target, engine_name
from harness.serving.endpoint_spec import URL_FIX
from harness.serving.engines import ENGINES

if TYPE_CHECKING:
    from harness.planning.config import JudgeConfig
    from harness.planning.plan import Plan
    from harness.scoring.rubrics import LoadedRubric
    from harness.serving.settings import EngineSettings


@dataclass(frozen=True)
class JudgeModel:
    """Who answers judge prompts: what to open, through which engine of the table, the model name
    requests carry, the cache identity, and a label for people."""

    target: Target
    engine: str
    served: str
    fingerprint: str
    label: str

    @property
    def logprobs(self) -> bool:
        """Whether its engine returns token probabilities (Anthropic's API does not), as the engine
        table's declaration says (no client is imported to ask)."""
        return ENGINES.load(self.engine).logprobs


def judge_model(plan: Plan) -> JudgeModel:
    return judge_for(
        plan.config.judge,
        plan.config.model,
        plan.loaded.base_dir,
        plan.config.engine,
        plan.where("judge", "endpoint"),
    )


def judge_for(
    judge: JudgeConfig,
    default_model: str,
    base_dir: Path,
    engine: EngineSettings,
    where: str = "judge",
) -> JudgeModel:
    endpoint = judge.endpoint
    if endpoint is None:
        ref = resolve(judge.model or default_model, base_dir)
        local = LocalTarget(ref)
        return JudgeModel(
            local, engine_name(local, engine.kind), ref.name, ref.fingerprint, f"judge {ref.name}"
        )
    if (why := endpoint.missing_url()) is not None:
        raise ConfigError(where, "judge.endpoint.base_url", why, URL_FIX)
    target = endpoint.target(engine.request_timeout_s, engine.max_retries)
    return JudgeModel(
        target,
        engine_name(target, engine.kind),
        endpoint.model,
        f"judge-endpoint:{endpoint.identity}",
        f"judge {endpoint.model} ({endpoint.protocol} endpoint)",
    )


def judge_metrics(plan: Plan) -> dict[tuple[str, str], LoadedRubric]:
    """(suite, metric) -> rubric of every judge scorer in the plan."""
    return {
        (suite.name, spec.metric): spec.params.loaded  # type: ignore[attr-defined]
        for suite in plan.suites
        for spec in suite.scorers
        if spec.deferred and spec.type == "judge"
    }


def judge_targets(plan: Plan) -> list[Target]:
    """What the judging stage will ask, if any suite has a judge scorer: the run keeps that engine
    open from generation on (see serving.pool)."""
    return [judge_model(plan).target] if judge_metrics(plan) else []
