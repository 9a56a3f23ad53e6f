"""What to run: the validated config with its suites loaded and its models resolved.

Everything that can be wrong with the input is found here, before any model is started or trained:
the config, every suite and case against what its scorers need, every gate against what its
candidates can have and the values its metric can take, each kind's own checks (LoRA targets, RAG
templates), the API keys the endpoints are called with, and the folder the run is written to.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.building.kinds import CandidateBase, KindContext, kind_of, on_base_model
from harness.core.errors import ConfigError, HarnessError, Problems
from harness.core.models import ModelRef, resolve
from harness.planning.config import Config, Gate, LoadedConfig, is_relative, shown
from harness.planning.suites import Case, Suite, has_gold, load_suite, resolve_suite_path
from harness.scoring.registry import CANDIDATE_NEEDS, ScorerSpec
from harness.serving.base import EndpointTarget
from harness.store.location import Location, from_env, parse


@dataclass
class Plan:
    loaded: LoadedConfig
    suites: list[Suite]
    models: dict[str, ModelRef]  # candidate on a base model -> that model
    answering: dict[str, list[str]] = field(
        default_factory=dict
    )  # suite -> the candidates that answer it
    against: str | None = (
        None  # --against: a stored run whose scores are the baseline side of relative gates
    )
    output: Path | None = (
        None  # where run folders go, once make_plan has checked it (see output_root)
    )

    def answers(self, candidate: str, suite: str) -> bool:
        """Whether `candidate` answers `suite` (the config's `{suite, candidates}` entries; default:
        all)."""
        return candidate in self.answering.get(suite, [candidate])

    @property
    def config(self) -> Config:
        return self.loaded.config

    def where(self, *loc: object) -> str:
        return self.loaded.where(*loc)

    def by_model(self) -> list[tuple[ModelRef, list[CandidateBase]]]:
        """Candidates on a base model grouped by it, so each model's server starts once per run."""
        groups: dict[str, tuple[ModelRef, list[CandidateBase]]] = {}
        for candidate in self.config.candidates:
            if on_base_model(candidate):
                ref = self.models[candidate.name]
                groups.setdefault(ref.fingerprint, (ref, []))[1].append(candidate)
        return list(groups.values())

    def kind_context(self, i: int, candidate: CandidateBase) -> KindContext:
        """What candidate `i`'s kind is told: where its keys are, its folder, and its base model."""
        return KindContext(
            self.where,
            ("candidates", i),
            self.resolve_path,
            self.models.get(candidate.name),
            self.loaded.base_dir,
        )

    def contexts(self) -> list[KindContext]:
        return [self.kind_context(i, c) for i, c in enumerate(self.config.candidates)]

    def remote(self, candidate: CandidateBase) -> EndpointTarget | None:
        """What a candidate on no base model calls, known from its config alone; None for one on a
        base model."""
        if on_base_model(candidate):
            return None
        target = kind_of(candidate).target(candidate, None, None)
        assert isinstance(target, EndpointTarget), (
            f"kind {kind_of(candidate).name} has no base model to serve"
        )
        return target

    def endpoints(self) -> dict[str, dict[str, str | None]]:
        """The run's record of what each candidate on no base model calls: protocol, address, and
        the model name its requests carry."""
        return {
            c.name: {
                "protocol": target.protocol,
                "base_url": target.base_url,
                **({"base_urls": list(target.base_urls)} if target.base_urls else {}),
                "model": kind_of(c).served(c, None, None)[0],
            }
            for c in self.config.candidates
            if (target := self.remote(c)) is not None
        }

    def directions(self) -> dict[tuple[str, str], bool]:
        """(suite, metric) -> whether higher is better, for the gates and comparisons."""
        return {
            (s.name, metric): higher for s in self.suites for metric, higher in s.directions.items()
        }

    def suite(self, name: str) -> Suite:
        return next(s for s in self.suites if s.name == name)

    def candidate(self, name: str) -> CandidateBase:
        return next(c for c in self.config.candidates if c.name == name)

    def unavailable(self, candidate: str, suite: str, metric: str) -> str | None:
        """Why `candidate` can never have `metric` on `suite` (a gate on it could only ever see no
        rows), or None when it can: what the metric's scorer needs of a candidate, against what its
        kind can do.
        """
        who = self.candidate(candidate)
        kind = kind_of(who)
        spec = self.suite(suite).scorer(metric)
        if not self.answers(candidate, suite):
            return (
                f"candidate {candidate!r} does not answer suite {suite!r} (its entry in `suites:`"
                f" names {', '.join(self.answering[suite])})"
            )
        if spec is None:
            return None
        can = {"retrieval": kind.retrieves, "logliks": kind.logliks}
        lacking = [need for need in sorted(spec.needs & set(CANDIDATE_NEEDS)) if not can[need]]
        if lacking:
            return (
                f"`{metric}` ({spec.type}) needs {CANDIDATE_NEEDS[lacking[0]]}, and candidate"
                f" {candidate!r} is kind {kind.name!r}"
            )
        rubric = getattr(spec.params, "loaded", None)
        if rubric is not None and rubric.mode == "pairwise" and not self.pinned:
            if candidate == self.config.baseline_name:
                return (
                    f"rubric {rubric.name!r} compares each candidate with the baseline, "
                    f"and {candidate!r} is the baseline"
                )
            if not self.answers(self.config.baseline_name, suite):
                return (
                    f"rubric {rubric.name!r} compares each candidate with the baseline, and the"
                    f" baseline {self.config.baseline_name!r} does not answer suite {suite!r}"
                )
        return None

    def expected_cases(self, candidate: str, suite: str, metric: str) -> list[str]:
        """Case ids that must have a (candidate, suite, metric) row once the run is done."""
        the_suite = self.suite(suite)
        spec = the_suite.scorer(metric)
        if spec is None or self.unavailable(candidate, suite, metric):
            return []
        return [c.id for c in the_suite.cases_for(spec)]

    @property
    def pinned(self) -> bool:
        """Whether relative gates compare each candidate with itself in an earlier run: --against,
        or a drift config (whose pin `harness drift` reads; a compare run of it is the run to pin,
        each candidate its own baseline)."""
        return self.against is not None or self.config.drift is not None

    def gate_baseline(self, gate: Gate) -> str:
        """Whom a relative gate compares with in this plan (see Config.gate_baseline)."""
        return self.config.gate_baseline(gate, against=self.against is not None)

    def expected(self) -> dict[tuple[str, str, str], list[str]]:
        """Every row the gates need, both sides: what the verdict checks is there and has a value."""
        out = {}
        for gate in self.config.gates:
            sides = [gate.candidate] + ([self.gate_baseline(gate)] if gate.relative else [])
            for who in sides:
                out[(who, gate.suite, gate.metric)] = self.expected_cases(
                    who, gate.suite, gate.metric
                )
        return out

    def metric_bounds(self, suite: str, metric: str) -> tuple[float | None, float | None]:
        """The values a metric can take (its scorer's declared bounds): what a sequence may bet on."""
        spec = self.suite(suite).scorer(metric)
        return spec.bounds if spec is not None else (None, None)

    def case_order(self, suite: str, seed: int) -> list[str]:
        """The suite's case ids in a random order seeded by `seed` and the suite's name: the same
        seed gives the same order on every machine, and suites of one run are shuffled
        independently."""
        ids = [c.id for c in self.suite(suite).cases]
        name = int.from_bytes(hashlib.sha256(suite.encode()).digest()[:8], "big")
        return [ids[i] for i in np.random.default_rng([seed, name]).permutation(len(ids))]

    def inline_metrics(self, candidate: str, suite: Suite, case: Case) -> set[str]:
        """The score rows the generate stage writes with an answer: what makes a stored answer done."""
        retrieves = kind_of(self.candidate(candidate)).retrieves
        return {
            s.metric
            for s in suite.scorers
            if not s.deferred and s.applies(has_gold(case), retrieves)
        }

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.loaded.base_dir / path).resolve()

    def store_location(self) -> Location | None:
        """The config's `store:`, if it names one (HARNESS_STORE and --store come first: see
        store.location)."""
        store = self.config.store
        if store is None:
            return None
        if store.url_env is not None:
            return from_env(store.url_env, f"{self.where('store', 'url_env')} store.url_env")
        return parse(
            store.url or "", f"{self.where('store', 'url')} store.url", self.loaded.base_dir
        )

    def output_root(self, override: str | None = None) -> Path:
        """Where run folders go (`--out`, else `output_dir` from the config's folder, else
        ./reports), refused at plan time when it is a file, lies under one, or cannot be written
        (found when the store opened, after the plan, the error named no key)."""
        configured = self.config.output_dir
        if override is not None:
            where, key, path = "the command line", "--out", Path(override)
        else:
            where, key = self.where("output_dir"), "output_dir"
            path = self.loaded.base_dir / configured if configured else Path("reports")
        why = _unwritable(path)
        if why is not None:
            default = (
                ""
                if override is not None or configured
                else " (the default: ./reports, from the current folder)"
            )
            raise ConfigError(
                where,
                key,
                f"run folders cannot be written to {path.absolute()}{default}: {why}",
                f"point {key} at a folder this user can write (it is created if missing)",
            )
        return path.resolve()


def make_plan(
    loaded: LoadedConfig,
    problems: Problems | None = None,
    out: str | None = None,
    against: str | None = None,
) -> Plan:
    """The plan, every check run. Without `problems` the first error is raised; with a collecting
    one (harness check) each independent check records its error and the rest still run. `out`: the
    `--out` folder, checked in place of `output_dir`; `against`: --against. Of a config that did not
    validate whole, the parts that did are checked, each check that needs a part that did not
    skipped (see LoadedConfig).
    """
    problems = problems or Problems(collect=False)
    config = loaded.config
    plan = Plan(loaded=loaded, suites=[], models={}, against=against)
    broken_suites = (
        0 if loaded.validated("suites") else 1
    )  # a suite whose name is unknown: not every name is known
    for i, entry in loaded.items("suites"):
        with problems.unit(plan.where("suites", i)):
            broken_suites += 1
            ref = entry if isinstance(entry, str) else entry.suite
            suite_path = resolve_suite_path(ref, loaded.base_dir)
            if not suite_path.exists():
                raise ConfigError(
                    plan.where("suites", i),
                    f"suites[{i}]",
                    f"suite {ref!r} not found ({suite_path})",
                    "give a suite.yaml path (relative to this config) or builtin:NAME",
                )
            suite = load_suite(suite_path)
            if any(s.name == suite.name for s in plan.suites):
                raise ConfigError(
                    plan.where("suites", i),
                    f"suites[{i}]",
                    f"two suites are named {suite.name!r}",
                    "give each suite a distinct `name:` in its suite.yaml",
                )
            plan.suites.append(suite)
            if not isinstance(entry, str):
                plan.answering[suite.name] = entry.candidates
                pairwise = [
                    s.metric
                    for s in suite.scorers
                    if getattr(getattr(s.params, "loaded", None), "mode", "") == "pairwise"
                ]
                if (
                    pairwise
                    and loaded.validated("baseline", "drift")
                    and not plan.pinned
                    and config.baseline_name not in entry.candidates
                ):
                    raise ConfigError(
                        plan.where("suites", i, "candidates"),
                        f"suites[{i}].candidates",
                        f"`{pairwise[0]}` compares each candidate with the baseline "
                        f"{config.baseline_name!r}, which does not answer this suite",
                        f"add {config.baseline_name!r} to the suite's candidates",
                    )
            broken_suites -= 1
    by_name = {s.name: s for s in plan.suites}
    for i, name in enumerate(config.report.redact_suites):
        with problems.unit():
            if name not in by_name and not broken_suites:
                raise ConfigError(
                    plan.where("report", "redact_suites", i),
                    f"report.redact_suites[{i}]",
                    f"unknown suite {name!r}",
                    f"use one of: {', '.join(by_name)}",
                )
    if config.report.mlflow is not None and importlib.util.find_spec("mlflow") is None:
        with problems.unit():
            raise ConfigError(
                plan.where("report", "mlflow"),
                "report.mlflow",
                "MLflow is not installed",
                "pip install 'harness[mlflow]' (or mlflow itself), or remove report.mlflow",
            )
    for i, candidate in loaded.items("candidates"):
        with problems.unit():
            if on_base_model(candidate) and (candidate.model or loaded.validated("model")):  # type: ignore[attr-defined]
                plan.models[candidate.name] = _model(plan, i, candidate)
    for i, gate in loaded.items("gates"):
        with problems.unit():
            if gate.suite not in by_name:
                if broken_suites:  # its name may be in the suite that did not load
                    continue
                raise ConfigError(
                    plan.where("gates", i, "suite"),
                    f"gates[{i}].suite",
                    f"unknown suite {gate.suite!r}",
                    f"use one of: {', '.join(by_name)}",
                )
            spec = by_name[gate.suite].scorer(gate.metric)
            if spec is None:
                raise ConfigError(
                    plan.where("gates", i, "metric"),
                    f"gates[{i}].metric",
                    f"suite {gate.suite!r} has no metric {gate.metric!r}",
                    f"use one of: {', '.join(by_name[gate.suite].metrics)}",
                )
            _check_gate_range(plan, i, gate, spec)
            _check_gate_possible(plan, i, gate)
    for i, candidate in loaded.items("candidates"):
        kind = kind_of(candidate)
        if kind.check is None or (on_base_model(candidate) and candidate.name not in plan.models):
            continue  # a candidate whose base model is missing was reported above
        with problems.unit(plan.where("candidates", i)):
            kind.check(candidate, plan.kind_context(i, candidate))
    for where, key, who, name in _api_keys(plan):
        with problems.unit():
            _check_key(where, key, who, name)
    if out is not None or loaded.validated("output_dir"):
        with problems.unit():
            plan.output = plan.output_root(out)
    return plan


def _model(plan: Plan, i: int, candidate: CandidateBase) -> ModelRef:
    """The candidate's model, or an error at the config line that names it."""
    own = candidate.model is not None  # type: ignore[attr-defined]
    try:
        return resolve(candidate.model if own else plan.config.model, plan.loaded.base_dir)  # type: ignore[attr-defined]
    except HarnessError as exc:
        where = plan.where(*(("candidates", i, "model") if own else ("model",)))
        fix = (
            ""
            if "\n  fix: " in str(exc)
            else (
                "\n  fix: name a known alias, or a Hugging Face model folder (with "
                "its config.json; a relative path starts at the config's folder)"
            )
        )
        raise HarnessError(
            f"{where}: {f'candidates[{i}].model' if own else 'model'}: {exc}{fix}"
        ) from None


def _check_gate_possible(plan: Plan, i: int, gate: Gate) -> None:
    """A gate on a metric one of its sides can never have is a config error, found before any model
    starts. A side that is no candidate of the plan (unknown, or its entry did not validate) was
    reported already, and whom a gate compares with is unknown while the baseline or drift did not
    validate."""
    config = plan.config
    if not plan.loaded.validated("baseline", "drift"):
        return
    sides = [("candidate", gate.candidate)]
    if gate.relative and not plan.pinned:
        sides.append(("baseline", plan.gate_baseline(gate)))
    known = {c.name for c in config.candidates}
    for role, who in sides:
        if who not in known:
            continue
        why = plan.unavailable(who, gate.suite, gate.metric)
        if why is None:
            continue
        fix = (
            "gate a candidate that can have it, or remove the gate"
            if role == "candidate"
            else (
                "compare with a candidate that has it (the gate's `baseline:`), or use an absolute"
                " `min`/`max`"
            )
        )
        raise ConfigError(plan.where("gates", i), f"gates[{i}]", f"impossible gate: {why}", fix)


def _span(low: float | None, high: float | None, signed: bool = False) -> str:
    if low is None:
        return f"at most {shown(high, signed)}"  # type: ignore[arg-type]
    if high is None:
        return f"at least {shown(low, signed)}"
    return f"between {shown(low, signed)} and {shown(high, signed)}"


def _check_gate_range(plan: Plan, i: int, gate: Gate, spec: ScorerSpec) -> None:
    """A bound outside the values the metric can take decides nothing: `min: 1.5` on a pass rate can
    never pass, `max: 2` on it never fail. Relative bounds are held to the widest change the metric
    can show."""
    low, high = spec.bounds
    width = high - low if low is not None and high is not None else None
    allowed = {
        "min": (low, high),
        "max": (low, high),
        "min_delta": (None, None) if width is None else (-width, width),
        "max_drop": (0.0, width),
    }
    for key, (lo, hi) in allowed.items():
        value = getattr(gate, key)
        if value is None:
            continue
        below, above = lo is not None and value < lo, hi is not None and value > hi
        if not (below or above):
            continue
        never = below if key == "max" else above and key != "max_drop"
        signed = key == "min_delta"
        metric = f"`{gate.metric}`" + (f" ({spec.type})" if spec.type != gate.metric else "")
        what = (
            f"more than {metric} can change (at most {shown(width)} either way)"  # type: ignore[arg-type]
            if is_relative(key)
            else f"outside the values {metric} takes ({_span(lo, hi)})"
        )
        raise ConfigError(
            plan.where("gates", i, key),
            f"gates[{i}].{key}",
            f"{key} {shown(value, signed)} is {what}, so the gate "
            f"{'can never pass' if never else 'always passes'}",
            f"use a `{key}` {_span(lo, hi, signed)}",
        )


def _api_keys(plan: Plan) -> list[tuple[str, str, str, str]]:
    """(file:line, key, who, variable) of every API key the run will read: each endpoint
    candidate's, and the judge endpoint's when some suite is judged."""
    config = plan.config
    out = []
    for i, candidate in plan.loaded.items("candidates"):
        name = remote.api_key_env if (remote := plan.remote(candidate)) is not None else None
        if name is not None:
            out.append(
                (
                    plan.where("candidates", i, "api_key_env"),
                    f"candidates[{i}].api_key_env",
                    f"candidate {candidate.name!r}",
                    name,
                )
            )
    judged = any("model" in spec.needs for suite in plan.suites for spec in suite.scorers)
    endpoint = config.judge.endpoint
    if judged and endpoint is not None and endpoint.api_key_env is not None:
        out.append(
            (
                plan.where("judge", "endpoint", "api_key_env"),
                "judge.endpoint.api_key_env",
                "the judge",
                endpoint.api_key_env,
            )
        )
    return out


def _check_key(where: str, key: str, who: str, name: str) -> None:
    """The key must be in the environment before the run starts: read at the first request, an unset
    one was noticed only after the baseline had run. The message names the variable, never a value.
    """
    if not os.environ.get(name, "").strip():
        raise ConfigError(
            where,
            key,
            f"the environment variable {name} is not set (or empty); {who} sends it as its API key",
            f"export {name}=<the key> before the run, or remove "
            "`api_key_env` if the endpoint needs no key",
        )


def _unwritable(path: Path) -> str | None:
    """Why run folders cannot be made at `path`, or None. Permission bits say nothing when the
    harness runs as root, so the test is a probe file created and removed in the nearest folder that
    exists."""
    existing = path
    try:
        existing = path.absolute()
        while not os.path.exists(existing):
            existing = existing.parent
        if not existing.is_dir():
            return (
                "it is a file, not a folder"
                if existing == path.absolute()
                else f"{existing} is a file"
            )
        fd, probe = tempfile.mkstemp(prefix=".harness-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except ValueError as exc:  # a NUL byte in the path
        return str(exc)
    except OSError as exc:
        return f"{existing} cannot be written ({exc.strerror or exc})"
    return None
