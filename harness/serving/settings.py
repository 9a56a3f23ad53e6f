"""Engine settings: which engine answers a run's local requests, and how (the `engine:` key of a
config).

Each engine owns its settings model, told apart by `kind:` (a discriminated union, as candidate
kinds are), so a vLLM setting under `kind: transformers` is an error at its line, not a value
nothing reads. Every engine reads its settings from here, so serving never reaches up into the
config that holds them; the models are light (no engine is imported to validate a config: each kind
names its engine by "module:attr", see serving.engines).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import Field

from harness.core.caps import Batch, Concurrency, DeviceCount, Retries, Seconds
from harness.core.plugins import imported
from harness.core.strict import Pair, Strict
from harness.serving.deadline import TIMEOUT
from harness.serving.devices import parallel_problem

if TYPE_CHECKING:
    from harness.serving.base import EngineFactory
    from harness.serving.devices import Devices


class EngineSettings(Strict):
    """What every local engine takes. A new engine subclasses it with its own `kind: Literal[NAME]`
    and keys."""

    kind: str
    max_concurrency: Concurrency | None = Field(
        None,
        ge=1,
        description=(
            "requests in flight to the local engine; default: the engine's own, as measured "
            "(vLLM: 32 on CPU, 64 on GPU; see serving/vllm_server.DEFAULT_CONCURRENCY)"
        ),
    )
    request_timeout_s: Seconds = Field(120, gt=0, description=TIMEOUT)
    max_retries: Retries = Field(3, ge=0)

    def placement_problem(self, devices: Devices) -> tuple[str, str, str] | None:
        """(key, problem, fix) when the settings do not fit the devices visible here (`harness
        check` asks)."""
        return None

    @classmethod
    def elsewhere(cls, key: str) -> str | None:
        """Which engines take `key`, when this one does not (a config error's fix says it: vLLM's
        parallel sizes under `kind: transformers`); every engine's settings, plugins' included,
        subclass this class.
        """
        kinds, waiting = [], list(EngineSettings.__subclasses__())
        while waiting:
            model = waiting.pop()
            waiting += model.__subclasses__()
            if key in model.model_fields and key not in cls.model_fields:
                kinds += get_args(model.model_fields["kind"].annotation)
        return (
            f"it is a setting of {' or '.join(f'`kind: {kind}`' for kind in sorted(kinds))}"
            if kinds
            else None
        )


class WeightsSettings(EngineSettings):
    """An engine that serves a model's weights (what `harness judge check --engine` offers)."""

    dtype: str = Field("auto", description="auto: float32 on CPU, bfloat16 on GPU")


class VllmConfig(WeightsSettings):
    """A managed vLLM server (the default engine)."""

    kind: Literal["vllm"] = "vllm"
    startup_timeout_s: Seconds = Field(600, gt=0)
    enforce_eager: bool | None = Field(
        None,
        description=(
            "skip torch.compile; default: on for CPU (start 35 s instead of 110 s, same tok/s), off"
            " on GPU"
        ),
    )
    tensor_parallel_size: DeviceCount = Field(
        1,
        ge=1,
        description="GPUs each layer of the model is split across (vLLM --tensor-parallel-size)",
    )
    pipeline_parallel_size: DeviceCount = Field(
        1,
        ge=1,
        description=(
            "stages the layers are cut into, each on its own GPUs or node"
            " (--pipeline-parallel-size)"
        ),
    )
    data_parallel_size: DeviceCount = Field(
        1,
        ge=1,
        description=(
            "copies of the model inside one server, each on its own GPUs (--data-parallel-size); "
            "the default max_concurrency grows with it"
        ),
    )
    distributed_executor_backend: Literal["mp", "uni", "ray"] | None = Field(
        None,
        description=(
            "how vLLM runs its workers: mp (processes on this node), ray (a Ray cluster, several "
            "nodes), uni (one process); default: vLLM's own choice, uni on the CPU build"
        ),
    )
    replicas: DeviceCount = Field(
        1,
        ge=1,
        description=(
            "managed servers of the model, each on its own devices (GPUs, or CPU cores), requests "
            "spread to the one with the fewest in flight"
        ),
    )
    extra_args: list[str] = Field([], description="extra vLLM server arguments, passed as given")

    def placement_problem(self, devices: Devices) -> tuple[str, str, str] | None:
        return parallel_problem(self, devices)


class TransformersConfig(WeightsSettings):
    """The model in this process through transformers (the fallback, and log-likelihood scoring)."""

    kind: Literal["transformers"] = "transformers"
    batch_size: Batch = Field(16, ge=1, description="prompts per forward batch")


class ScriptRule(Strict):
    """One planted behaviour; every condition given must hold for the rule to answer."""

    model: str | None = Field(
        None, description="the served name: a base model's name, or a lora candidate's"
    )
    contains: str | None = Field(None, description="a substring of the request's messages")
    loglik: Literal["none", "text", "choices"] | None = Field(
        None, description="the kind of request"
    )
    answer: str | None = Field(None, description="the text to reply")
    error: str | None = Field(None, description="fail the request with this error instead")
    logliks: list[Pair[float, int]] | None = Field(
        None, description="(log-prob, tokens) per text or choice"
    )
    top_logprobs: list[Pair[str, float]] | None = Field(
        None,
        description=(
            "(token, log-prob) alternatives of the first token, for requests that ask for them"
        ),
    )
    delay_s: Seconds = Field(0.0, ge=0)
    times: int | None = Field(
        None, ge=1, description="answer this many matching requests, then stop matching"
    )


class ScriptedConfig(EngineSettings):
    """Planted answers instead of a model, for tests and dry runs (see serving.scripted)."""

    kind: Literal["scripted"] = "scripted"
    script: list[ScriptRule] = Field(
        min_length=1, description="planted answers, first matching rule wins"
    )


@dataclass(frozen=True)
class EngineKind:
    """An engine as serving.engines' table names it: where its factory is ("module:attr", imported
    when the engine is first opened, so naming it costs no client library; or the factory itself, as
    a plugin may give it), the model `engine:` takes under its name (None: an endpoint protocol,
    which answers an EndpointTarget), and what it can do, declared here so no caller tells engines
    apart by name. Here, beside the settings, and not in serving.base, whose imports (SQLAlchemy,
    through core.urls) would cost `harness --help` 0.2 s.
    """

    opens: str | EngineFactory
    settings: type[EngineSettings] | None = None
    logprobs: bool = (
        True  # returns the first token's likeliest alternatives (a judge read by probabilities)
    )

    @property
    def local(self) -> bool:
        """It serves a LocalTarget, a model this run serves (config `engine.kind`), else an
        EndpointTarget."""
        return self.settings is not None

    def factory(self) -> EngineFactory:
        return imported(self.opens) if isinstance(self.opens, str) else self.opens  # type: ignore[return-value]


VLLM = EngineKind("harness.serving.vllm_server:vllm_engine", VllmConfig)
TRANSFORMERS = EngineKind(
    "harness.serving.transformers_engine:transformers_engine", TransformersConfig
)
SCRIPTED = EngineKind("harness.serving.scripted:scripted_engine", ScriptedConfig)
# The endpoint protocols: no `engine:` settings (an endpoint's own are the candidate's; see
# endpoint_spec).
OPENAI = EngineKind("harness.serving.openai_client:openai_endpoint")
ANTHROPIC = EngineKind(
    "harness.serving.anthropic_client:anthropic_endpoint", logprobs=False
)  # Messages API: none
