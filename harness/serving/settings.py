"""Engine settings: which engine answers a run's local requests, and how (the `engine:` key of a config).

Every engine reads its settings from here, so serving never reaches up into the config that holds them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.core.caps import Batch, Concurrency, DeviceCount, Retries, Seconds
from harness.core.strict import Pair, Strict
from harness.serving.deadline import TIMEOUT

# The registry's local engines (serving/engines.py imports each; tests/test_engine_registry holds the two in step).
# Named here, not read from the registry, so that validating a config imports no engine's client library
# (the openai and anthropic clients cost ~2 s, which `harness check` would pay for nothing).
MODEL_ENGINES = ("vllm", "transformers")  # serve a model's weights: what `--engine` offers
LOCAL_ENGINES = (*MODEL_ENGINES, "scripted")  # and planted answers, for tests and dry runs (see serving.scripted)


class ScriptRule(Strict):
    """One planted behaviour; every condition given must hold for the rule to answer."""

    model: str | None = Field(None, description="the served name: a base model's name, or a lora candidate's")
    contains: str | None = Field(None, description="a substring of the request's messages")
    loglik: Literal["none", "text", "choices"] | None = Field(None, description="the kind of request")
    answer: str | None = Field(None, description="the text to reply")
    error: str | None = Field(None, description="fail the request with this error instead")
    logliks: list[Pair[float, int]] | None = Field(None, description="(log-prob, tokens) per text or choice")
    top_logprobs: list[Pair[str, float]] | None = Field(
        None, description="(token, log-prob) alternatives of the first token, for requests that ask for them")
    delay_s: Seconds = Field(0.0, ge=0)
    times: int | None = Field(None, ge=1, description="answer this many matching requests, then stop matching")


class EngineConfig(Strict):
    """How requests are answered. `vllm` manages a local server; `transformers` runs in-process."""

    kind: Literal[LOCAL_ENGINES] = "vllm"  # type: ignore[valid-type]
    max_concurrency: Concurrency | None = Field(
        None, ge=1, description="requests in flight to the local engine; default: the engine's own, as measured "
                                "(vLLM: 32 on CPU, 64 on GPU; see serving/vllm_server.DEFAULT_CONCURRENCY)")
    request_timeout_s: Seconds = Field(120, gt=0, description=TIMEOUT)
    max_retries: Retries = Field(3, ge=0)
    startup_timeout_s: Seconds = Field(600, gt=0)
    dtype: str = Field("auto", description="auto: float32 on CPU, bfloat16 on GPU")
    enforce_eager: bool | None = Field(
        None,
        description="skip torch.compile; default: on for CPU (start 35 s instead of 110 s, same tok/s), off on GPU")
    batch_size: Batch = Field(16, ge=1, description="transformers engine: prompts per forward batch")
    tensor_parallel_size: DeviceCount = Field(
        1, ge=1, description="GPUs each layer of the model is split across (vLLM --tensor-parallel-size)")
    pipeline_parallel_size: DeviceCount = Field(
        1, ge=1, description="stages the layers are cut into, each on its own GPUs or node (--pipeline-parallel-size)")
    data_parallel_size: DeviceCount = Field(
        1, ge=1, description="copies of the model inside one server, each on its own GPUs (--data-parallel-size); "
                             "the default max_concurrency grows with it")
    distributed_executor_backend: Literal["mp", "uni", "ray"] | None = Field(
        None, description="how vLLM runs its workers: mp (processes on this node), ray (a Ray cluster, several "
                          "nodes), uni (one process); default: vLLM's own choice, uni on the CPU build")
    replicas: DeviceCount = Field(
        1, ge=1, description="managed servers of the model, each on its own devices (GPUs, or CPU cores), requests "
                             "spread to the one with the fewest in flight")
    extra_args: list[str] = Field([], description="extra vLLM server arguments, passed as given")
    script: list[ScriptRule] = Field([], description="scripted engine: planted answers, first matching rule wins")

    @model_validator(mode="after")
    def _script(self) -> "EngineConfig":
        if (self.kind == "scripted") != bool(self.script):
            raise ValueError("`script:` (a list of rules) goes with `kind: scripted`, and only there")
        return self
