"""Which way of reading a judge agrees better with people: G-Eval (the first token's probabilities)
or structured output (a JSON reply with reasons)? Every shipped rubric's calibration set, judged
both ways by the same judge through one engine; printed: each rubric's agreement both ways, with
intervals, and the time each way took.

This is the measurement behind `judge.method: auto` (docs/judges.md). Baseline: structured output,
what the harness did before; the ratio is G-Eval's time over structured's.

    .venv/bin/python bench/judges.py [--judge MODEL] [--engine vllm|transformers] [--smoke]

`--smoke`: the scripted engine (a judge that always answers 3 / yes / A), so the fast tests keep
this working.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from harness.core.models import DEFAULT_MODEL
from harness.judging.asking import Answerer
from harness.judging.calibrate import JudgeCalibration, calibrate_judge
from harness.planning.config import JudgeConfig
from harness.planning.judge import judge_for
from harness.scoring.rubrics import builtin_names, judges_dir, load_rubric
from harness.serving.engines import ENGINES, MODEL_ENGINES
from harness.serving.pool import Engines
from harness.serving.settings import EngineSettings, ScriptedConfig, ScriptRule
from harness.store.store import Store

METHODS = ("structured", "logprobs")
SMOKE_RULES = [
    ScriptRule(contains=f'"{key}": ', answer=f'{{"reasoning": "r", "{key}": {value}}}')
    for key, value in (("score", "3"), ("answer", '"yes"'), ("winner", '"A"'))
] + [ScriptRule(top_logprobs=[("3", -0.5), ("4", -1.2), ("yes", -0.3), ("A", -0.2)])]


def measure(
    judge_name: str, engine: EngineSettings, folder: Path
) -> list[tuple[str, JudgeCalibration, float]]:
    """(method, check, seconds) per rubric and method, through one engine (a local judge starts
    once)."""
    rubrics = [load_rubric(judges_dir() / f"{name}.yaml") for name in builtin_names()]
    judge = judge_for(JudgeConfig(model=judge_name), DEFAULT_MODEL, Path.cwd(), engine)
    out = []
    with Store(folder / "store.sqlite") as store, Engines() as engines, ExitStack() as stack:
        answerer = Answerer(judge, store, engines, engine, 0, folder, stack)
        answerer.open()  # started before the clock runs, so both ways are timed on a ready engine
        for method in METHODS:
            for rubric in rubrics:
                started = time.perf_counter()
                check = calibrate_judge(answerer, rubric, JudgeConfig(method=method))
                assert check is not None, f"{rubric.name} has no calibration set"
                out.append((method, check, time.perf_counter() - started))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--judge", default=DEFAULT_MODEL, help="a local judge model (alias or HF folder)"
    )
    parser.add_argument("--engine", default="vllm", choices=MODEL_ENGINES)
    parser.add_argument("--smoke", action="store_true", help="the scripted engine, for the tests")
    args = parser.parse_args(argv)
    engine = (
        ScriptedConfig(script=SMOKE_RULES) if args.smoke else ENGINES.load(args.engine).settings()
    )
    with tempfile.TemporaryDirectory() as folder:
        results = measure(args.judge, engine, Path(folder))
    print(
        f"{'rubric':<14}{'method':<12}{'statistic':<26}{'value [95% CI]':<22}{'unanswered':>11}{'seconds':>9}"
    )
    for method, check, seconds in results:
        ci = f"[{check.ci_low:.2f}, {check.ci_high:.2f}]" if check.ci_low is not None else ""
        value = "undefined" if check.value is None else f"{check.value:.2f}"
        print(
            f"{check.rubric:<14}{method:<12}{check.statistic:<26}{value + ' ' + ci:<22}{check.unusable:>11}"
            f"{seconds:>9.1f}"
        )
    took = {m: sum(s for method, _, s in results if method == m) for m in METHODS}
    print(
        f"logprobs took {took['logprobs'] / max(took['structured'], 1e-9):.2f}x the time of"
        f" structured output ({took['logprobs']:.0f} s vs {took['structured']:.0f} s)"
    )


if __name__ == "__main__":
    main()
