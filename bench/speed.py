"""Where a `harness compare` run spends its time, and how it compares with named baselines in the
same run.

1. The run: `harness compare CONFIG --no-cache` (the demo by default; `--cold` retrains the adapter), as a
   child process sampled every 0.5 s: the stage table comes from the run's own timings (results.json),
   and, while its vLLM server lives, the harness process's resident memory and CPU.
2. Baseline "raw vLLM": the same chat requests, read back from the run's store, sent by a bare thread pool
   through the openai client to a fresh server with the same adapters, at the same concurrency and one
   served name at a time, as the harness sends them. Ratio: harness generation time / raw.
3. Baseline "first run": the same command again with the cache on (nothing changed). Ratio: rerun / first.
4. Probes: bench/probes.py (vLLM vs transformers in-process on the forgetting probes).

    .venv/bin/python bench/speed.py [--config configs/demo.yaml] [--cold] [--smoke]

`--smoke` runs a tiny scripted project instead (no model, no server) so the fast tests keep this
script working; the raw-vLLM and probe baselines need a server and are skipped there.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness.cli"]


def sample(proc: subprocess.Popen, out: dict[str, Any], stop: threading.Event) -> None:
    """While the harness runs: its peak RSS, and its CPU seconds over the time a vLLM server (a
    child running vllm) was alive, which is when every harness cycle is one the server does not get.
    """
    me = psutil.Process(proc.pid)
    last_cpu, last_t = 0.0, time.perf_counter()
    while not stop.wait(0.5):
        try:
            cpu = sum(me.cpu_times()[:2])
            rss = me.memory_info().rss
            children = me.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            break  # the harness has exited
        serving = any("vllm" in " ".join(command(child)) for child in children)
        now = time.perf_counter()
        out["peak_rss"] = max(out.get("peak_rss", 0), rss)
        if serving:
            out["serving_s"] = out.get("serving_s", 0.0) + now - last_t
            out["serving_cpu_s"] = out.get("serving_cpu_s", 0.0) + cpu - last_cpu
            out["serving_peak_rss"] = max(out.get("serving_peak_rss", 0), rss)
        last_cpu, last_t = cpu, now


def command(process: psutil.Process) -> list[str]:
    """A child's command line; [] for one that just exited (a finished training child, say)."""
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def compare(config: Path, out: Path, *flags: str) -> tuple[float, dict[str, Any], Path]:
    """(wall seconds, samples, results.json) of one `harness compare`."""
    before = set(out.glob("*/results.json"))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*HARNESS, "compare", str(config), "--out", str(out), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    samples: dict[str, Any] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=sample, args=(proc, samples, stop), daemon=True)
    watcher.start()
    _, err = proc.communicate()
    stop.set()
    watcher.join()
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"harness compare exited {proc.returncode}:\n{err[-3000:]}")
    results = sorted(set(out.glob("*/results.json")) - before, key=lambda p: p.stat().st_mtime)[-1]
    return wall, samples, results


def stage_table(results: dict[str, Any], wall: float) -> list[tuple[str, float]]:
    seconds: dict[str, float] = defaultdict(float)
    for row in results["timings"]:
        seconds[row["stage"]] += row["seconds"]
    rows = [
        (stage, seconds[stage])
        for stage in ("plan", "build", "engine_start", "generate", "loglik", "judge", "gate")
        if stage in seconds
    ]
    rows.append(("other (report, start-up, stops)", wall - sum(s for _, s in rows)))
    return rows


def chat_requests(store: Path, run_id: str) -> list[dict[str, Any]]:
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT request_json FROM responses WHERE run_id = ?", (run_id,)
        ).fetchall()
    requests = [json.loads(r[0]) for r in rows]
    unique = {
        json.dumps(r, sort_keys=True): r for r in requests if r.get("loglik", "none") == "none"
    }
    return list(unique.values())


def raw_vllm(config: Path, results: dict[str, Any], store: Path) -> float:
    """Seconds for the run's chat requests through a bare client on a fresh server with the run's
    adapters."""
    from concurrent.futures import ThreadPoolExecutor

    import openai

    from harness.planning.config import load_config
    from harness.planning.plan import make_plan
    from harness.serving.base import Adapter
    from harness.serving.vllm_server import concurrency, managed_server

    plan = make_plan(load_config(str(config)))
    adapters = tuple(
        Adapter(a["candidate"], Path(a["path"]), a["rank"], "") for a in _adapters(results)
    )
    requests = chat_requests(store, results["run"]["id"])
    (model,) = {m for m in plan.models.values()}
    in_flight = concurrency(plan.config.engine)
    with (
        tempfile.TemporaryDirectory() as folder,
        managed_server(model, Path(folder), plan.config.engine, plan.config.seed, adapters) as url,
    ):
        client = openai.OpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=600)

        def ask(r: dict[str, Any]) -> None:
            extra = (
                {
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {
                            "name": "answer",
                            "schema": json.loads(r["response_schema"]),
                        },
                    }
                }
                if r.get("response_schema")
                else {}
            )
            client.chat.completions.create(
                model=r["model"],
                messages=[{"role": a, "content": b} for a, b in r["messages"]],
                max_tokens=r["max_tokens"],
                temperature=r["temperature"],
                top_p=r["top_p"],
                stop=r["stop"] or None,
                seed=r["seed"],
                **extra,
            )

        started = time.perf_counter()
        # one served name at a time, as the harness
        for served in dict.fromkeys(r["model"] for r in requests):
            with ThreadPoolExecutor(in_flight) as pool:
                list(pool.map(ask, [r for r in requests if r["model"] == served]))
        return time.perf_counter() - started


def _adapters(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in results.get("artifacts") or [] if a["kind"] in ("training", "adapter")]


def smoke_project(root: Path) -> Path:
    """A tiny scripted project: the run's code paths without a model."""
    (root / "model").mkdir()
    (root / "model" / "config.json").write_text('{"model_type": "scripted"}')
    (root / "suite").mkdir()
    (root / "suite" / "cases.jsonl").write_text(
        "".join(
            json.dumps({"id": f"c{i}", "prompt": f"ticket {i}", "reference": '{"a": 1}'}) + "\n"
            for i in range(8)
        )
    )
    (root / "suite" / "suite.yaml").write_text(
        "name: tiny\ncases: cases.jsonl\nscorers: [json_valid]\n"
    )
    config = {
        "name": "smoke",
        "model": "./model",
        "engine": {"kind": "scripted", "script": [{"answer": '{"a": 1}'}]},
        "candidates": [{"name": "bare", "kind": "prompt"}],
        "suites": ["suite"],
        "gates": [{"candidate": "bare", "suite": "tiny", "metric": "json_valid", "min": 0.5}],
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root / "config.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    parser.add_argument(
        "--cold", action="store_true", help="retrain the adapter (a cold adapter cache)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny scripted project, no server (for the tests)"
    )
    parser.add_argument(
        "--keep", help="a folder to keep the runs' reports and store in (default: a temporary one)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep).resolve() if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        config = smoke_project(work) if args.smoke else Path(args.config).resolve()
        out = work / "reports"
        wall, samples, results_path = compare(
            config, out, "--no-cache", *(["--retrain"] if args.cold else [])
        )
        results = json.loads(results_path.read_text())
        rerun_wall, _, _ = compare(config, out)
        raw = None if args.smoke else raw_vllm(config, results, out / "harness.sqlite")

    print(
        f"`harness compare {Path(config).name} --no-cache{' --retrain' if args.cold else ''}`:"
        f" {wall:.1f} s wall"
    )
    print(f"{'stage':<34}{'seconds':>9}{'share':>8}")
    for stage, seconds in stage_table(results, wall):
        print(f"{stage:<34}{seconds:>9.1f}{seconds / wall:>8.0%}")
    print(
        f"\npeak RSS of the harness process: {samples.get('peak_rss', 0) / 1e9:.2f} GB over the"
        f" run, {samples.get('serving_peak_rss', 0) / 1e9:.2f} GB while vLLM served"
    )
    if samples.get("serving_s"):
        share = 100 * samples["serving_cpu_s"] / samples["serving_s"]
        print(
            f"harness CPU while vLLM served: {share:.1f}% of one core over"
            f" {samples['serving_s']:.0f} s"
        )
    print("\nratios against baselines measured in this run:")
    print(
        f"  rerun with nothing changed: {rerun_wall:.1f} s = {rerun_wall / wall:.1%} of the"
        " first run"
    )
    if raw is not None:
        harness_s = sum(t["seconds"] for t in results["timings"] if t["stage"] == "generate")
        print(
            f"  chat generation: harness {harness_s:.1f} s vs raw vLLM client {raw:.1f} s ="
            f" {harness_s / raw:.2f}x"
        )
        sys.path.insert(0, str(ROOT / "bench"))
        import probes

        probes.main([])


if __name__ == "__main__":
    main()
