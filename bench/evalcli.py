"""harness against the eval CLI a user would pick instead (lm-evaluation-harness, `lm_eval`), on one
job.

The job: the first N ticket cases (suites/tickets) answered by two candidates, the base model and a
LoRA adapter served beside it, greedy, at most 64 new tokens, each answer checked for valid JSON and
the right category. Both tools start from nothing: a fresh vLLM server (the same launcher, so the
same arguments) and a fresh process.

  harness           `harness compare` on a two-candidate config, --no-cache: its wall time (plan, server
                    start, generation, scoring, statistics, report)
  lm-eval @C        vLLM started by the harness's launcher, then `lm_eval --model local-chat-completions`
                    once per candidate with num_concurrent=C: server start + both CLI runs
                    (C=8: the setting the speed issue measured; C=32: the harness's own default on CPU)

Ratio: harness wall time / lm-eval wall time (the issue's goal: <= 0.8). The bench asserts that both
tools got the same answers (same prompts, same server settings), so the times compare the same work.

    .venv/bin/python bench/evalcli.py [--n 32]
    .venv/bin/python bench/evalcli.py --server URL --n 2     # smoke: one base-model candidate on a running
                                                             # server (no server start, no adapter)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import yaml
from lora_isolation import random_adapter

from harness.core.models import DEFAULT_MODEL, ModelRef, pull
from harness.serving.base import Adapter
from harness.serving.settings import VllmConfig
from harness.serving.vllm_server import managed_server

ROOT = Path(__file__).resolve().parent.parent
MAX_TOKENS = 64
ADAPTER = "tickets-lora"
# lm-eval's per-answer checks: the same two the harness suite scores (json_valid, the category
# field).
LMEVAL_UTILS = """import json


def process_results(doc, results):
    try:
        got = json.loads(results[0])
    except ValueError:
        return {"json_valid": 0.0, "category_match": 0.0}
    category = json.loads(doc["reference"])["category"]
    return {"json_valid": 1.0, "category_match": float(isinstance(got, dict) and got.get("category") == category)}
"""


def write_cases(folder: Path, n: int) -> Path:
    lines = (ROOT / "suites/tickets/cases.jsonl").read_text().splitlines()[:n]
    path = folder / "cases.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def harness_config(folder: Path, cases: Path, candidates: list[dict]) -> Path:
    (folder / "suite").mkdir()
    (folder / "suite" / "suite.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "tickets",
                "cases": str(cases),
                "generation": {"max_tokens": MAX_TOKENS},
                "scorers": [
                    "json_valid",
                    {"type": "json_fields", "name": "category_match", "fields": ["category"]},
                ],
            }
        )
    )
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "evalcli",
                "model": DEFAULT_MODEL,
                "seed": 0,
                "engine": "vllm",
                "generation": {"temperature": 0.0},
                "candidates": candidates,
                "baseline": candidates[0]["name"],
                "suites": ["suite"],
                "output_dir": str(folder / "reports"),
                "gates": [
                    {
                        "candidate": candidates[-1]["name"],
                        "suite": "tickets",
                        "metric": "json_valid",
                        "min": 0,
                    }
                ],
            }
        )
    )
    return config


def harness_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "harness"), *args], capture_output=True, text=True
    )


def run_harness(config: Path) -> tuple[float, dict[tuple[str, str], str]]:
    """Wall time of `harness compare`, and its answers by (served name, case id)."""
    started = time.perf_counter()
    done = harness_cli("compare", str(config), "--no-cache")
    seconds = time.perf_counter() - started
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(next((config.parent / "reports").glob("*/results.json")).read_text())
    served = {c["candidate"]: c["request"]["model"] for c in results["cases"]}
    return seconds, {(served[c["candidate"]], c["case_id"]): c["output"] for c in results["cases"]}


def lmeval_task(folder: Path, cases: Path) -> Path:
    tasks = folder / "lmeval_tasks"
    tasks.mkdir()
    (tasks / "utils.py").write_text(LMEVAL_UTILS)
    (tasks / "tickets.yaml").write_text(
        yaml.safe_dump(
            {
                "task": "harness_tickets",
                "dataset_path": "json",
                "dataset_kwargs": {"data_files": {"test": str(cases)}},
                "test_split": "test",
                "output_type": "generate_until",
                "doc_to_text": "{{prompt}}",
                "doc_to_target": "{{reference}}",
                "generation_kwargs": {
                    "max_gen_toks": MAX_TOKENS,
                    "temperature": 0.0,
                    "do_sample": False,
                    "until": [],
                },
                "metric_list": [
                    {"metric": m, "aggregation": "mean", "higher_is_better": True}
                    for m in ("json_valid", "category_match")
                ],
            }
        )
        + "process_results: !function utils.process_results\n"
    )
    return tasks


def run_lmeval(
    url: str, served: str, tasks: Path, out: Path, concurrency: int
) -> dict[tuple[str, str], str]:
    """One `lm_eval` CLI run for one served model; its answers by (served name, case id) from the
    samples log."""
    args = (
        f"model={served},base_url={url}/chat/completions,num_concurrent={concurrency},"
        "max_retries=3,tokenized_requests=False"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "local-chat-completions",
            "--model_args",
            args,
            "--tasks",
            "harness_tickets",
            "--include_path",
            str(tasks),
            "--apply_chat_template",
            "--output_path",
            str(out / served),
            "--log_samples",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    samples = next((out / served).rglob("samples_harness_tickets_*.jsonl")).read_text().splitlines()
    rows = [json.loads(line) for line in samples]
    return {(served, r["doc"]["id"]): r["resps"][0][0] for r in rows}


def lmeval_arm(
    model: ModelRef,
    adapters: tuple[Adapter, ...],
    tasks: Path,
    out: Path,
    concurrency: int,
    server: str | None,
) -> tuple[float, float, dict[tuple[str, str], str]]:
    """(seconds to a ready server, seconds in total, answers): a fresh server unless `server` is
    given."""
    started = time.perf_counter()
    with ExitStack() as stack:
        url = server or stack.enter_context(
            managed_server(
                model,
                Path(stack.enter_context(tempfile.TemporaryDirectory())),
                VllmConfig(),
                0,
                adapters,
            )
        )
        ready = time.perf_counter() - started if not server else 0.0
        answers = {
            k: v
            for name in [model.name, *(a.name for a in adapters)]
            for k, v in run_lmeval(url, name, tasks, out, concurrency).items()
        }
    return ready, time.perf_counter() - started, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="ticket cases (default 32)")
    parser.add_argument(
        "--server", help="a running vLLM server's /v1 URL serving the base model: the smoke run"
    )
    args = parser.parse_args()
    model = pull(DEFAULT_MODEL, log=lambda *_: None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = write_cases(root, args.n)
        if args.server:
            adapters: tuple[Adapter, ...] = ()
            candidates = [
                {
                    "name": "base",
                    "kind": "endpoint",
                    "base_url": args.server,
                    "model": model.name,
                    "max_concurrency": 8,
                }
            ]
            concurrencies = (8,)
        else:
            adapters = (replace(random_adapter(model, root / ADAPTER), name=ADAPTER),)
            candidates = [
                {"name": "base", "kind": "prompt"},
                {"name": ADAPTER, "kind": "lora", "adapter": str(adapters[0].path)},
            ]
            concurrencies = (8, 32)
        config = harness_config(root, cases, candidates)
        check = harness_cli("check", str(config))
        assert check.returncode == 0, check.stdout + check.stderr
        harness_s, harness_answers = run_harness(config)
        tasks = lmeval_task(root, cases)
        arms = {
            c: lmeval_arm(model, adapters, tasks, root / f"lmeval{c}", c, args.server)
            for c in concurrencies
        }
    for concurrency, (_, _, answers) in arms.items():
        assert answers == harness_answers, (
            f"lm-eval @{concurrency} answered differently from the harness: "
            f"{[k for k in harness_answers if answers.get(k) != harness_answers[k]][:5]}"
        )
    jobs = len(harness_answers)
    print(
        f"\n{jobs} answers ({args.n} ticket cases x {jobs // args.n} candidates), identical between"
        " the tools"
    )
    print(f"{'tool':<14}{'server s':>10}{'total s':>10}{'harness / this':>16}")
    print(f"{'harness':<14}{'':>10}{harness_s:>10.1f}{1.0:>16.2f}")
    for concurrency, (ready, total, _) in arms.items():
        print(
            f"{f'lm-eval @{concurrency}':<14}{ready:>10.1f}{total:>10.1f}{harness_s / total:>16.2f}"
        )


if __name__ == "__main__":
    main()
