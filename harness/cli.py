"""The command line: parse, call the pipeline, map the verdict to the exit code (0 ship, 1 not, 2 error)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rich.table import Column
from rich.text import Text

from harness.core.console import SafeConsole, inert_lines, styled
from harness.core.console import SafeTable as Table
from harness.core.console import console as err
from harness.core.errors import HarnessError, ProblemsFound
from harness.core.progress import quiet_library_bars
from harness.serving.settings import MODEL_ENGINES
from harness.verdict.gate import (
    DO_NOT_SHIP,
    ERROR,
    EXIT_CODES,
    LABELS,
    SHIP,
    regression_text,
    regressions_heading,
    ungated,
)

if TYPE_CHECKING:
    from harness.store.store import Store

# The stages import torch, transformers and vLLM's client: each command imports what it runs, so
# `harness --help` and `harness runs` answer at once.

out = SafeConsole(width=None if sys.stdout.isatty() else 160)

EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 130, 143
DEFAULT_STORE = "reports/harness.sqlite"
STORE_ENV = "HARNESS_STORE"
STORE_HELP = (f"the run store: a SQLite path, a postgresql://USER@HOST:PORT/DATABASE URL, or env:NAME (a variable "
              f"holding the URL; a password is read from there, never shown) (default: ${STORE_ENV}, else ")


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so every `finally` (server shutdown) runs."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def cmd_run(args: argparse.Namespace) -> int:
    """compare and drift: the same pipeline; drift compares with a pinned run."""
    from harness.pipeline import run
    from harness.report.ci import FAIL, NO_DATA, PASS, gate_status
    from harness.runs import publish_to_ci

    outcome = run(args.config, kind=args.command, out=args.out, store=args.store, use_cache=not args.no_cache,
                  retrain=args.retrain, resume=args.resume, against=getattr(args, "against", None),
                  settle=args.stop_when_settled, fail_fast=args.fail_fast)
    verdict, results = outcome.verdict, outcome.results
    style = {SHIP: "bold green", DO_NOT_SHIP: "bold red", ERROR: "bold yellow"}[verdict.decision]
    colour = {PASS: "green", FAIL: "red", NO_DATA: "yellow"}
    table = Table("gate", "value", "result", "why")
    for gate in results["verdict"]["gates"]:
        status = gate_status(gate)
        table.add_row(gate["rule"], "—" if gate["value"] is None else f"{gate['value']:.3f}",
                      Text(status, style=colour[status]), gate["reason"])
    out.print(table)
    out.print(styled((LABELS[verdict.decision], style), f": {verdict.reason}"))
    regressions = ungated(results["verdict"])
    if regressions:
        out.print(styled((regressions_heading(regressions), "bold red" if regressions[0]["blocks"] else "bold yellow")))
        out.print(*(f"  {regression_text(r)}" for r in regressions), sep="\n")
    out.print(*(f"{kind}: {path}" for kind, path in outcome.files.items()), sep="\n")
    publish_to_ci(outcome, os.environ, lambda line: print(line, flush=True))
    return EXIT_CODES[verdict.decision]


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when the config is ready to run, 2 with every problem listed."""
    from harness.planning.check import check

    checked = check(args.config, settle=args.stop_when_settled)
    plan = checked.ready()
    for note in checked.notes:
        err.print(f"note: {note}", highlight=False)
    cases = sum(len(s.cases) for s in plan.suites)
    out.print(f"ok: {args.config}: {len(plan.config.candidates)} candidates, {len(plan.suites)} suites "
              f"({cases} cases), {len(plan.config.gates)} gates; every suite, rubric, gate, model and data file "
              "checked, no model started", highlight=False)
    return 0


def _open_store(flag: str | None, writes: bool = False, create: bool = False) -> "Store":
    """The store a command names (--store, else HARNESS_STORE, else the default file), opened read-only unless the
    command `writes` (a command that only reads neither makes, upgrades nor changes a store); a writing command
    that reads runs refuses a SQLite path with no store, unless it may `create` one (a cache)."""
    from harness.store.location import locate
    from harness.store.store import Store
    from harness.store.upgrade import no_store

    location = locate(flag, Path(DEFAULT_STORE))
    if writes and not create and location.path is not None and not location.path.exists():
        raise no_store(location.shown, "no such file")
    return Store(location, read_only=not writes)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.core.paths import inside
    from harness.report import write_reports
    from harness.runs import unfinished

    with _open_store(args.store) as store:
        record = store.run(args.run)
        if record is None:
            known = ", ".join(store.runs()["run_id"].tolist()[-5:]) or "(none)"
            raise HarnessError(f"no run {args.run!r} in {store.where}\n  fix: one of: {known}")
        if record["status"] != "finished":
            what, resume = unfinished(record)
            err.print(f"warning: {what}: the reports show what is stored; finish it with: {resume}",
                      style="bold yellow")
        files = write_reports(store, args.run, Path(args.out) if args.out else inside(store.folder, args.run))
    out.print(*(f"{kind}: {path}" for kind, path in files.items()), sep="\n")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from harness.core.paths import inside
    from harness.report.diff import diff_runs, render_diff_html

    with _open_store(args.store) as store:
        diff = diff_runs(store, args.run_a, args.run_b)
    table = Table("candidate", "suite", "metric", f"A {args.run_a[-9:]}", f"B {args.run_b[-9:]}", "Δ B-A [CI]",
                  "p (test)", "n", "reads")
    for row in diff.rows:
        table.add_row(row["candidate"], row["suite"], row["metric"], _num(row["baseline_mean"]),
                      _num(row["candidate_mean"]), f"{row['delta']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]",
                      f"{row['p_value']:.3g} ({row['test']})" if row["p_value"] is not None else "—", str(row["n"]),
                      row["outcome"])
    out.print(table)
    for skipped in diff.skipped:
        err.print(f"not compared: {skipped}", highlight=False)
    path = Path(args.out) if args.out else inside(store.folder, f"diff-{args.run_a}-{args.run_b}.html")
    path.write_text(render_diff_html(diff))
    out.print(f"html: {path}")
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    from harness.runs import pin

    with _open_store(args.store, writes=True) as store:
        warning = pin(store, args.run, args.name, force=args.force)
    if warning:
        err.print(warning, style="bold yellow")
    out.print(f"pinned {args.run} as {args.name!r}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from harness.building.kinds import LoraCandidate
    from harness.building.training import train_adapter
    from harness.planning.config import load_config
    from harness.planning.plan import make_plan

    plan = make_plan(load_config(args.config))
    candidate = next((c for c in plan.config.candidates if c.name == args.candidate), None)
    if not isinstance(candidate, LoraCandidate) or candidate.train is None:
        trainable = [c.name for c in plan.config.candidates if isinstance(c, LoraCandidate) and c.train]
        raise HarnessError(f"{args.config}: no lora candidate {args.candidate!r} with a `train:` block\n"
                           f"  fix: use one of: {', '.join(trainable) or '(none in this config)'}")
    settings = candidate.train
    result = train_adapter(plan.models[candidate.name], settings, plan.resolve_path(settings.data),
                           retrain=args.retrain, accelerate_config=plan.resolve_path(settings.accelerate_config)
                           if settings.accelerate_config else None)
    out.print(f"adapter {'reused' if result.reused else 'trained'}: {result.path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Keep the config's base models served until Ctrl-C; `compare` and `drift` runs whose server would be the
    same (command, weights, seed) use it instead of starting their own. Servers with adapters are never shared."""
    import time

    from harness.planning.config import load_config
    from harness.planning.plan import make_plan
    from harness.serving.shared import REGISTRY_ENV, registry_dir
    from harness.serving.vllm_server import shared_server

    plan = make_plan(load_config(args.config))
    registry = registry_dir()
    if registry is None:
        raise HarnessError(f"{REGISTRY_ENV} is set but empty, so no run could attach to a shared server\n"
                           f"  fix: unset it (the default registry is in the harness home) or name a folder")
    if plan.config.engine.kind != "vllm":
        raise HarnessError(f"{args.config}: engine.kind is {plan.config.engine.kind!r}; only vllm servers are shared"
                           f"\n  fix: set `engine: {{kind: vllm}}`")
    models = [model for model, _ in plan.by_model()]
    if not models:
        raise HarnessError(f"{args.config}: no candidate runs on a local model, so there is nothing to serve")
    with ExitStack() as stack:
        for model in models:
            url = stack.enter_context(shared_server(model, registry / f"logs-{model.name}", plan.config.engine,
                                                    plan.config.seed, registry))
            out.print(f"serving {model.name} at {url} (registered in {registry}); Ctrl-C stops it", highlight=False)
        while True:
            time.sleep(3600)


def cmd_judge_calibrate(args: argparse.Namespace) -> int:
    """Exit 0 when the judge meets the rubric's bar, 1 when it does not, 2 on an error."""
    from harness.core.models import DEFAULT_MODEL
    from harness.judging.asking import Answerer
    from harness.judging.calibrate import calibrate_judge
    from harness.planning.config import JudgeConfig, load_config
    from harness.planning.judge import judge_for
    from harness.scoring.calibration import read_counts, reading
    from harness.scoring.rubrics import load_rubric, rubric_path
    from harness.serving.pool import Engines
    from harness.serving.settings import EngineConfig

    path = rubric_path(args.rubric, Path.cwd())
    if not path.is_file():
        from harness.scoring.rubrics import builtin_names

        raise HarnessError(f"no rubric {args.rubric!r} ({path})\n  fix: name one of {', '.join(builtin_names())} "
                           "or a rubric .yaml path")
    rubric = load_rubric(path)
    if rubric.calibration is None:
        raise HarnessError(f"{path}: the rubric names no calibration set\n"
                           "  fix: add `calibration: FILE.jsonl` (labeled items; see judges/calibration/)")
    judge, engine, seed, model, base_dir = JudgeConfig(), EngineConfig(), 0, DEFAULT_MODEL, Path.cwd()
    if args.config:
        loaded = load_config(args.config)
        judge, engine, seed, model = loaded.config.judge, loaded.config.engine, loaded.config.seed, loaded.config.model
        base_dir = loaded.base_dir
    if args.judge:
        judge = judge.model_copy(update={"model": args.judge, "endpoint": None})
    if args.method:
        judge = judge.model_copy(update={"method": args.method})
    if args.engine:
        engine = engine.model_copy(update={"kind": args.engine})
    who = judge_for(judge, model, base_dir, engine)
    with _open_store(args.store, writes=True, create=True) as store, Engines() as engines, ExitStack() as stack:
        answerer = Answerer(who, store, engines, engine, seed, store.folder / "judge-checks", stack,
                            use_cache=not args.no_cache)
        check = calibrate_judge(answerer, rubric, judge)
    assert check is not None  # the rubric has a calibration set
    table = Table("rubric", "judge", "read by", "statistic", "value [95% CI]", "bar", "items", "unanswered",
                  "spearman", "pass/fail kappa", "exact", "flip rate", "1st position wins")
    table.add_row(check.rubric, check.judge, read_counts(check.as_dict()), check.statistic,
                  _num(check.value) + (f" [{check.ci_low:.2f}, {check.ci_high:.2f}]" if check.ci_low is not None
                                       else ""), f"{check.min_agreement:g}", str(check.items), str(check.unusable),
                  _num(check.spearman), _num(check.pass_fail_kappa), _num(check.exact_agreement),
                  _num(check.flip_rate), _num(check.first_position_rate))
    out.print(table)
    style = "bold green" if check.validated else "bold red"
    out.print(styled(("VALIDATED" if check.validated else "NOT VALIDATED", style),
                     f": {check.judge} on {check.rubric}: {check.sentence()}; {reading(check.as_dict())}"))
    return 0 if check.validated else 1


def cmd_store_copy(args: argparse.Namespace) -> int:
    from harness.store.copy import copy_between
    from harness.store.location import parse

    source, target = parse(args.source, "FROM"), parse(args.target, "TO")
    copied = copy_between(source, target, lambda table, rows: err.log(f"{table}: {rows} rows copied"))
    if copied.skipped:
        err.print(f"warning: {len(copied.skipped)} run(s) not copied, their ids not plain names (a run's files go to "
                  f"a folder named by its id): {', '.join(sorted(map(repr, copied.skipped)))}", style="bold yellow",
                  soft_wrap=True, highlight=False)
    table = Table("table", "rows copied", f"rows in {target.shown}")
    for name, rows in copied.rows.items():
        table.add_row(name, str(rows), str(copied.there[name]))
    out.print(table)
    out.print(f"copied {sum(copied.rows.values())} rows from {source.shown} to {target.shown}", highlight=False)
    return 0


def cmd_store_info(args: argparse.Namespace) -> int:
    """Read-only: an older store is shown as it is, with the command that upgrades it."""
    from harness.store.copy import counts
    from harness.store.schema import SCHEMA_VERSION

    with _open_store(args.store) as store:
        rows = counts(store)
        older = f"; this harness writes {SCHEMA_VERSION}: `harness store upgrade` brings it there" \
            if store.version < SCHEMA_VERSION else ""
        out.print(f"store: {store.where} ({store.location.engine}, schema {store.version}{older})", highlight=False)
    _print_counts(rows)
    return 0


def cmd_store_upgrade(args: argparse.Namespace) -> int:
    """An older store brought to this harness's schema in place (what any writing command does on opening it)."""
    from harness.store.copy import counts
    from harness.store.schema import SCHEMA_VERSION

    with _open_store(args.store, writes=True) as store:
        rows = counts(store)
        had = "" if store.upgraded_from == SCHEMA_VERSION else f", upgraded from {store.upgraded_from}"
        out.print(f"store: {store.where} ({store.location.engine}, schema {SCHEMA_VERSION}{had})", highlight=False)
    _print_counts(rows)
    return 0


def _print_counts(rows: dict[str, int]) -> None:
    table = Table("table", "rows")
    for name, count in rows.items():
        table.add_row(name, str(count))
    out.print(table)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def cmd_runs(args: argparse.Namespace) -> int:
    with _open_store(args.store) as store:
        runs = store.runs()
    table = Table("name", "kind", "created", "status", "verdict", "against")
    table.columns.insert(0, Column("run", no_wrap=True))
    for r in runs.itertuples(index=False):
        status = f"{r.status}: {r.reason.splitlines()[0][:100]}" if r.reason else r.status
        table.add_row(r.run_id, r.name, r.kind, r.created_at, status, r.decision or "—", r.against or "")
    out.print(table)
    return 0


def cmd_models_pull(args: argparse.Namespace) -> int:
    from harness.core.models import pull

    for alias in args.alias:
        pull(alias, log=err.log)
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from harness.core.models import cached

    table = Table("alias", "source", "size (MB)", "fingerprint", "path")
    for m in cached():
        table.add_row(m["alias"], m["source"], str(m["size_mb"]), m["fingerprint"][:16], m["path"])
    out.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from harness.core.models import DEFAULT_MODEL

    parser = argparse.ArgumentParser(prog="harness",
                                     description="Decide whether a fine-tuned LLM is good enough to ship.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    for name, text in (("compare", "run every candidate on every suite, gate, report; exit code = verdict"),
                       ("drift", "run the config's suites and compare with the pinned run (`drift: {baseline: PIN}`)")):
        command = sub.add_parser(name, help=text)
        command.add_argument("config", help="path to a config YAML (see configs/)")
        command.add_argument("--out", help="folder for run folders and the store "
                                           "(default: the config's output_dir, else ./reports)")
        command.add_argument("--store", help=STORE_HELP + "the config's `store:`, else <output folder>/harness.sqlite)")
        command.add_argument("--no-cache", action="store_true", help="ignore cached responses and generate everything")
        command.add_argument("--retrain", action="store_true",
                             help="train LoRA adapters even when a cached one matches")
        command.add_argument("--resume", metavar="RUN",
                             help="continue a crashed or killed run; stored rows are not redone")
        command.add_argument("--stop-when-settled", action="store_true",
                             help="run cases in a seeded random order, in waves, and stop once every gate is settled "
                                  "by an anytime-valid sequence (as `stop_when_settled: true` in the config)")
        command.add_argument("--fail-fast", action="store_true",
                             help="with --stop-when-settled: stop at the first gate that fails decisively")
        if name == "compare":
            command.add_argument("--against", metavar="RUN",
                                 help="a stored run (id or pin name) whose scores are the baseline side of relative "
                                      "gates: each candidate compared with itself there (its suites must be unchanged)")
        command.set_defaults(func=cmd_run)

    checking = sub.add_parser("check", help="validate a config, its suites, rubrics, gates, models and data; every "
                                            "problem at once, no model started; exit 0 or 2")
    checking.add_argument("config", help="path to a config YAML")
    checking.add_argument("--stop-when-settled", action="store_true",
                          help="also check what a settled run of it can do (the config's stop_when_settled does too)")
    checking.set_defaults(func=cmd_check)

    train = sub.add_parser("train", help="train a lora candidate's adapter alone and print where it is")
    train.add_argument("config")
    train.add_argument("--candidate", required=True, help="name of a `kind: lora` candidate with a `train:` block")
    train.add_argument("--retrain", action="store_true", help="train even when a cached adapter matches")
    train.set_defaults(func=cmd_train)

    pin = sub.add_parser("pin", help="mark a stored run as a named baseline for `harness drift`")
    pin.add_argument("run")
    pin.add_argument("--as", dest="name", required=True, help="the pin name a config's `drift: {baseline: NAME}` uses")
    pin.add_argument("--store", help=STORE_HELP + f"{DEFAULT_STORE})")
    pin.add_argument("--force", action="store_true", help="pin even a run whose verdict was ERROR (says so loudly)")
    pin.set_defaults(func=cmd_pin)

    diff = sub.add_parser("diff", help="per-metric deltas with CIs between two stored runs (B minus A, each "
                                       "candidate paired with itself, case by case); writes an HTML page too")
    diff.add_argument("run_a", help="the earlier run id")
    diff.add_argument("run_b", help="the later run id")
    diff.add_argument("--store", help=STORE_HELP + f"{DEFAULT_STORE})")
    diff.add_argument("--out", help="where to write the HTML (default: beside the store)")
    diff.set_defaults(func=cmd_diff)

    report = sub.add_parser("report", help="re-render a stored run's report files")
    report.add_argument("run", help="run id (see `harness runs`)")
    report.add_argument("--store", help=STORE_HELP + f"{DEFAULT_STORE})")
    report.add_argument("--out", help="the folder for the run's files (default: RUN beside a SQLite store, else "
                                      "reports/RUN)")
    report.set_defaults(func=cmd_report)
    runs = sub.add_parser("runs", help="list stored runs")
    runs.add_argument("--store", help=STORE_HELP + f"{DEFAULT_STORE})")
    runs.set_defaults(func=cmd_runs)

    stores = sub.add_parser("store", help="the run store").add_subparsers(dest="store_command", required=True)
    copying = stores.add_parser("copy", help="copy runs, pins, history, cached answers and judge checks from one store "
                                             "to another (SQLite and PostgreSQL, either way); idempotent")
    copying.add_argument("source", metavar="FROM", help="a SQLite path, a postgresql:// URL, or env:NAME (only read)")
    copying.add_argument("target", metavar="TO", help="the same kinds; made (or upgraded) when needed")
    copying.set_defaults(func=cmd_store_copy)
    info = stores.add_parser("info", help="where the store is, its schema version and its rows per table "
                                          "(read-only: an older store is shown as it is)")
    info.add_argument("--store", help=STORE_HELP + f"{DEFAULT_STORE})")
    info.set_defaults(func=cmd_store_info)
    upgrading = stores.add_parser("upgrade", help="bring an older store to this harness's schema in place, as any "
                                                  "writing command does (commands that only read never do)")
    upgrading.add_argument("--store", help=STORE_HELP + f"{DEFAULT_STORE})")
    upgrading.set_defaults(func=cmd_store_upgrade)

    judges = sub.add_parser("judge", help="LLM-as-judge rubrics").add_subparsers(dest="judge_command", required=True)
    check = judges.add_parser("calibrate", aliases=["check"],
                              help="how far a judge agrees with a rubric's labeled calibration set; exit 0 when it "
                                   "meets the rubric's bar (min_agreement), 1 when not (`check`: the older name)")
    check.add_argument("rubric", help="a rubric in judges/ by name, or a rubric .yaml path")
    check.add_argument("--config", help="take the judge (model or endpoint), engine and seed from this config")
    check.add_argument("--judge", metavar="MODEL", help="a local judge model (alias or HF folder); overrides the "
                                                        f"config's (default: {DEFAULT_MODEL})")
    check.add_argument("--method", choices=["auto", "logprobs", "structured"],
                       help="how answers are read (default: the config's judge.method, else auto)")
    check.add_argument("--engine", choices=MODEL_ENGINES, help="what serves a local judge (default vllm)")
    check.add_argument("--store", help="where answers and results are cached; " + STORE_HELP + f"{DEFAULT_STORE})")
    check.add_argument("--no-cache", action="store_true", help="ask the judge again instead of using cached answers")
    check.set_defaults(func=cmd_judge_calibrate)

    serve = sub.add_parser("serve", help="keep a config's base models served between runs; runs with the same "
                                         "engine settings, seed and weights attach instead of starting a server")
    serve.add_argument("config", help="path to a config YAML: its models, engine and seed")
    serve.set_defaults(func=cmd_serve)

    models = sub.add_parser("models", help="the model cache").add_subparsers(dest="models_command", required=True)
    pull = models.add_parser("pull", help="fetch and convert embedded models (idempotent)")
    pull.add_argument("alias", nargs="*", default=[DEFAULT_MODEL])
    pull.set_defaults(func=cmd_models_pull)
    models.add_parser("list", help="show cached models").set_defaults(func=cmd_models_list)
    return parser


def _debug(args: argparse.Namespace) -> None:
    """With --debug, the traceback: as inert as any error (its last line quotes the message)."""
    if args.debug:
        print(inert_lines(traceback.format_exc()), end="", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    quiet_library_bars()  # before any command imports a library that reads its setting once
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ProblemsFound as exc:  # `harness check`, or a run refusing its config: each problem on its own
        _debug(args)
        err.print(styled((str(exc), "bold red"), ":"))
        for problem in exc.problems:
            print(inert_lines(f"error: {problem}"), file=sys.stderr)
        return EXIT_ERROR
    except HarnessError as exc:
        _debug(args)
        print(inert_lines(f"error: {exc}"), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:  # an unexpected failure is still exit 2, with the details on request
        _debug(args)
        if not args.debug:
            print(inert_lines(f"error: {type(exc).__name__}: {exc}\n  (run with --debug for the traceback)"),
                  file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
