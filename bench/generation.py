"""Generation throughput: the same N chat prompts through three paths, as tok/s and ratios.

  harness+vllm   the harness's own path: managed vLLM server, bounded-concurrency client, store
  writes raw vllm       offline `vllm.LLM.chat` on the same model and settings (the ceiling for the
  harness) hf one-by-one  transformers `generate` one prompt at a time (what a naive eval loop does)

Only generation is timed (server/model start-up is printed separately): the ratios compare
how fast each path turns prompts into tokens. Run: `.venv/bin/python bench/generation.py [--n 32]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULT = "BENCH_RESULT "
PROMPTS = [
    f"Write a short story about a robot named Unit {i} who learns to {verb}."
    for i, verb in enumerate(
        ["paint", "cook", "sing", "swim", "garden", "dance", "read", "fly"] * 16
    )
]


def bench_harness(n: int, max_tokens: int) -> dict:
    """Through generate.execute(): the code `harness compare` runs, with the cache off."""
    import yaml

    from harness.building.build import Built
    from harness.generation.generate import execute
    from harness.planning.config import load_config
    from harness.planning.context import Run
    from harness.planning.plan import make_plan
    from harness.store.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "suite").mkdir()
        (root / "suite" / "cases.jsonl").write_text(
            "".join(
                json.dumps({"id": str(i), "prompt": p}) + "\n" for i, p in enumerate(PROMPTS[:n])
            )
        )
        (root / "suite" / "suite.yaml").write_text(
            f"name: bench\ncases: cases.jsonl\ngeneration: {{max_tokens: {max_tokens}}}\nscorers:"
            " [json_valid]\n"
        )
        (root / "config.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": "bench",
                    "suites": ["suite"],
                    "candidates": [{"name": "c", "kind": "prompt"}],
                    "engine": "vllm",
                    "gates": [
                        {"candidate": "c", "suite": "bench", "metric": "json_valid", "min": 0}
                    ],
                }
            )
        )
        plan = make_plan(load_config(str(root / "config.yaml")))
        with Store(root / "store.sqlite") as store:
            store.begin_run("bench", "bench", "", {}, {})
            execute(Run(plan, store, "bench", root / "run", use_cache=False), Built())
            timings = {t.stage: t.seconds for t in store.table("timings", "bench").itertuples()}
            tokens = int(store.table("responses", "bench")["completion_tokens"].sum())
    return {"tokens": tokens, "seconds": timings["generate"], "startup_s": timings["engine_start"]}


def bench_raw_vllm(n: int, max_tokens: int) -> dict:
    """Offline vLLM in a child process (its workers need a fresh interpreter with a __main__ guard)."""
    out = subprocess.run(
        [sys.executable, __file__, "--raw-vllm-child", str(n), str(max_tokens)],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith(RESULT))
    return json.loads(line.removeprefix(RESULT))


def raw_vllm_child(n: int, max_tokens: int) -> None:
    from harness.core.models import pull
    from harness.serving.vllm_server import server_env, vllm_is_cpu_build

    cpu = vllm_is_cpu_build()
    os.environ.update(server_env(cpu))
    from vllm import LLM, SamplingParams

    model = pull(log=lambda *_: None)
    started = time.perf_counter()
    llm = LLM(model=str(model.path), dtype="float32" if cpu else "auto", enforce_eager=cpu, seed=0)
    startup = time.perf_counter() - started
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=0)
    conversations = [[{"role": "user", "content": p}] for p in PROMPTS[:n]]
    started = time.perf_counter()
    outputs = llm.chat(conversations, params, use_tqdm=False)
    seconds = time.perf_counter() - started
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    print(
        RESULT + json.dumps({"tokens": tokens, "seconds": seconds, "startup_s": startup}),
        flush=True,
    )


def bench_hf_one_by_one(n: int, max_tokens: int) -> dict:
    from harness.core.models import pull
    from harness.core.request import Request
    from harness.serving.transformers_engine import TransformersEngine

    model = pull(log=lambda *_: None)
    started = time.perf_counter()
    engine = TransformersEngine(model, batch_size=1, dtype="auto")
    startup = time.perf_counter() - started
    requests = [
        Request(model.name, (("user", p),), max_tokens, 0.0, 1.0, (), 0) for p in PROMPTS[:n]
    ]
    started = time.perf_counter()
    tokens = sum(c.completion_tokens for _, c in engine.run(requests))
    return {"tokens": tokens, "seconds": time.perf_counter() - started, "startup_s": startup}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=32, help="prompts (default 32)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--raw-vllm-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_vllm_child:
        raw_vllm_child(*args.raw_vllm_child)
        return
    results = {
        "harness+vllm": bench_harness(args.n, args.max_tokens),
        "raw vllm": bench_raw_vllm(args.n, args.max_tokens),
        "hf one-by-one": bench_hf_one_by_one(args.n, args.max_tokens),
    }
    baseline = results["hf one-by-one"]["tokens"] / results["hf one-by-one"]["seconds"]
    raw = results["raw vllm"]["tokens"] / results["raw vllm"]["seconds"]
    print(f"\n{args.n} prompts x up to {args.max_tokens} new tokens, greedy")
    print(
        f"{'path':<16}{'tokens':>8}{'gen s':>9}{'tok/s':>9}{'x hf 1-by-1':>13}{'x raw vllm':>12}{'startup s':>11}"
    )
    for name, r in results.items():
        rate = r["tokens"] / r["seconds"]
        print(
            f"{name:<16}{r['tokens']:>8}{r['seconds']:>9.1f}{rate:>9.1f}{rate / baseline:>13.2f}{rate / raw:>12.2f}"
            f"{r['startup_s']:>11.1f}"
        )


if __name__ == "__main__":
    main()
