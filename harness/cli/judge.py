"""`harness judge calibrate`: how far a judge agrees with a rubric's labeled set; the exit code says
whether it meets the rubric's bar."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

from harness.cli.options import add_store, open_store
from harness.cli.output import num, out
from harness.core.console import SafeTable as Table
from harness.core.console import styled
from harness.core.errors import HarnessError
from harness.core.models import DEFAULT_MODEL
from harness.serving.engines import MODEL_ENGINES


def add(sub: argparse._SubParsersAction) -> None:
    judges = sub.add_parser("judge", help="LLM-as-judge rubrics").add_subparsers(
        dest="judge_command", required=True
    )
    check = judges.add_parser(
        "calibrate",
        aliases=["check"],
        help=(
            "how far a judge agrees with a rubric's labeled calibration set; exit 0 when it "
            "meets the rubric's bar (min_agreement), 1 when not (`check`: the older name)"
        ),
    )
    check.add_argument("rubric", help="a rubric in judges/ by name, or a rubric .yaml path")
    check.add_argument(
        "--config", help="take the judge (model or endpoint), engine and seed from this config"
    )
    check.add_argument(
        "--judge",
        metavar="MODEL",
        help=(
            "a local judge model (alias or HF folder); overrides the "
            f"config's (default: {DEFAULT_MODEL})"
        ),
    )
    check.add_argument(
        "--method",
        choices=["auto", "logprobs", "structured"],
        help="how answers are read (default: the config's judge.method, else auto)",
    )
    check.add_argument(
        "--engine", choices=MODEL_ENGINES, help="what serves a local judge (default vllm)"
    )
    add_store(check, purpose="where answers and results are cached; the run store")
    check.add_argument(
        "--no-cache",
        action="store_true",
        help="ask the judge again instead of using cached answers",
    )
    check.set_defaults(func=calibrate)


def calibrate(args: argparse.Namespace) -> int:
    """Exit 0 when the judge meets the rubric's bar, 1 when it does not, 2 on an error."""
    from harness.judging.asking import Answerer
    from harness.judging.calibrate import calibrate_judge
    from harness.planning.config import JudgeConfig, load_config
    from harness.planning.judge import judge_for
    from harness.scoring.calibration import read_counts, reading
    from harness.scoring.rubrics import builtin_names, load_rubric, rubric_path
    from harness.serving.engines import switched
    from harness.serving.pool import Engines
    from harness.serving.settings import VllmConfig

    path = rubric_path(args.rubric, Path.cwd())
    if not path.is_file():
        raise HarnessError(
            f"no rubric {args.rubric!r} ({path})\n  fix: name one of {', '.join(builtin_names())} "
            "or a rubric .yaml path"
        )
    rubric = load_rubric(path)
    if rubric.calibration is None:
        raise HarnessError(
            f"{path}: the rubric names no calibration set\n"
            "  fix: add `calibration: FILE.jsonl` (labeled items; see judges/calibration/)"
        )
    judge, engine, seed, model, base_dir = JudgeConfig(), VllmConfig(), 0, DEFAULT_MODEL, Path.cwd()
    if args.config:
        loaded = load_config(args.config)
        judge, engine, seed, model = (
            loaded.config.judge,
            loaded.config.engine,
            loaded.config.seed,
            loaded.config.model,
        )
        base_dir = loaded.base_dir
    if args.judge:
        judge = judge.model_copy(update={"model": args.judge, "endpoint": None})
    if args.method:
        judge = judge.model_copy(update={"method": args.method})
    if args.engine:
        engine = switched(engine, args.engine)
    who = judge_for(judge, model, base_dir, engine)
    with (
        open_store(args.store, writes=True, create=True) as store,
        Engines() as engines,
        ExitStack() as stack,
    ):
        answerer = Answerer(
            who,
            store,
            engines,
            engine,
            seed,
            store.folder / "judge-checks",
            stack,
            use_cache=not args.no_cache,
        )
        check = calibrate_judge(answerer, rubric, judge)
    assert check is not None  # the rubric has a calibration set
    table = Table(
        "rubric",
        "judge",
        "read by",
        "statistic",
        "value [95% CI]",
        "bar",
        "items",
        "unanswered",
        "spearman",
        "pass/fail kappa",
        "exact",
        "flip rate",
        "1st position wins",
    )
    table.add_row(
        check.rubric,
        check.judge,
        read_counts(check.as_dict()),
        check.statistic,
        num(check.value)
        + (f" [{check.ci_low:.2f}, {check.ci_high:.2f}]" if check.ci_low is not None else ""),
        f"{check.min_agreement:g}",
        str(check.items),
        str(check.unusable),
        num(check.spearman),
        num(check.pass_fail_kappa),
        num(check.exact_agreement),
        num(check.flip_rate),
        num(check.first_position_rate),
    )
    out.print(table)
    style = "bold green" if check.validated else "bold red"
    out.print(
        styled(
            ("VALIDATED" if check.validated else "NOT VALIDATED", style),
            f": {check.judge} on {check.rubric}: {check.sentence()}; {reading(check.as_dict())}",
        )
    )
    return 0 if check.validated else 1
