"""`harness check CONFIG`: everything the plan validates, every problem at once, no model started.

The config (every key pydantic rejects: unknown keys, non-finite numbers, sizes past their limits, crossed
bounds), each suite and its cases against their scorers, each rubric and its calibration set, each gate against
what its candidates can have and the values its metric can take, the models (converted and cached, or a local
folder), adapter folders and training data, RAG documents, the judge's model, the API keys the endpoints need
(in the environment, named, never shown) and the output folder (probed with a file). Each check runs on its own,
so one broken suite does not hide a typo in a gate, and a key pydantic rejects hides only the checks that need it
(a misspelt kind leaves the other candidates, the suites and the gates checked). Fast enough for a pre-commit
hook: no model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import HarnessError, Problems, ProblemsFound
from harness.planning.config import DriftConfig, read_config
from harness.planning.judge import judge_metrics, judge_model
from harness.planning.plan import Plan, make_plan


@dataclass(frozen=True)
class Checked:
    path: Path
    plan: Plan | None  # None when the file could not be read as a config
    problems: list[HarnessError]  # each once, in the order of the config's lines

    def ready(self) -> Plan:
        """The plan to run, or ProblemsFound listing every problem."""
        if self.problems or self.plan is None:
            raise ProblemsFound(str(self.path), self.problems)
        return self.plan


def check(path: str | Path, out: str | None = None, against: str | None = None) -> Checked:
    """Every problem of the config at `path` and what it names. A run plans through here too, and refuses with
    the list: `out` is its `--out` folder (checked in place of `output_dir`), `against` a stored run whose scores
    are the baseline side of relative gates (as a drift config's pin is)."""
    path, problems = Path(path), Problems()
    loaded = read_config(path, problems)
    if loaded is None:
        return Checked(path, None, problems.listed(str(path)))
    if against is not None:
        loaded = loaded.model_copy(update={"config": loaded.config.model_copy(
            update={"drift": DriftConfig(baseline=against)})})
    plan = make_plan(loaded, problems, out)
    judge = plan.config.judge
    needs = ("judge", "model") if judge.model is None and judge.endpoint is None else ("judge",)  # model: the default
    if judge_metrics(plan) and loaded.validated(*needs):
        with problems.unit(plan.where("judge")):
            judge_model(plan)
    return Checked(path, plan, problems.listed(str(path)))
