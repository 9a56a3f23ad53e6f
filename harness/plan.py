"""What to run: the validated config with its suites loaded and its models resolved.

Everything that can be wrong with the input is found here, before any model is started or trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.config import (
    Candidate, Config, EndpointCandidate, LoadedConfig, LocalCandidate, LoraCandidate, RagCandidate,
)
from harness.errors import ConfigError
from harness.models import ModelRef, resolve
from harness.suites import PROBE_SCORERS, RETRIEVAL_METRICS, Case, Suite, load_suite, resolve_suite_path
from harness.yamlfile import line_of, load_yaml


@dataclass
class Plan:
    loaded: LoadedConfig
    suites: list[Suite]
    models: dict[str, ModelRef]  # local candidate name -> base model
    node: object = field(default=None, repr=False)  # the config's YAML tree, for error lines

    @property
    def config(self) -> Config:
        return self.loaded.config

    def where(self, *loc: object) -> str:
        return f"{self.loaded.path}:{line_of(self.node, loc)}"

    def local(self) -> list[LocalCandidate]:
        return [c for c in self.config.candidates if not isinstance(c, EndpointCandidate)]

    def endpoints(self) -> list[EndpointCandidate]:
        return [c for c in self.config.candidates if isinstance(c, EndpointCandidate)]

    def by_model(self) -> list[tuple[ModelRef, list[LocalCandidate]]]:
        """Local candidates grouped by base model, so each model's server starts once per run
        (with every adapter its candidates need)."""
        groups: dict[str, tuple[ModelRef, list[LocalCandidate]]] = {}
        for candidate in self.local():
            ref = self.models[candidate.name]
            groups.setdefault(ref.fingerprint, (ref, []))[1].append(candidate)
        return list(groups.values())

    def directions(self) -> dict[tuple[str, str], bool]:
        """(suite, metric) -> whether higher is better, for the gates and comparisons."""
        return {(s.name, metric): higher for s in self.suites for metric, higher in s.directions.items()}

    def suite(self, name: str) -> Suite:
        return next(s for s in self.suites if s.name == name)

    def candidate(self, name: str) -> Candidate:
        return next(c for c in self.config.candidates if c.name == name)

    def unavailable(self, candidate: str, suite: str, metric: str) -> str | None:
        """Why `candidate` can never have `metric` on `suite` (a gate on it could only ever see no rows),
        or None when it can."""
        who = self.candidate(candidate)
        spec = self.suite(suite).scorer(metric)
        if metric in RETRIEVAL_METRICS and not isinstance(who, RagCandidate):
            return (f"`{metric}` measures retrieval, and candidate {candidate!r} is kind {who.kind!r} "
                    "(only `rag` candidates retrieve)")
        if spec is None:
            return None
        if spec.type in PROBE_SCORERS and isinstance(who, EndpointCandidate):
            return (f"`{metric}` is a log-likelihood probe, and candidate {candidate!r} is an endpoint, which "
                    "gives no prompt log-probabilities")
        rubric = getattr(spec.params, "loaded", None)
        if spec.type == "judge" and rubric is not None:
            if rubric.rubric.needs_context and not isinstance(who, RagCandidate):
                return (f"rubric {rubric.name!r} judges answers against retrieved context, and candidate "
                        f"{candidate!r} is kind {who.kind!r} (only `rag` candidates retrieve)")
            if rubric.mode == "pairwise" and candidate == self.config.baseline_name and self.config.drift is None:
                return (f"rubric {rubric.name!r} compares each candidate with the baseline, and {candidate!r} "
                        "is the baseline")
        return None

    def expected_cases(self, candidate: str, suite: str, metric: str) -> list[str]:
        """Case ids that must have a (candidate, suite, metric) row once the run is done."""
        if self.unavailable(candidate, suite, metric):
            return []
        the_suite = self.suite(suite)
        cases = the_suite.retrieval_cases() if metric in RETRIEVAL_METRICS else the_suite.cases
        return [c.id for c in cases]

    def expected(self) -> dict[tuple[str, str, str], list[str]]:
        """Every row the gates need, both sides: what the verdict checks is there and has a value."""
        out = {}
        for gate in self.config.gates:
            sides = [gate.candidate] + ([self.config.gate_baseline(gate)] if gate.relative else [])
            for who in sides:
                out[(who, gate.suite, gate.metric)] = self.expected_cases(who, gate.suite, gate.metric)
        return out

    def inline_metrics(self, candidate: str, suite: Suite, case: Case) -> set[str]:
        """The score rows the generate stage writes with an answer: what makes a stored answer done."""
        metrics = {s.metric for s in suite.scorers if not s.deferred}
        if isinstance(self.candidate(candidate), RagCandidate) and case.metadata.get("gold_doc_ids"):
            metrics |= set(RETRIEVAL_METRICS)
        return metrics

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.loaded.base_dir / path).resolve()


def make_plan(loaded: LoadedConfig) -> Plan:
    config, path = loaded.config, loaded.path
    _, node = load_yaml(path)
    plan = Plan(loaded=loaded, suites=[], models={}, node=node)
    for i, ref in enumerate(config.suites):
        suite_path = resolve_suite_path(ref, loaded.base_dir)
        if not suite_path.exists():
            raise ConfigError(plan.where("suites", i), f"suites[{i}]", f"suite {ref!r} not found ({suite_path})",
                              "give a suite.yaml path (relative to this config) or builtin:NAME")
        suite = load_suite(suite_path)
        if any(s.name == suite.name for s in plan.suites):
            raise ConfigError(plan.where("suites", i), f"suites[{i}]", f"two suites are named {suite.name!r}",
                              "give each suite a distinct `name:` in its suite.yaml")
        plan.suites.append(suite)
    by_name = {s.name: s for s in plan.suites}
    for i, name in enumerate(config.report.redact_suites):
        if name not in by_name:
            raise ConfigError(plan.where("report", "redact_suites", i), f"report.redact_suites[{i}]",
                              f"unknown suite {name!r}", f"use one of: {', '.join(by_name)}")
    for i, gate in enumerate(config.gates):
        if gate.suite not in by_name:
            raise ConfigError(plan.where("gates", i, "suite"), f"gates[{i}].suite", f"unknown suite {gate.suite!r}",
                              f"use one of: {', '.join(by_name)}")
        if gate.metric not in by_name[gate.suite].metrics:
            raise ConfigError(plan.where("gates", i, "metric"), f"gates[{i}].metric",
                              f"suite {gate.suite!r} has no metric {gate.metric!r}",
                              f"use one of: {', '.join(by_name[gate.suite].metrics)}")
    _check_gates_possible(plan)
    for i, candidate in enumerate(config.candidates):
        if isinstance(candidate, EndpointCandidate):
            continue
        plan.models[candidate.name] = resolve(candidate.model or config.model, loaded.base_dir)
        if isinstance(candidate, LoraCandidate) and candidate.train is not None:
            from harness.training import check_lora_targets

            check_lora_targets(plan.models[candidate.name], candidate.train.lora,
                               f"{plan.where('candidates', i, 'train', 'lora')}: candidates[{i}].train")
        if isinstance(candidate, RagCandidate) and candidate.template is not None:
            from harness.retrieval import check_template

            check_template(candidate.template, plan.where("candidates", i, "template"), f"candidates[{i}].template")
    return plan


def _check_gates_possible(plan: Plan) -> None:
    """A gate on a metric one of its sides can never have is a config error, found before any model starts."""
    config = plan.config
    for i, gate in enumerate(config.gates):
        sides = [("candidate", gate.candidate)]
        if gate.relative and config.drift is None:
            sides.append(("baseline", config.gate_baseline(gate)))
        for role, who in sides:
            why = plan.unavailable(who, gate.suite, gate.metric)
            if why is None:
                continue
            fix = ("gate a candidate that can have it, or remove the gate" if role == "candidate" else
                   "compare with a candidate that has it (the gate's `baseline:`), or use an absolute `min`/`max`")
            raise ConfigError(plan.where("gates", i), f"gates[{i}]", f"impossible gate: {why}", fix)
