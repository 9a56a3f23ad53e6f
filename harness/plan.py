"""What to run: the validated config with its suites loaded and its models resolved.

Everything that can be wrong with the input is found here, before any model is started or trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.config import Config, EndpointCandidate, LoadedConfig, LocalCandidate, LoraCandidate, RagCandidate
from harness.errors import ConfigError
from harness.models import ModelRef, resolve
from harness.suites import Suite, load_suite, resolve_suite_path
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
