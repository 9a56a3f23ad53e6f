"""Are mixed base/adapter batches exact on this vLLM build? The measurement behind
`harness.serving.vllm_server.MIXED_LORA_BATCHES_EXACT`, and what keeping them apart costs.

One LoRA-enabled server. Base-model requests are answered three ways and compared with the first:
  alone      the base requests by themselves (the reference answers)
  mixed      base and adapter requests interleaved and in flight together (what the harness did before)
  isolated   the same mix sent the way the harness sends it now: one served name at a time, drained between
Printed: how many base answers changed when mixed (and how many became the adapter's own answer), how
many changed when isolated (must be 0), and isolated wall time as a ratio of mixed (the price of exactness).

    .venv/bin/python bench/lora_isolation.py [--n 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from harness.core.models import DEFAULT_MODEL, ModelRef, fingerprint_folder, pull
from harness.core.request import Completion, Request
from harness.serving.base import Adapter
from harness.serving.openai_client import OpenAIEngine
from harness.serving.settings import VllmConfig
from harness.serving.vllm_server import managed_server

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def random_adapter(model: ModelRef, out: Path, seed: int = 0, rank: int = 8) -> Adapter:
    """A real peft adapter with random (not zero) weights: it changes every answer, in seconds
    instead of a training run, which is all a test of "does the adapter leak into base requests"
    needs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model.path, dtype=torch.float32)
    tuned = get_peft_model(
        base,
        LoraConfig(
            r=rank,
            lora_alpha=rank,
            target_modules=TARGETS,
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        ),
    )
    with torch.no_grad():  # small enough that the tuned model still writes words
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.mul_(0.25)
    tuned.save_pretrained(out)
    return Adapter("tuned", out, rank, fingerprint_folder(out))


def prompts(n: int) -> list[str]:
    return [
        f"Support ticket {i}: my order #{1000 + i} arrived damaged. Reply with a JSON object with"
        " the fields category and priority."
        for i in range(n)
    ]


def answers(engine: OpenAIEngine, requests: list[Request]) -> tuple[float, list[Completion]]:
    started = time.perf_counter()
    out: list[Completion | None] = [None] * len(requests)
    for index, completion in engine.run(requests):
        out[index] = completion
    assert all(c is not None and c.error is None for c in out), [
        c.error for c in out if c and c.error
    ]
    return time.perf_counter() - started, out  # type: ignore[return-value]


def measure(n: int = 16, max_tokens: int = 32, concurrency: int = 8) -> dict:
    model = pull(DEFAULT_MODEL, log=lambda *_: None)
    with tempfile.TemporaryDirectory() as tmp:
        adapter = random_adapter(model, Path(tmp) / "adapter")
        with managed_server(model, Path(tmp) / "run", VllmConfig(), 0, (adapter,)) as url:

            def ask(texts: list[str], served: str) -> list[Request]:
                return [Request(served, (("user", t),), max_tokens, 0.0, 1.0, (), 0) for t in texts]

            base, tuned = ask(prompts(n), model.name), ask(prompts(n), adapter.name)
            mix = [r for pair in zip(base, tuned) for r in pair]
            plain = OpenAIEngine(url, "EMPTY", concurrency, 120, 1)
            kept_apart = OpenAIEngine(url, "EMPTY", concurrency, 120, 1, isolate_models=True)
            _, alone = answers(plain, base)
            _, tuned_alone = answers(plain, tuned)
            mixed_s, mixed = answers(plain, mix)
            isolated_s, isolated = answers(kept_apart, mix)
    mixed_base, isolated_base = mixed[0::2], isolated[0::2]
    return {
        "requests": 2 * n,
        "base_changed_when_mixed": sum(m.text != a.text for m, a in zip(mixed_base, alone)),
        "base_became_adapter_answer_when_mixed": sum(
            m.text == t.text != a.text for m, t, a in zip(mixed_base, tuned_alone, alone)
        ),
        "base_changed_when_isolated": sum(i.text != a.text for i, a in zip(isolated_base, alone)),
        "adapter_differs_from_base": sum(t.text != a.text for t, a in zip(tuned_alone, alone)),
        "mixed_s": round(mixed_s, 2),
        "isolated_s": round(isolated_s, 2),
        "isolated_vs_mixed_time": round(isolated_s / mixed_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=16, help="base requests (as many adapter requests)"
    )
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    result = measure(args.n, args.max_tokens)
    print(json.dumps(result, indent=2))
    print(
        f"mixed batches: {result['base_changed_when_mixed']} of {args.n} base answers changed"
        f" ({result['base_became_adapter_answer_when_mixed']} became the adapter's); isolated:"
        f" {result['base_changed_when_isolated']} changed; isolated takes"
        f" {result['isolated_vs_mixed_time']}x the mixed wall time"
    )


if __name__ == "__main__":
    main()
