"""The run config: YAML validated by pydantic. Every error names the file, line, key path and fix."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from itertools import count
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from harness.building.kinds import candidate_union
from harness.core.caps import Resamples, Seed, Tokens, Tries
from harness.core.errors import ConfigError, Problems
from harness.core.sampling import Generation
from harness.core.strict import Strict
from harness.core.urls import ENCODE_FIX, userinfo
from harness.core.yamlfile import key_path, line_of, load_yaml, validation_errors
from harness.serving.endpoint_spec import EndpointSpec
from harness.serving.engines import engine_union
from harness.serving.settings import VllmConfig

BOUNDS = ("min", "max", "min_delta", "max_drop")
# stop_when_settled's default share of alpha for the looks (bench/sequential.py,
# docs/stop-when-settled.md)
ALPHA_SPLIT = 0.2
# Taken when this module is imported, with every installed plugin's kinds and engines (see
# core.plugins).
Candidate = candidate_union()
Engine = engine_union()


def shown(value: float, signed: bool = False) -> str:
    """A bound as people read it (0.1, or +0.1 when `signed`); zero is plain 0, never -0 or +0."""
    if value == 0:
        return "0"
    return f"{value:+g}" if signed else f"{value:g}"


class SuiteEntry(Strict):
    """A suite that runs on some candidates only (a plain string runs it on all of them)."""

    suite: str = Field(description="a folder with suite.yaml, a suite.yaml path, or builtin:NAME")
    candidates: list[str] = Field(min_length=1, description="the candidates that answer this suite")


def is_relative(bound: str) -> bool:
    """Whether a bound (one of BOUNDS) is on the gain over a baseline (min_delta, max_drop) rather
    than on the candidate's own mean (min, max): which values it reads, which test fits it, how it
    is told."""
    return bound in ("min_delta", "max_drop")


class Gate(Strict):
    """A rule over one (candidate, suite, metric): absolute bounds on its mean, or bounds on its
    paired delta against the baseline. `significant: true` asks for evidence, not a point estimate:
    the confidence interval must clear the bound and the Holm-adjusted p-value must be below alpha.
    """

    candidate: str
    suite: str
    metric: str
    min: float | None = None
    max: float | None = None
    min_delta: float | None = Field(
        None, description="candidate mean - baseline mean must be at least this"
    )
    max_drop: float | None = Field(
        None, ge=0, description="baseline mean - candidate mean may be at most this"
    )
    significant: bool = False
    baseline: str | None = Field(
        None, description="candidate to compare with; default: the config's baseline"
    )

    @field_validator("max")
    @classmethod
    def _not_below_min(cls, high: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min")
        if high is not None and low is not None and low > high:
            raise PydanticCustomError(
                "crossed_bounds",
                "`min` {low} is above `max` {high}: no mean can pass",
                {
                    "low": shown(low),
                    "high": shown(high),
                    "fix": "swap them, or lower `min` to at most `max`",
                },
            )
        return high

    @model_validator(mode="after")
    def _one_bound(self) -> "Gate":
        if all(getattr(self, b) is None for b in BOUNDS):
            raise ValueError("a gate needs a bound: add `min`, `max`, `min_delta` or `max_drop`")
        return self

    @property
    def relative(self) -> bool:
        """Whether the gate reads a baseline: it has a bound on the gain over one."""
        return any(is_relative(b) and getattr(self, b) is not None for b in BOUNDS)

    def label(self, higher: bool = True) -> str:
        """The rule as people read it; on a lower-is-better metric a drop is a rise and a gain a
        fall."""
        parts = []
        if self.min is not None:
            parts.append(f">= {shown(self.min)}")
        if self.max is not None:
            parts.append(f"<= {shown(self.max)}")
        if self.min_delta is not None:
            parts.append(
                f"Δ >= {shown(self.min_delta, True)}"
                if higher
                else f"Δ <= {shown(-self.min_delta, True)}"
            )
        if self.max_drop is not None:
            parts.append(f"{'drop' if higher else 'rise'} <= {shown(self.max_drop)}")
        significant = " (significant)" if self.significant else ""
        return f"{self.candidate} / {self.suite} / {self.metric} {' and '.join(parts)}{significant}"


class GatePolicy(Strict):
    """What the verdict does with what no gate covers: a candidate's significant regression against
    its baseline on a (suite, metric) no gate names (see gate.UngatedRegression)."""

    ungated_regressions: Literal["warn", "fail"] = Field(
        "warn",
        description=(
            "warn: listed with the verdict, the exit code unchanged; fail: such a regression is "
            "DO NOT SHIP (an ERROR stays ERROR)"
        ),
    )


class StatsConfig(Strict):
    """How sure a comparison must be. Resampling is seeded with the run's seed."""

    resamples: Resamples = Field(10000, ge=100)
    confidence: float = Field(0.95, gt=0, lt=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    power: float = Field(0.8, gt=0, lt=1)


class JudgeConfig(Strict):
    """Who judges: by default the run's own base model served locally through vLLM (structured
    output keeps even a small model parseable); or a stronger model behind an endpoint."""

    model: str | None = Field(
        None, description="local judge model alias or HF folder; default: the config's `model`"
    )
    endpoint: EndpointSpec | None = Field(
        None, description="judge through an API instead of a local model"
    )
    attempts: Tries = Field(
        3, ge=1, description="tries per judgement before it is recorded as an error"
    )
    max_fallback_share: float = Field(
        0.2,
        ge=0,
        le=1,
        description=(
            "a gated judge metric with more of its values decided by the rubric's `fallback` (the"
            " judge gave no usable answer) is no verdict (ERROR): it would gate on the fallback,"
            " not the judge"
        ),
    )
    max_tokens: Tokens = Field(256, ge=16)
    method: Literal["auto", "logprobs", "structured"] = Field(
        "auto",
        description=(
            "how an answer is read: `logprobs` off the first token's probabilities (G-Eval: a"
            " scale's expected score, the likeliest label), `structured` from a JSON reply with"
            " reasons; `auto`: logprobs where the judge returns them (vLLM, transformers,"
            " OpenAI-compatible) and the rubric's answers can be told apart by their first token,"
            " else structured. A reply that cannot be read is asked again as structured output"
        ),
    )

    @model_validator(mode="after")
    def _one(self) -> "JudgeConfig":
        if self.model is not None and self.endpoint is not None:
            raise ValueError("give the judge a local `model` or an `endpoint`, not both")
        return self


class MlflowConfig(Strict):
    """Log each run to MLflow (the optional extra: pip install 'harness[mlflow]')."""

    tracking_uri: str = Field(
        description=(
            "an MLflow tracking server URL, sqlite:///..., or file:///... (a local file "
            "store, which MLflow keeps in maintenance mode; harness opts in for it)"
        )
    )
    experiment: str | None = Field(None, description="default: the config's name")

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials(cls, uri: str) -> str:
        """A config is committed and every run stores it: MLflow takes its credentials from the
        environment."""
        try:
            user, password = userinfo(uri) if "://" in uri else ("", "")
        # an MLflow URI of its own form (databricks://PROFILE:PREFIX) is MLflow's to read
        except ValueError:
            parts = urlsplit(uri)
            user, password = parts.username or "", parts.password or ""
        if user or password:
            raise PydanticCustomError(
                "url_credentials",
                "the tracking URI holds a user or password, which every run would store and "
                "every report show",
                {
                    "fix": (
                        "leave them out: MLflow reads MLFLOW_TRACKING_USERNAME and"
                        " MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) from the environment"
                    )
                },
            )
        return uri


class ReportConfig(Strict):
    """What the HTML shows. Redacted suites keep their scores but hide every text: the prompts, the
    reference, the outputs and the scorers' reasons (safety prompts for a wide audience, say).
    results.json and the store keep everything: they are the record, the HTML is the handout."""

    redact_suites: list[str] = Field([], description="suite names whose texts the HTML hides")
    mlflow: MlflowConfig | None = Field(
        None, description="also log each run (config, metrics, verdict, report) to MLflow"
    )


class SettleConfig(Strict):
    """`stop_when_settled`: cases run in a seeded random order, in waves, and each (candidate,
    suite) stops once every gate that needs it is settled by an anytime-valid sequence (see
    harness.verdict.settle).
    """

    alpha_split: float = Field(
        ALPHA_SPLIT,
        gt=0,
        le=1,
        description=(
            "the share of a significant rule's alpha spent on the looks; the rest goes to the"
            " fixed-size test at the last case (1: purely sequential)"
        ),
    )
    wave: int = Field(
        20,
        ge=1,
        le=100_000,
        description="cases of each suite per wave; the gates are looked at after each",
    )
    fail_fast: bool = Field(False, description="stop at the first gate that fails decisively")
    order_seed: Seed | None = Field(
        None, description="seeds the order the cases run in; default: the config's seed"
    )


def _settle_shorthand(value: object) -> object:
    """`stop_when_settled: true` is the default settings; false (or absent) is the fixed-size run."""
    if value is True:
        return {}
    return None if value is False else value


class StoreConfig(Strict):
    """Where runs, pins, the response cache and the judge checks are kept, when not in
    <output_dir>/harness.sqlite. A config is committed and every run stores it, so it never holds a
    password: a shared store is named by the variable its URL is in (`url_env`, from the CI's
    secrets). `--store` and HARNESS_STORE override it.
    """

    url: str | None = Field(
        None,
        description=(
            "a SQLite path (from the config's folder) or a "
            "postgresql://USER@HOST:PORT/DATABASE URL with no password"
        ),
    )
    url_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="the environment variable holding the store's URL, password and all",
    )

    @model_validator(mode="after")
    def _one(self) -> "StoreConfig":
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give the store a `url` or a `url_env`, one of them")
        if self.url is not None and "://" in self.url and self._password():
            raise PydanticCustomError(
                "store_password",
                "the store's url holds a password, which the run would store and this file shows",
                {
                    "fix": (
                        "put the URL in an environment variable and name it, "
                        "`store: {url_env: HARNESS_DB_URL}`"
                    )
                },
            )
        return self

    def _password(self) -> str:
        """The password `url` names, read as the store reads it (see urls.userinfo)."""
        try:
            return userinfo(self.url or "")[1]
        except ValueError as exc:
            raise PydanticCustomError("url_parse", str(exc), {"fix": ENCODE_FIX}) from None


def _store_shorthand(value: object) -> object:
    """`store: PATH_OR_URL` is `store: {url: PATH_OR_URL}`."""
    return {"url": value} if isinstance(value, str) else value


class DriftConfig(Strict):
    """`harness drift` compares each candidate with itself in a pinned earlier run."""

    baseline: str = Field(description="the pin name given with `harness pin RUN --as NAME`")


def _engine_shorthand(value: object) -> object:
    """`engine: vllm` is `engine: {kind: vllm}`, and settings with no `kind:` are vLLM's (the
    default engine); part of the field's type, so the field validates on its own too."""
    if isinstance(value, str):
        return {"kind": value}
    return {"kind": "vllm", **value} if isinstance(value, dict) and "kind" not in value else value


class Config(Strict):
    """The run config. What spans entries (candidate names unique, the names a baseline, gate or
    suite entry refers to) is read_config's to check: there it is checked against the names in the
    file, also when some entry does not validate."""

    name: str
    model: str = "smollm2-135m-instruct"
    seed: Seed = Field(0, description="seeds sampling and resampling: 0..2**32-1")
    engine: Annotated[Engine, BeforeValidator(_engine_shorthand)] = VllmConfig()  # type: ignore[valid-type]
    generation: Generation = Generation()
    candidates: list[Candidate] = Field(min_length=1)  # type: ignore[valid-type]
    baseline: str | None = Field(
        None, description="the candidate others are compared with; default: the first"
    )
    suites: list[str | SuiteEntry] = Field(
        min_length=1,
        description="suite refs, or {suite, candidates} to run one on some candidates only",
    )
    gates: list[Gate] = Field(min_length=1, description="a verdict needs at least one rule")
    gate_policy: GatePolicy = GatePolicy()
    stats: StatsConfig = StatsConfig()
    drift: DriftConfig | None = None
    stop_when_settled: Annotated[SettleConfig | None, BeforeValidator(_settle_shorthand)] = Field(
        None,
        description=(
            "true, or a mapping of its settings: stop generating once the verdict is settled"
        ),
    )
    judge: JudgeConfig = JudgeConfig()
    report: ReportConfig = ReportConfig()
    output_dir: str | None = Field(None, description="where run folders go; default ./reports")
    store: Annotated[StoreConfig | None, BeforeValidator(_store_shorthand)] = Field(
        None,
        description=(
            "the run store, a path or {url_env: NAME} of a shared PostgreSQL; default: "
            "<output_dir>/harness.sqlite"
        ),
    )

    @model_validator(mode="after")
    def _default_baseline(self) -> "Config":
        if self.baseline is None:
            self.baseline = self.candidates[0].name
        return self

    def gate_baseline(self, gate: Gate, against: bool) -> str:
        """Whom a relative gate compares with: in drift, or `against` an earlier run (--against),
        the same candidate there; else the config's baseline, in this run."""
        return gate.baseline or (gate.candidate if against or self.drift else self.baseline_name)

    @property
    def baseline_name(self) -> str:
        return self.baseline or self.candidates[0].name


class LoadedConfig(BaseModel):
    """A validated config plus where it came from (relative paths start at its folder). Of a file
    that does not validate as a whole (read_config has listed why), `config` holds the parts that
    do: `unread` names the top-level keys left at their defaults, `broken` the positions of the list
    items left out, so that each check needing them is skipped rather than run on a guess."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    config: Config
    path: Path
    node: Any = Field(None, repr=False, exclude=True)  # the YAML tree, parsed once, for error lines
    unread: frozenset[str] = frozenset()
    broken: dict[str, tuple[int, ...]] = {}

    def items(self, key: str) -> list[tuple[int, Any]]:
        """(position in the file, item) of each item of the list `key` that validated: the position
        names its line and key, also when an item before it was left out."""
        left_out = self.broken.get(key, ())
        return list(zip((i for i in count() if i not in left_out), getattr(self.config, key)))

    def validated(self, *keys: str) -> bool:
        """Whether these top-level keys validated whole (a list with every item)."""
        return not any(key in self.unread or self.broken.get(key) for key in keys)

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent

    def where(self, *loc: object) -> str:
        """file:line of a key path in the config (the nearest line the YAML has)."""
        return f"{self.path}:{line_of(self.node, loc)}"

    @property
    def hash(self) -> str:
        """sha256 of the validated config (canonical JSON): formatting and comments do not count."""
        canonical = json.dumps(
            self.config.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_config(path: str | Path) -> LoadedConfig:
    """The validated config; the first problem is raised (a ConfigError naming file:line, key and
    fix)."""
    loaded = read_config(path, Problems(collect=False))
    assert loaded is not None, "a read that does not collect raises instead"
    return loaded


def read_config(path: str | Path, problems: Problems) -> LoadedConfig | None:
    """The validated config, every problem recorded in `problems` (harness check lists them all).
    When pydantic rejects some of it, the parts that validate on their own (see _partial), so that
    their problems are found too; None when the file cannot be read as a mapping."""
    path = Path(path)
    with problems.unit():
        data, node = load_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(
                str(path),
                "(top level)",
                "expected a mapping of keys",
                "see configs/demo.yaml for the shape",
            )
        try:
            loaded = LoadedConfig(config=Config.model_validate(data), path=path, node=node)
        except ValidationError as exc:
            problems.add(validation_errors(Config, exc, path, node))  # type: ignore[arg-type]
            loaded = _partial(data, path, node)
        named = _file_names(data.get("candidates"))
        _check_unique(loaded, named, problems)
        _check_references(loaded, list(dict.fromkeys(name for _, name in named)), problems)
        _check_self_comparisons(loaded, problems)
        return loaded
    return None


_LEFT_OUT = object()


def _partial(data: dict, path: Path, node: Any) -> LoadedConfig:
    """What of a config that does not validate does: each top-level key on its own, and each item of
    a list on its own (one bad candidate leaves the others to be checked). A baseline left to its
    default is the first candidate, so it is unknown when that one does not validate."""
    values: dict[str, Any] = {"name": ""}  # it only labels a run, and a partial config runs nothing
    unread: set[str] = set()
    broken: dict[str, tuple[int, ...]] = {}
    for key, field in Config.model_fields.items():
        listed = get_origin(field.annotation) is list
        if listed:
            values[key] = []
        if key not in data:
            if field.is_required():
                unread.add(key)
        elif listed and isinstance(data[key], list):
            items = [_validated(key, item, item=True) for item in data[key]]
            values[key] = [item for item in items if item is not _LEFT_OUT]
            broken[key] = tuple(i for i, item in enumerate(items) if item is _LEFT_OUT)
            # the list's own constraints (at least one item)
            if _validated(key, values[key]) is _LEFT_OUT:
                unread.add(key)
        elif not listed and (value := _validated(key, data[key])) is not _LEFT_OUT:
            values[key] = value
        else:
            unread.add(key)
    if values.get("baseline") is None and "baseline" not in unread:
        if values["candidates"] and 0 not in broken.get("candidates", ()):
            values["baseline"] = values["candidates"][0].name
        else:
            unread.add("baseline")
    return LoadedConfig.model_construct(
        config=Config.model_construct(**values),
        path=path,
        node=node,
        unread=frozenset(unread),
        broken=broken,
    )  # validated, as far as it goes


def _validated(key: str, value: Any, item: bool = False) -> Any:
    """`value` validated as the top-level key's value (as an item of that list, with `item`), or
    _LEFT_OUT. Strict as the Config is (a key's own type, `seed`'s say, is no model carrying the
    setting)."""
    try:
        return _adapter(key, item).validate_python(value, strict=Config.model_config.get("strict"))
    except ValidationError:
        return _LEFT_OUT


@cache
def _adapter(key: str, item: bool) -> TypeAdapter:
    field = Config.model_fields[key]
    return TypeAdapter(get_args(field.annotation)[0] if item else field.rebuild_annotation())


def _file_names(entries: Any) -> list[tuple[int, str]]:
    """(position, name) of each candidate entry that names itself, also of those that do not
    validate: a gate on a candidate whose kind is misspelt is not also a gate on an unknown one.
    Empty without a list of candidates.
    """
    return [
        (i, entry["name"])
        for i, entry in enumerate(entries if isinstance(entries, list) else [])
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    ]


def _check_unique(loaded: LoadedConfig, named: list[tuple[int, str]], problems: Problems) -> None:
    for i, name in named:
        first = next(j for j, other in named if other == name)
        if first != i:
            with problems.unit():
                raise ConfigError(
                    loaded.where("candidates", i, "name"),
                    f"candidates[{i}].name",
                    f"candidate name {name!r} is taken (candidates[{first}])",
                    "give each candidate a name of its own",
                )


def _check_references(loaded: LoadedConfig, names: list[str], problems: Problems) -> None:
    """Each name the baseline, a suite entry or a gate gives is a candidate's (with no names in the
    file, there is nothing to check against)."""
    if not names:
        return
    config = loaded.config
    references: list[tuple[tuple[Any, ...], str | None, str]] = []
    if loaded.validated("baseline"):
        references.append(
            (("baseline",), config.baseline, f"baseline {config.baseline!r} is not a candidate")
        )
    for i, entry in loaded.items("suites"):
        references += [
            (("suites", i, "candidates"), name, f"unknown candidate {name!r}")
            for name in getattr(entry, "candidates", [])
        ]
    for i, gate in loaded.items("gates"):
        references += [
            (("gates", i, key), getattr(gate, key), f"unknown candidate {getattr(gate, key)!r}")
            for key in ("candidate", "baseline")
        ]
    for loc, name, problem in references:
        if name is not None and name not in names:
            with problems.unit():
                raise ConfigError(
                    loaded.where(*loc), key_path(loc), problem, f"use one of: {', '.join(names)}"
                )


def _check_self_comparisons(loaded: LoadedConfig, problems: Problems) -> None:
    """A relative gate needs someone else to compare with: unknown while the baseline or drift did
    not validate."""
    config = loaded.config
    if not loaded.validated("baseline", "drift"):
        return
    for i, gate in loaded.items("gates"):
        if (
            gate.relative
            and config.drift is None
            and config.gate_baseline(gate, against=False) == gate.candidate
        ):
            with problems.unit():
                raise ConfigError(
                    loaded.where("gates", i),
                    f"gates[{i}]",
                    f"`min_delta`/`max_drop` compare {gate.candidate!r} with itself (it is the"
                    " baseline)",
                    "set the gate's `baseline:` to another candidate, or use `min`/`max`",
                )
