"""`harness check CONFIG`: everything the plan validates, every problem at once, no model started.

The config (every key pydantic rejects: unknown keys, non-finite numbers, sizes past their limits,
crossed bounds), each suite and its cases against their scorers, each rubric and its calibration
set, each gate against what its candidates can have and the values its metric can take, the models
(converted and cached, or a local folder), adapter folders and training data, RAG documents, the
judge's model, the API keys the endpoints need (in the environment, named, never shown), the output
folder (probed with a file) and the store's location (its variable set, its URL well formed; the
server is not asked), and the engine's parallel sizes and replicas against the devices visible here.
Each check runs on its own, so one broken suite does not hide a typo in a gate, and a key pydantic
rejects hides only the checks that need it (a misspelt kind leaves the other candidates, the suites
and the gates checked). Fast enough for a pre-commit hook: no model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.core.errors import ConfigError, HarnessError, Problems, ProblemsFound
from harness.planning.config import read_config
from harness.planning.judge import judge_metrics, judge_model
from harness.planning.plan import Plan, make_plan
from harness.serving.devices import placement_problem, visible


@dataclass(frozen=True)
class Checked:
    path: Path
    plan: Plan | None  # None when the file could not be read as a config
    problems: list[HarnessError]  # each once, in the order of the config's lines
    notes: list[str] = field(
        default_factory=list
    )  # what is fine but worth knowing (a gate that cannot settle early)

    def ready(self) -> Plan:
        """The plan to run, or ProblemsFound listing every problem."""
        if self.problems or self.plan is None:
            raise ProblemsFound(str(self.path), self.problems)
        return self.plan


def check(
    path: str | Path,
    out: str | None = None,
    against: str | None = None,
    stop_when_settled: bool = False,
) -> Checked:
    """Every problem of the config at `path` and what it names. A run plans through here too, and
    refuses with the list: `out` is its `--out` folder (checked in place of `output_dir`), `against`
    a stored run whose scores are the baseline side of relative gates (as a drift config's pin is),
    `stop_when_settled` whether the command line asks for a settled run the config does not."""
    path, problems = Path(path), Problems()
    loaded = read_config(path, problems)
    if loaded is None:
        return Checked(path, None, problems.listed(str(path)))
    plan = make_plan(loaded, problems, out, against)
    judge = plan.config.judge
    needs = (
        ("judge", "model") if judge.model is None and judge.endpoint is None else ("judge",)
    )  # model: the default
    if judge_metrics(plan) and loaded.validated(*needs):
        with problems.unit(plan.where("judge")):
            judge_model(plan)
    if loaded.validated("engine"):
        with problems.unit(plan.where("engine")):
            check_placement(plan)
    if plan.config.store is not None and loaded.validated("store"):
        with problems.unit(plan.where("store")):
            plan.store_location()  # named, parsed and its variable set: nothing is connected to
    notes: list[str] = []
    settled = stop_when_settled or plan.config.stop_when_settled
    if loaded.validated("gates", "gate_policy", "stop_when_settled") and settled:
        with problems.unit(plan.where("gate_policy")):
            notes = settling(plan)
    return Checked(path, plan, problems.listed(str(path)), notes)


def check_placement(plan: Plan) -> None:
    """The engine's parallel sizes and replicas against the devices visible here (see
    serving.devices)."""
    problem = placement_problem(plan.config.engine, visible())
    if problem is not None:
        key, why, fix = problem
        raise ConfigError(plan.where(*key.split(".")), key, why, fix)


def settling(plan: Plan) -> list[str]:
    """What a settled run of this config can and cannot do. Under gate_policy `fail` an ungated
    regression decides the verdict and has no sequential test, so no run could stop early honestly:
    refused. A gate on a metric with no known range (perplexity) gives a sequence nothing to bet on:
    it runs its suite to the end.
    """
    if plan.config.gate_policy.ungated_regressions == "fail":
        raise ConfigError(
            plan.where("gate_policy", "ungated_regressions"),
            "gate_policy.ungated_regressions",
            "`fail` makes every ungated comparison part of the verdict, and those have no"
            " sequential test, so a run cannot stop when its gates are settled",
            "gate the metrics that must not regress (then they settle too), or use `warn` with "
            "stop_when_settled",
        )
    notes = []
    suites = {s.name: s for s in plan.suites}
    for i, gate in enumerate(plan.config.gates):
        spec = suites[gate.suite].scorer(gate.metric) if gate.suite in suites else None
        if spec is not None and None in spec.bounds:
            label = gate.label(plan.directions().get((gate.suite, gate.metric), True))
            notes.append(
                f"{plan.where('gates', i)}: gates[{i}] ({label}): `{gate.metric}` has no known"
                f" range, so no sequence can settle it early: {gate.suite} runs to its last case"
                " for it"
            )
    return notes
