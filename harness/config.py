"""The run config: YAML validated by pydantic. Every error names the file, line, key path and fix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness.caps import Batch, Concurrency, RequestsPerMinute, Resamples, Retries, Seconds, Seed, Tokens, Tries
from harness.errors import ConfigError, Problems
from harness.generation import Generation
from harness.kinds import Candidate, CandidateBase
from harness.strict import Strict
from harness.yamlfile import line_of, load_yaml, validation_errors


class ScriptRule(Strict):
    """One planted behaviour; every condition given must hold for the rule to answer."""

    model: str | None = Field(None, description="the served name: a base model's name, or a lora candidate's")
    contains: str | None = Field(None, description="a substring of the request's messages")
    loglik: Literal["none", "text", "choices"] | None = Field(None, description="the kind of request")
    answer: str | None = Field(None, description="the text to reply")
    error: str | None = Field(None, description="fail the request with this error instead")
    logliks: list[tuple[float, int]] | None = Field(None, description="(log-prob, tokens) per text or choice")
    top_logprobs: list[tuple[str, float]] | None = Field(
        None, description="(token, log-prob) alternatives of the first token, for requests that ask for them")
    delay_s: Seconds = Field(0.0, ge=0)
    times: int | None = Field(None, ge=1, description="answer this many matching requests, then stop matching")


class EngineConfig(Strict):
    """How requests are answered. `vllm` manages a local server; `transformers` runs in-process."""

    kind: Literal["vllm", "transformers", "scripted"] = "vllm"
    max_concurrency: Concurrency | None = Field(
        None, ge=1, description="requests in flight to the local engine; default: the engine's own, as measured "
                                "(vLLM: 32 on CPU, 64 on GPU; see serving/vllm_server.DEFAULT_CONCURRENCY)")
    request_timeout_s: Seconds = Field(120, gt=0)
    max_retries: Retries = Field(3, ge=0)
    startup_timeout_s: Seconds = Field(600, gt=0)
    dtype: str = Field("auto", description="auto: float32 on CPU, bfloat16 on GPU")
    enforce_eager: bool | None = Field(
        None,
        description="skip torch.compile; default: on for CPU (start 35 s instead of 110 s, same tok/s), off on GPU")
    batch_size: Batch = Field(16, ge=1, description="transformers engine: prompts per forward batch")
    extra_args: list[str] = Field([], description="extra vLLM server arguments, passed as given")
    script: list[ScriptRule] = Field([], description="scripted engine: planted answers, first matching rule wins")

    @model_validator(mode="after")
    def _script(self) -> "EngineConfig":
        if (self.kind == "scripted") != bool(self.script):
            raise ValueError("`script:` (a list of rules) goes with `kind: scripted`, and only there")
        return self


BOUNDS = ("min", "max", "min_delta", "max_drop")


def shown(value: float, signed: bool = False) -> str:
    """A bound as people read it (0.1, or +0.1 when `signed`); zero is plain 0, never -0 or +0."""
    if value == 0:
        return "0"
    return f"{value:+g}" if signed else f"{value:g}"


class SuiteEntry(Strict):
    """A suite that runs on some candidates only (a plain string runs it on all of them)."""

    suite: str = Field(description="a folder with suite.yaml, a suite.yaml path, or builtin:NAME")
    candidates: list[str] = Field(min_length=1, description="the candidates that answer this suite")


class Gate(Strict):
    """A rule over one (candidate, suite, metric): absolute bounds on its mean, or bounds on its
    paired delta against the baseline. `significant: true` asks for evidence, not a point estimate:
    the confidence interval must clear the bound and the Holm-adjusted p-value must be below alpha."""

    candidate: str
    suite: str
    metric: str
    min: float | None = None
    max: float | None = None
    min_delta: float | None = Field(None, description="candidate mean - baseline mean must be at least this")
    max_drop: float | None = Field(None, ge=0, description="baseline mean - candidate mean may be at most this")
    significant: bool = False
    baseline: str | None = Field(None, description="candidate to compare with; default: the config's baseline")

    @field_validator("max")
    @classmethod
    def _not_below_min(cls, high: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min")
        if high is not None and low is not None and low > high:
            raise PydanticCustomError("crossed_bounds", "`min` {low} is above `max` {high}: no mean can pass", {
                "low": shown(low), "high": shown(high), "fix": "swap them, or lower `min` to at most `max`"})
        return high

    @model_validator(mode="after")
    def _one_bound(self) -> "Gate":
        if all(getattr(self, b) is None for b in BOUNDS):
            raise ValueError("a gate needs a bound: add `min`, `max`, `min_delta` or `max_drop`")
        return self

    @property
    def relative(self) -> bool:
        return self.min_delta is not None or self.max_drop is not None

    def label(self, higher: bool = True) -> str:
        """The rule as people read it; on a lower-is-better metric a drop is a rise and a gain a fall."""
        parts = []
        if self.min is not None:
            parts.append(f">= {shown(self.min)}")
        if self.max is not None:
            parts.append(f"<= {shown(self.max)}")
        if self.min_delta is not None:
            parts.append(f"Δ >= {shown(self.min_delta, True)}" if higher else f"Δ <= {shown(-self.min_delta, True)}")
        if self.max_drop is not None:
            parts.append(f"{'drop' if higher else 'rise'} <= {shown(self.max_drop)}")
        significant = " (significant)" if self.significant else ""
        return f"{self.candidate} / {self.suite} / {self.metric} {' and '.join(parts)}{significant}"


class StatsConfig(Strict):
    """How sure a comparison must be. Resampling is seeded with the run's seed."""

    resamples: Resamples = Field(10000, ge=100)
    confidence: float = Field(0.95, gt=0, lt=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    power: float = Field(0.8, gt=0, lt=1)


class JudgeEndpoint(Strict):
    protocol: Literal["openai", "anthropic"] = "openai"
    base_url: str | None = None
    model: str
    api_key_env: str | None = None
    requests_per_minute: RequestsPerMinute | None = Field(None, gt=0)
    max_concurrency: Concurrency = Field(4, ge=1)


class JudgeConfig(Strict):
    """Who judges: by default the run's own base model served locally through vLLM (structured
    output keeps even a small model parseable); or a stronger model behind an endpoint."""

    model: str | None = Field(None, description="local judge model alias or HF folder; default: the config's `model`")
    endpoint: JudgeEndpoint | None = Field(None, description="judge through an API instead of a local model")
    attempts: Tries = Field(3, ge=1, description="tries per judgement before it is recorded as an error")
    max_fallback_share: float = Field(
        0.2, ge=0, le=1, description="a gated judge metric with more of its values decided by the rubric's "
        "`fallback` (the judge gave no usable answer) is no verdict (ERROR): it would gate on the fallback, "
        "not the judge")
    max_tokens: Tokens = Field(256, ge=16)
    method: Literal["auto", "logprobs", "structured"] = Field(
        "auto", description="how an answer is read: `logprobs` off the first token's probabilities (G-Eval: a "
        "scale's expected score, the likeliest label), `structured` from a JSON reply with reasons; `auto`: "
        "logprobs where the judge returns them (vLLM, transformers, OpenAI-compatible) and the rubric's answers "
        "can be told apart by their first token, else structured. A reply that cannot be read is asked again "
        "as structured output")

    @model_validator(mode="after")
    def _one(self) -> "JudgeConfig":
        if self.model is not None and self.endpoint is not None:
            raise ValueError("give the judge a local `model` or an `endpoint`, not both")
        return self


class MlflowConfig(Strict):
    """Log each run to MLflow (the optional extra: pip install 'harness[mlflow]')."""

    tracking_uri: str = Field(description="an MLflow tracking server URL, sqlite:///..., or file:///... (a local file "
                                          "store, which MLflow keeps in maintenance mode; harness opts in for it)")
    experiment: str | None = Field(None, description="default: the config's name")


class ReportConfig(Strict):
    """What the HTML shows. Redacted suites keep their scores but hide every text: the prompts, the
    reference, the outputs and the scorers' reasons (safety prompts for a wide audience, say).
    results.json and the store keep everything: they are the record, the HTML is the handout."""

    redact_suites: list[str] = Field([], description="suite names whose texts the HTML hides")
    mlflow: MlflowConfig | None = Field(None, description="also log each run (config, metrics, verdict, report) "
                                                          "to MLflow")


class DriftConfig(Strict):
    """`harness drift` compares each candidate with itself in a pinned earlier run."""

    baseline: str = Field(description="the pin name given with `harness pin RUN --as NAME`")


class Config(Strict):
    name: str
    model: str = "smollm2-135m-instruct"
    seed: Seed = Field(0, description="seeds sampling and resampling: 0..2**32-1")
    engine: EngineConfig = EngineConfig()
    generation: Generation = Generation()
    candidates: list[Candidate] = Field(min_length=1)
    baseline: str | None = Field(None, description="the candidate others are compared with; default: the first")
    suites: list[str | SuiteEntry] = Field(min_length=1, description="suite refs, or {suite, candidates} to run one "
                                                                     "on some candidates only")
    gates: list[Gate] = Field(min_length=1, description="a verdict needs at least one rule")
    stats: StatsConfig = StatsConfig()
    drift: DriftConfig | None = None
    judge: JudgeConfig = JudgeConfig()
    report: ReportConfig = ReportConfig()
    output_dir: str | None = Field(None, description="where run folders go; default ./reports")

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_shorthand(cls, value: object) -> object:
        return {"kind": value} if isinstance(value, str) else value

    @field_validator("candidates")
    @classmethod
    def _unique_names(cls, candidates: list[CandidateBase]) -> list[CandidateBase]:
        names = [c.name for c in candidates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"candidate names must be unique; repeated: {', '.join(dupes)}")
        return candidates

    @field_validator("baseline")
    @classmethod
    def _known_baseline(cls, baseline: str | None, info: ValidationInfo) -> str | None:
        """A field check, not a model one, so the error points at the `baseline:` line (candidates come first)."""
        names = [c.name for c in info.data.get("candidates", [])]
        if baseline is not None and names and baseline not in names:
            raise PydanticCustomError("unknown_candidate", "baseline {baseline} is not a candidate", {
                "baseline": repr(baseline), "fix": f"use one of: {', '.join(names)}"})
        return baseline

    @model_validator(mode="after")
    def _default_baseline(self) -> "Config":
        if self.baseline is None:
            self.baseline = self.candidates[0].name
        return self

    def gate_baseline(self, gate: Gate) -> str:
        """Whom a relative gate compares with: in drift, the same candidate in the pinned run."""
        return gate.baseline or (gate.candidate if self.drift else self.baseline_name)

    @property
    def baseline_name(self) -> str:
        return self.baseline or self.candidates[0].name


class LoadedConfig(BaseModel):
    """A validated config plus where it came from (relative paths start at its folder)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    config: Config
    path: Path
    node: Any = Field(None, repr=False, exclude=True)  # the YAML tree, parsed once, for error lines

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent

    def where(self, *loc: object) -> str:
        """file:line of a key path in the config (the nearest line the YAML has)."""
        return f"{self.path}:{line_of(self.node, loc)}"

    @property
    def hash(self) -> str:
        """sha256 of the validated config (canonical JSON): formatting and comments do not count."""
        canonical = json.dumps(self.config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_config(path: str | Path) -> LoadedConfig:
    """The validated config; the first problem is raised (a ConfigError naming file:line, key and fix)."""
    loaded = read_config(path, Problems(collect=False))
    assert loaded is not None, "a read that does not collect raises instead"
    return loaded


def read_config(path: str | Path, problems: Problems) -> LoadedConfig | None:
    """The validated config, every problem recorded in `problems` (harness check lists them all); None when the
    config itself cannot be validated."""
    path = Path(path)
    with problems.unit():
        data, node = load_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(str(path), "(top level)", "expected a mapping of keys",
                              "see configs/demo.yaml for the shape")
        try:
            config = Config.model_validate(data)
        except ValidationError as exc:
            problems.add(validation_errors(Config, exc, path, node))  # type: ignore[arg-type]
            return None
        names = [c.name for c in config.candidates]
        for i, entry in enumerate(config.suites):
            with problems.unit():
                unknown = [n for n in getattr(entry, "candidates", []) if n not in names]
                if unknown:
                    raise ConfigError(f"{path}:{line_of(node, ('suites', i, 'candidates'))}", f"suites[{i}].candidates",
                                      f"unknown candidate {unknown[0]!r}", f"use some of: {', '.join(names)}")
        for i, gate in enumerate(config.gates):
            with problems.unit():
                for key in ("candidate", "baseline"):
                    value = getattr(gate, key)
                    if value is not None and value not in names:
                        raise ConfigError(f"{path}:{line_of(node, ('gates', i, key))}", f"gates[{i}].{key}",
                                          f"unknown candidate {value!r}", f"use one of: {', '.join(names)}")
                if gate.relative and config.drift is None and config.gate_baseline(gate) == gate.candidate:
                    raise ConfigError(f"{path}:{line_of(node, ('gates', i))}", f"gates[{i}]",
                                      f"`min_delta`/`max_drop` compare {gate.candidate!r} with itself (it is the "
                                      "baseline)",
                                      "set the gate's `baseline:` to another candidate, or use `min`/`max`")
        return LoadedConfig(config=config, path=path, node=node)
    return None
