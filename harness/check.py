"""`harness check CONFIG`: everything the plan validates, every problem at once, no model started.

The config (every key pydantic rejects: unknown keys, non-finite numbers, sizes past their limits, crossed
bounds), each suite and its cases against their scorers, each rubric and its calibration set, each gate against
what its candidates can have and the values its metric can take, the models (converted and cached, or a local
folder), adapter folders and training data, RAG documents, the judge's model, the API keys the endpoints need
(in the environment, named, never shown) and the output folder (probed with a file). Each check runs on its own,
so one broken suite does not hide a typo in a gate. Fast enough for a pre-commit hook: no model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config import read_config
from harness.errors import HarnessError, Problems
from harness.judging import judge_metrics
from harness.judging.asking import judge_model
from harness.plan import Plan, make_plan


@dataclass(frozen=True)
class Checked:
    plan: Plan | None  # None when the config itself did not validate
    problems: list[HarnessError]


def check(path: str | Path) -> Checked:
    problems = Problems()
    loaded = read_config(path, problems)
    if loaded is None:
        return Checked(None, problems.found)
    plan = make_plan(loaded, problems)
    if judge_metrics(plan):
        with problems.unit():
            judge_model(plan)
    return Checked(plan, problems.found)
