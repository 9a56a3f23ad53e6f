"""What to run: the validated config with its suites loaded and its models resolved.

Everything that can be wrong with the input is found here, before any model is started or trained:
the config, every suite and case against what its scorers need, every gate against what its
candidates can have, and each kind's own checks (LoRA targets, RAG templates).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import Config, LoadedConfig
from harness.errors import ConfigError, HarnessError, Problems
from harness.kinds import CandidateBase, kind_of
from harness.models import ModelRef, resolve
from harness.scorers import CANDIDATE_NEEDS
from harness.suites import Case, Suite, has_gold, load_suite, resolve_suite_path


@dataclass
class Plan:
    loaded: LoadedConfig
    suites: list[Suite]
    models: dict[str, ModelRef]  # local candidate name -> base model
    answering: dict[str, list[str]] = field(default_factory=dict)  # suite -> the candidates that answer it

    def runs(self, candidate: str, suite: str) -> bool:
        """Whether `candidate` answers `suite` (the config's `{suite, candidates}` entries; default: all)."""
        return candidate in self.answering.get(suite, [candidate])

    @property
    def config(self) -> Config:
        return self.loaded.config

    def where(self, *loc: object) -> str:
        return self.loaded.where(*loc)

    def local(self) -> list[CandidateBase]:
        return [c for c in self.config.candidates if kind_of(c).local]

    def endpoints(self) -> list[CandidateBase]:
        return [c for c in self.config.candidates if not kind_of(c).local]

    def by_model(self) -> list[tuple[ModelRef, list[CandidateBase]]]:
        """Local candidates grouped by base model, so each model's server starts once per run
        (with every adapter its candidates need)."""
        groups: dict[str, tuple[ModelRef, list[CandidateBase]]] = {}
        for candidate in self.local():
            ref = self.models[candidate.name]
            groups.setdefault(ref.fingerprint, (ref, []))[1].append(candidate)
        return list(groups.values())

    def directions(self) -> dict[tuple[str, str], bool]:
        """(suite, metric) -> whether higher is better, for the gates and comparisons."""
        return {(s.name, metric): higher for s in self.suites for metric, higher in s.directions.items()}

    def suite(self, name: str) -> Suite:
        return next(s for s in self.suites if s.name == name)

    def candidate(self, name: str) -> CandidateBase:
        return next(c for c in self.config.candidates if c.name == name)

    def unavailable(self, candidate: str, suite: str, metric: str) -> str | None:
        """Why `candidate` can never have `metric` on `suite` (a gate on it could only ever see no rows),
        or None when it can: what the metric's scorer needs of a candidate, against what its kind can do."""
        who = self.candidate(candidate)
        kind = kind_of(who)
        spec = self.suite(suite).scorer(metric)
        if not self.runs(candidate, suite):
            return f"candidate {candidate!r} does not answer suite {suite!r} (its entry in `suites:` names " \
                   f"{', '.join(self.answering[suite])})"
        if spec is None:
            return None
        can = {"retrieval": kind.retrieves, "logliks": kind.logliks}
        lacking = [need for need in sorted(spec.needs & set(CANDIDATE_NEEDS)) if not can[need]]
        if lacking:
            return (f"`{metric}` ({spec.type}) needs {CANDIDATE_NEEDS[lacking[0]]}, and candidate {candidate!r} "
                    f"is kind {kind.name!r}")
        rubric = getattr(spec.params, "loaded", None)
        if rubric is not None and rubric.mode == "pairwise" and self.config.drift is None:
            if candidate == self.config.baseline_name:
                return (f"rubric {rubric.name!r} compares each candidate with the baseline, "
                        f"and {candidate!r} is the baseline")
            if not self.runs(self.config.baseline_name, suite):
                return (f"rubric {rubric.name!r} compares each candidate with the baseline, and the baseline "
                        f"{self.config.baseline_name!r} does not answer suite {suite!r}")
        return None

    def expected_cases(self, candidate: str, suite: str, metric: str) -> list[str]:
        """Case ids that must have a (candidate, suite, metric) row once the run is done."""
        the_suite = self.suite(suite)
        spec = the_suite.scorer(metric)
        if spec is None or self.unavailable(candidate, suite, metric):
            return []
        return [c.id for c in the_suite.cases_for(spec)]

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
        retrieves = kind_of(self.candidate(candidate)).retrieves
        return {s.metric for s in suite.scorers if not s.deferred and s.applies(has_gold(case), retrieves)}

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.loaded.base_dir / path).resolve()


def make_plan(loaded: LoadedConfig, problems: Problems | None = None) -> Plan:
    """The plan, every check run. Without `problems` the first error is raised; with a collecting one (harness
    check) each independent check records its error and the rest still run."""
    problems = problems or Problems(collect=False)
    config = loaded.config
    plan = Plan(loaded=loaded, suites=[], models={})
    broken_suites = 0
    for i, entry in enumerate(config.suites):
        with problems.unit():
            broken_suites += 1
            ref = entry if isinstance(entry, str) else entry.suite
            suite_path = resolve_suite_path(ref, loaded.base_dir)
            if not suite_path.exists():
                raise ConfigError(plan.where("suites", i), f"suites[{i}]", f"suite {ref!r} not found ({suite_path})",
                                  "give a suite.yaml path (relative to this config) or builtin:NAME")
            suite = load_suite(suite_path)
            if any(s.name == suite.name for s in plan.suites):
                raise ConfigError(plan.where("suites", i), f"suites[{i}]", f"two suites are named {suite.name!r}",
                                  "give each suite a distinct `name:` in its suite.yaml")
            plan.suites.append(suite)
            if not isinstance(entry, str):
                plan.answering[suite.name] = entry.candidates
                pairwise = [s.metric for s in suite.scorers if getattr(getattr(s.params, "loaded", None), "mode", "")
                            == "pairwise"]
                if pairwise and config.baseline_name not in entry.candidates and config.drift is None:
                    raise ConfigError(plan.where("suites", i, "candidates"), f"suites[{i}].candidates",
                                      f"`{pairwise[0]}` compares each candidate with the baseline "
                                      f"{config.baseline_name!r}, which does not answer this suite",
                                      f"add {config.baseline_name!r} to the suite's candidates")
            broken_suites -= 1
    by_name = {s.name: s for s in plan.suites}
    for i, name in enumerate(config.report.redact_suites):
        with problems.unit():
            if name not in by_name and not broken_suites:
                raise ConfigError(plan.where("report", "redact_suites", i), f"report.redact_suites[{i}]",
                                  f"unknown suite {name!r}", f"use one of: {', '.join(by_name)}")
    if config.report.mlflow is not None and importlib.util.find_spec("mlflow") is None:
        with problems.unit():
            raise ConfigError(plan.where("report", "mlflow"), "report.mlflow", "MLflow is not installed",
                              "pip install 'harness[mlflow]' (or mlflow itself), or remove report.mlflow")
    for i, candidate in enumerate(config.candidates):
        with problems.unit():
            if kind_of(candidate).local:
                plan.models[candidate.name] = _model(plan, i, candidate.model or config.model)  # type: ignore[attr-defined]
    for i, gate in enumerate(config.gates):
        with problems.unit():
            if gate.suite not in by_name:
                if broken_suites:  # its name may be in the suite that did not load
                    continue
                raise ConfigError(plan.where("gates", i, "suite"), f"gates[{i}].suite",
                                  f"unknown suite {gate.suite!r}", f"use one of: {', '.join(by_name)}")
            if gate.metric not in by_name[gate.suite].metrics:
                raise ConfigError(plan.where("gates", i, "metric"), f"gates[{i}].metric",
                                  f"suite {gate.suite!r} has no metric {gate.metric!r}",
                                  f"use one of: {', '.join(by_name[gate.suite].metrics)}")
            _check_gate_possible(plan, i)
    for i, candidate in enumerate(config.candidates):
        kind = kind_of(candidate)
        if kind.check is None or (kind.local and candidate.name not in plan.models):
            continue  # a local candidate whose model is missing was reported above
        with problems.unit():
            kind.check(plan, i, candidate)
    return plan


def _model(plan: Plan, i: int, name: str) -> ModelRef:
    """The candidate's model, or an error at the config line that names it."""
    try:
        return resolve(name, plan.loaded.base_dir)
    except HarnessError as exc:
        own = plan.config.candidates[i].model is not None  # type: ignore[attr-defined]
        where = plan.where(*(("candidates", i, "model") if own else ("model",)))
        raise HarnessError(f"{where}: {f'candidates[{i}].model' if own else 'model'}: {exc}") from None


def _check_gate_possible(plan: Plan, i: int) -> None:
    """A gate on a metric one of its sides can never have is a config error, found before any model starts."""
    config = plan.config
    gate = config.gates[i]
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
