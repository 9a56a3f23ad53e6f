"""Forgetting-probe benchmark: builtin:forgetting_mc and builtin:perplexity scored by
log-likelihood, each way timed as the harness sends the probes (loglik.answer_all over LOGLIK_BATCH
requests at a time).

Baseline: transformers in-process (float32, padded batches of 16), the fallback engine. Against it:
- vLLM without LoRA: the base model, 64 prompts per /v1/completions call;
- vLLM with LoRA, as the harness serves a demo's fine-tune (`--lora-target-modules` = the adapter's own
  modules, so prompt log-probs batch): the base model's probes (64 per call) and the adapter's (8 per call,
  see vllm_server.PROBES_PER_CALL), the adapter's against transformers with the same peft adapter in-process.
Both tokenize in the harness with the model folder's tokenizer. Every way must give the same numbers
(checked to 1e-3 nats per token), so the ratios compare equal answers.

    .venv/bin/python bench/probes.py [--smoke]

`--smoke`: two questions and one text on transformers only (no server), so the fast tests keep it
working.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from harness.building.training import TrainSettings, train_adapter
from harness.core.models import DEFAULT_MODEL, ModelRef, pull
from harness.core.paths import builtin_dir
from harness.core.request import Request
from harness.planning.suites import load_suite
from harness.serving.base import Adapter
from harness.serving.loglik import (
    LOGLIK_BATCH,
    LogLik,
    LoglikScorer,
    answer_all,
    mc_continuations,
    mc_prompt,
)
from harness.serving.settings import VllmConfig
from harness.serving.transformers_loglik import HFScorer
from harness.serving.vllm_loglik import VLLMScorer, tokenizer_for
from harness.serving.vllm_server import batches_prompt_logprobs, managed_server, probes_per_call

ROOT = Path(__file__).resolve().parent.parent


def workload(model: str) -> list[Request]:
    """The probe requests of the two built-in suites, as candidates.py builds them."""
    mc = load_suite(builtin_dir("suites") / "forgetting_mc" / "suite.yaml")
    texts = load_suite(builtin_dir("suites") / "perplexity" / "suite.yaml")
    common = {
        "model": model,
        "max_tokens": 1,
        "temperature": 0.0,
        "top_p": 1.0,
        "stop": (),
        "seed": 0,
    }
    return [
        Request(
            messages=(("user", mc_prompt(c.messages[0].content)),),
            loglik="choices",
            choices=tuple(mc_continuations(c.choices)),
            **common,
        )
        for c in mc.cases
    ] + [
        Request(messages=(("user", c.messages[0].content),), loglik="text", **common)
        for c in texts.cases
    ]


def timed(scorer: LoglikScorer, requests: list[Request]) -> tuple[float, list[LogLik]]:
    started = time.perf_counter()
    numbers: list[LogLik] = []
    for start in range(0, len(requests), LOGLIK_BATCH):
        for completion in answer_all(scorer, requests[start : start + LOGLIK_BATCH]):
            assert completion.error is None, completion.error
            numbers += [LogLik(*pair) for pair in completion.logliks]
    return time.perf_counter() - started, numbers


def on_server(
    model: ModelRef, adapters: tuple[Adapter, ...], runs: list[tuple[str, list[Request]]]
) -> dict[str, tuple[float, list[LogLik]]]:
    """Each (served name, requests) timed on one server, sent as the harness sends them there."""
    out = {}
    with (
        tempfile.TemporaryDirectory() as folder,
        managed_server(model, Path(folder), VllmConfig(), 0, adapters) as url,
    ):
        for served, requests in runs:
            per_call = probes_per_call(served != model.name, batches_prompt_logprobs(adapters))
            with VLLMScorer(url, served, tokenizer_for(model.path), per_request=per_call) as scorer:
                out[served] = timed(scorer, requests)
    return out


def tiny_adapter(model: ModelRef, folder: Path) -> Adapter:
    data = folder / "train.jsonl"
    data.write_text(
        "".join(
            line + "\n"
            for line in (ROOT / "suites/tickets/train.jsonl").read_text().splitlines()[:8]
        )
    )
    trained = train_adapter(
        model,
        TrainSettings(data="train.jsonl", max_steps=1, batch_size=4, val_fraction=0),
        data,
        cache_root=folder / "adapters",
        log=lambda _: None,
    )
    return Adapter("tuned", trained.path, trained.rank, trained.key)


def peft_scorer(model: ModelRef, adapter: Adapter) -> HFScorer:
    """Transformers in-process with the same adapter applied (peft), the baseline for the adapter's
    probes."""
    from peft import PeftModel

    base = HFScorer.from_path(model.path)
    return HFScorer(PeftModel.from_pretrained(base.model, str(adapter.path)).eval(), base.tokenizer)


def agree(name: str, base: list[LogLik], numbers: list[LogLik]) -> None:
    worst = max(abs(a.logprob - b.logprob) / a.tokens for a, b in zip(base, numbers, strict=True))
    assert worst < 1e-3, f"{name} disagrees with transformers by {worst:.2g} nats/token"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny, transformers only (for the tests)"
    )
    args = parser.parse_args(argv)
    model = pull(DEFAULT_MODEL, log=lambda *_: None)
    requests = workload(model.name)
    if args.smoke:
        requests = requests[:2] + requests[-1:]
    spans = sum(len(r.choices) if r.loglik == "choices" else 1 for r in requests)
    base_s, base = timed(HFScorer.from_path(model.path), requests)
    print(f"workload: {len(requests)} probe requests = {spans} scored spans")
    print(f"baseline transformers in-process: {base_s:.1f} s")
    if args.smoke:
        return
    plain_s, plain = on_server(model, (), [(model.name, requests)])[model.name]
    agree("vLLM without LoRA", base, plain)
    print(
        f"vLLM without LoRA (64 prompts per call): {plain_s:.1f} s = {base_s / plain_s:.2f}x the"
        " baseline's speed"
    )
    with tempfile.TemporaryDirectory() as folder:
        adapter = tiny_adapter(model, Path(folder))
        tuned = [replace(r, model=adapter.name) for r in requests]
        peft_s, peft = timed(peft_scorer(model, adapter), tuned)
        served = on_server(model, (adapter,), [(model.name, requests), (adapter.name, tuned)])
    (lora_base_s, lora_base), (lora_s, lora) = served[model.name], served[adapter.name]
    agree("vLLM with LoRA, base model", base, lora_base)
    agree("vLLM with LoRA, adapter", peft, lora)
    print(
        f"vLLM with LoRA, the base model's probes (64 per call): {lora_base_s:.1f} s = "
        f"{base_s / lora_base_s:.2f}x the baseline's speed"
    )
    print(f"transformers + peft in-process, the adapter's probes: {peft_s:.1f} s")
    print(
        f"vLLM with LoRA, the adapter's probes (8 per call): {lora_s:.1f} s ="
        f" {peft_s / lora_s:.2f}x the speed of transformers + peft in-process"
    )


if __name__ == "__main__":
    main()
