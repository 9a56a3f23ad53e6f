"""vLLM server start-up and throughput by server setting, on the embedded model (with a LoRA
adapter, as the demo serves it), and concurrency by throughput: what the harness's defaults are
chosen from.

Baseline: the server as vLLM starts it by default (one API process, one engine-core process, one
worker process). Against it, settings that keep the same kernels and so the same answers (checked:
every answer and probe log-likelihood must equal the baseline's), timed to "ready" (our process
listens and lists the model), over the same chat requests, and over probes sent one prompt per call
(as on a LoRA server). Then concurrency: the same requests at 4, 8, 16, 32 and 64 in flight.

    .venv/bin/python bench/startup.py [--n 32] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from lora_isolation import random_adapter
from probes import timed, workload

from harness.core.models import DEFAULT_MODEL, ModelRef, pull
from harness.core.request import Request
from harness.serving.base import Adapter
from harness.serving.fleet import run_concurrently
from harness.serving.openai_client import OpenAIEngine
from harness.serving.settings import VllmConfig
from harness.serving.vllm_loglik import VLLMScorer, tokenizer_for
from harness.serving.vllm_server import managed_server

ROOT = Path(__file__).resolve().parent.parent
# name -> (extra server arguments, environment); the baseline first
VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "vllm default (3 processes)": ([], {}),
    "uni executor (2 processes)": (["--distributed-executor-backend", "uni"], {}),
    "uni, engine in the API process (1 process)": (
        ["--distributed-executor-backend", "uni"],
        {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
    ),
}


def requests(model: str, n: int, max_tokens: int) -> list[Request]:
    tickets = (ROOT / "suites/tickets/train.jsonl").read_text().splitlines()
    return [
        Request(
            model=model,
            messages=(("user", f"Summarise this support ticket in one sentence: {line[:300]}"),),
            max_tokens=max_tokens,
            temperature=0.0,
            top_p=1.0,
            stop=(),
            seed=0,
        )
        for line in tickets[:n]
    ]


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def answer_all(url: str, batch: list[Request], concurrency: int) -> tuple[float, list[str]]:
    engine = OpenAIEngine(url, "EMPTY", concurrency, 300, 0)
    started = time.perf_counter()
    out = dict(run_concurrently(engine.complete, batch, concurrency))
    elapsed = time.perf_counter() - started
    errors = [c.error for c in out.values() if c.error]
    assert not errors, errors[:3]
    return elapsed, [out[i].text for i in range(len(batch))]


def measure(
    model: ModelRef,
    adapter: Adapter | None,
    n: int,
    max_tokens: int,
    concurrencies: tuple[int, ...],
    variants: dict[str, tuple[list[str], dict[str, str]]] = VARIANTS,
) -> tuple[dict[str, tuple[float, ...]], dict[int, tuple[float, int]]]:
    """{variant: (seconds to ready, seconds for the requests at 8, seconds for probes one prompt per
    call, as on a LoRA server)}, and on the last server {concurrency: (seconds, answers that differ
    from those at 8 in flight)}: batch size may change float rounding.
    """
    batch = requests(model.name, n, max_tokens)
    starts: dict[str, tuple[float, ...]] = {}
    probe_requests = workload(model.name)[: len(batch) // 2]
    numbers: dict[str, list] = {}
    answers: dict[str, list[str]] = {}
    sweep: dict[int, tuple[float, int]] = {}
    adapters = (adapter,) if adapter else ()
    for name, (args, env) in variants.items():
        with tempfile.TemporaryDirectory() as folder, environment(env):
            started = time.perf_counter()
            with managed_server(
                model, Path(folder), VllmConfig(extra_args=args), 0, adapters
            ) as url:
                ready = time.perf_counter() - started
                answer_all(url, batch[:2], 2)  # first-request warm-up, outside the timing
                seconds, answers[name] = answer_all(url, batch, 8)
                with VLLMScorer(
                    url, model.name, tokenizer_for(model.path), per_request=1
                ) as scorer:
                    probes_s, numbers[name] = timed(scorer, probe_requests)
                if name == list(variants)[-1]:
                    for concurrency in concurrencies:
                        seconds_at, texts = answer_all(url, batch, concurrency)
                        sweep[concurrency] = (
                            seconds_at,
                            sum(a != b for a, b in zip(texts, answers[name])),
                        )
        starts[name] = (ready, seconds, probes_s)
    baseline = answers[next(iter(variants))]
    for name, texts in answers.items():
        assert texts == baseline, f"{name} answers differently from the default server"
        assert numbers[name] == numbers[next(iter(variants))], f"{name} scores probes differently"
    return starts, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="chat requests per measurement")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=(
            "tiny run: 4 requests, the default server and the "
            "harness's only, no sweep (for the tests)"
        ),
    )
    args = parser.parse_args()
    n, concurrencies = (4, ()) if args.smoke else (args.n, (4, 8, 16, 32, 64))
    names = [next(iter(VARIANTS)), list(VARIANTS)[-1]] if args.smoke else list(VARIANTS)
    model = pull(DEFAULT_MODEL, log=lambda *_: None)
    with tempfile.TemporaryDirectory() as folder:
        adapter = random_adapter(model, Path(folder) / "adapter")
        starts, sweep = measure(
            model, adapter, n, args.max_tokens, concurrencies, {k: VARIANTS[k] for k in names}
        )
    base_ready, base_run, base_probes = starts[names[0]]
    print(
        f"{'server':<46} {'ready s':>8} {'x':>6} {f'{n} req s':>9} {'x':>6} {'probes s':>9}"
        f" {'x':>6}"
    )
    for name, (ready, seconds, probes_s) in starts.items():
        print(
            f"{name:<46} {ready:8.1f} {base_ready / ready:6.2f} {seconds:9.1f}"
            f" {base_run / seconds:6.2f} {probes_s:9.1f} {base_probes / probes_s:6.2f}"
        )
    print("answers: identical across server settings (chat answers and probe log-likelihoods)")
    if sweep:
        base = sweep[8][0]
        print(f"\nconcurrency on the last server ({n} requests, x = speed vs 8 in flight)")
        for concurrency, (seconds, changed) in sweep.items():
            print(
                f"  {concurrency:>3} in flight: {seconds:6.1f} s  {base / seconds:5.2f}x  "
                f"{changed} of {n} answers differ from those at 8"
            )


if __name__ == "__main__":
    main()
