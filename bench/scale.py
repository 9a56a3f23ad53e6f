"""Past one server and one process, on the machine it runs on, as ratios in one run: requests per
second of one managed vLLM server (the baseline) against `--replicas` N replicas on disjoint
devices, and of the fleet path (an endpoint's `base_urls` over those replicas) against one of them
alone; then LoRA training tokens per second on one process (the baseline) against `--processes` N
(DDP through accelerate).

The same chat requests (greedy, seeded) go to every path, which must give the same answers. On a
2-core CPU the replicas have one core each and the baseline server both: what the ratio shows there
is how well one server uses two cores against two servers of one, not what a GPU node gains (see
docs/scaling.md).

    .venv/bin/python bench/scale.py [--replicas 2] [--requests 64] [--max-tokens 64] [--server URL]

`--server`: a running server of the embedded model with the default settings (seed 0) as the
baseline, instead of starting one. Training runs `--steps` optimizer steps of the demo's settings on
the tickets' training data, each way. `--smoke`: 8 requests of 8 tokens and 2 training steps, so the
slow tests keep it working.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

from startup import requests  # noqa: E402 (bench/ is put on the path above)

from harness.building.training import TrainSettings, train_adapter  # noqa: E402
from harness.building.training.adapter import silent  # noqa: E402
from harness.core.models import DEFAULT_MODEL, ModelRef, pull  # noqa: E402
from harness.core.request import Completion, Request  # noqa: E402
from harness.serving.base import EndpointTarget, Engine, LocalTarget  # noqa: E402
from harness.serving.endpoints import fleet  # noqa: E402
from harness.serving.openai_client import OpenAIEngine  # noqa: E402
from harness.serving.settings import VllmConfig  # noqa: E402
from harness.serving.vllm_server import concurrency, managed_server, vllm_engine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TICKETS = ROOT / "suites" / "tickets" / "train.jsonl"
BASELINE = "one server, every core (baseline)"
ALONE = "one replica alone (the fleet's baseline)"


def answered(engine: Engine, batch: Sequence[Request]) -> tuple[float, list[str]]:
    """Seconds for the whole batch, and the answers in order (none may be an error)."""
    started = time.perf_counter()
    out: dict[int, Completion] = dict(engine.run(batch))
    elapsed = time.perf_counter() - started
    errors = [c.error for c in out.values() if c.error]
    assert not errors, errors[:3]
    return elapsed, [out[i].text for i in range(len(batch))]


def rounds(
    paths: dict[str, Engine], batch: Sequence[Request], times: int
) -> Iterator[tuple[str, float]]:
    """Each path once per round, in turn, so a busy machine slows them alike; every path's answers
    equal."""
    first: list[str] | None = None
    for _ in range(times):
        for name, engine in paths.items():
            seconds, texts = answered(engine, batch)
            first = first or texts
            assert texts == first, f"{name} answered otherwise than the baseline"
            yield name, seconds


def measure(
    replicas: int, n: int, max_tokens: int, times: int, server: str | None
) -> dict[str, float]:
    """Requests per second of each path, its best round."""
    model = pull(DEFAULT_MODEL, log=lambda *_: None)
    batch = requests(model.name, n, max_tokens)
    one, several = VllmConfig(), VllmConfig(replicas=replicas)
    per_server = concurrency(one)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        base_url = server or stack.enter_context(managed_server(model, folder / "one", one, 0))
        managed = stack.enter_context(
            vllm_engine(LocalTarget(model), several, folder / "replicas", 0)
        )
        urls = tuple(replica.name for replica in managed.replicas)
        target = EndpointTarget("openai", None, None, per_server, 300, 0, None, base_urls=urls)
        paths: dict[str, Engine] = {
            BASELINE: OpenAIEngine(base_url, "EMPTY", per_server, 300, 0),
            f"{replicas} managed replicas, disjoint devices": managed,
            ALONE: OpenAIEngine(urls[0], "EMPTY", per_server, 300, 0),
            f"fleet path: base_urls over the {replicas} replicas": fleet(target, OpenAIEngine),
        }
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        for name, spent in rounds(paths, batch, times):
            seconds[name].append(spent)
    return {name: n / min(values) for name, values in seconds.items()}


def training(model: ModelRef, processes: int, steps: int) -> dict[int, float]:
    """Tokens per second of the optimizer steps (model loading and process start left out), 1 and N
    processes."""
    out = {}
    for count in (1, processes):
        settings = TrainSettings(
            data=str(TICKETS), max_steps=steps, eval_every=steps, processes=count
        )
        with tempfile.TemporaryDirectory() as folder:
            out[count] = train_adapter(
                model, settings, TICKETS, cache_root=Path(folder), log=silent, in_child=True
            ).tokens_per_s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--server", help="a running server of the embedded model (default settings) as the baseline"
    )
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="training steps each way")
    parser.add_argument(
        "--smoke", action="store_true", help="8 requests of 8 tokens, one round, 2 training steps"
    )
    args = parser.parse_args()
    n, tokens, times, steps = (
        (8, 8, 1, 2) if args.smoke else (args.requests, args.max_tokens, args.rounds, args.steps)
    )
    rps = measure(args.replicas, n, tokens, times, args.server)
    print(
        f"{n} chat requests x {tokens} new tokens, greedy; answers equal on every path; best of"
        f" {times} rounds\n"
    )
    print(f"{'path':<52} {'requests/s':>11}   ratio")
    for name, value in rps.items():
        against = ALONE if name.startswith("fleet") else BASELINE
        print(
            f"{name:<52} {value:>11.2f}   x{value / rps[against]:.2f} against"
            f" {against.split(' (')[0]}"
        )
    rates = training(pull(DEFAULT_MODEL, log=lambda *_: None), args.processes, steps)
    print(f"\nLoRA training, the demo's settings, {steps} steps of batch 16 each way")
    print(f"{'processes':<52} {'tokens/s':>11}   ratio")
    for count, rate in rates.items():
        label = "1 (baseline)" if count == 1 else f"{count}, DDP through accelerate"
        print(f"{label:<52} {rate:>11.1f}   x{rate / rates[1]:.2f} against 1")


if __name__ == "__main__":
    main()
