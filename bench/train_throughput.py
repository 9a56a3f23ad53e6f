"""Training throughput: harness's LoRA loop against a stock `transformers.Trainer`.

Same model (the embedded SmolLM2-135M-Instruct, fp32 on CPU), same tokenized data (the tickets
train.jsonl with assistant-only labels), same LoRA settings, batch size, learning rate and number
of steps. Only non-padding tokens count, and the first step of each run (one-time warm-up) does not.
Runs alternate between the two so a busy machine slows both alike.

    .venv/bin/python bench/train_throughput.py [--steps 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from harness.building.training.data import IGNORE, Tokens, encode, load_examples
from harness.building.training.loop import fit
from harness.building.training.settings import TrainSettings
from harness.core.models import pull

DATA = Path(__file__).resolve().parent.parent / "suites" / "tickets" / "train.jsonl"


def lora_model(path: Path, settings: TrainSettings):
    torch.manual_seed(settings.seed)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    lora = settings.lora
    return get_peft_model(
        model,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
        ),
    )


def ours(path: Path, data: list[Tokens], settings: TrainSettings, pad_id: int) -> float:
    result = fit(lora_model(path, settings), data, [], settings, pad_id, log=lambda _: None)
    timed = result.metrics[1:]
    return sum(m["tokens"] for m in timed) / sum(m["tokens"] / m["tokens_per_s"] for m in timed)


class StepClock(TrainerCallback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self.ends.append(time.perf_counter())


def stock(path: Path, data: list[Tokens], settings: TrainSettings, tokenizer) -> float:
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE)
    batch_tokens: list[int] = []

    def counting(features):
        batch = collate(features)
        batch_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    clock = StepClock()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=settings.batch_size,
            max_steps=settings.max_steps,
            learning_rate=settings.lr,
            warmup_steps=settings.warmup_ratio,
            weight_decay=settings.weight_decay,
            lr_scheduler_type="linear",
            logging_strategy="no",
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            seed=settings.seed,
            disable_tqdm=True,
            remove_unused_columns=False,
        )
        dataset = Dataset.from_list([{"input_ids": t.input_ids, "labels": t.labels} for t in data])
        Trainer(
            model=lora_model(path, settings),
            args=args,
            train_dataset=dataset,
            data_collator=counting,
            callbacks=[clock],
        ).train()
    return sum(batch_tokens[1 : len(clock.ends)]) / (clock.ends[-1] - clock.ends[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=5, help="optimizer steps per run (the first is not timed)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of each trainer, alternating")
    opts = parser.parse_args()

    base = pull(log=lambda *_: None)
    tokenizer = AutoTokenizer.from_pretrained(base.path, local_files_only=True)
    settings = TrainSettings(data=str(DATA), max_steps=opts.steps, val_fraction=0)
    data = [encode(tokenizer, e.messages, settings.max_length)[0] for e in load_examples(DATA)]
    print(
        f"{len(data)} examples, batch {settings.batch_size}, {opts.steps} steps, LoRA"
        f" r={settings.lora.r} {settings.lora.target_modules}, torch threads"
        f" {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    rates: dict[str, list[float]] = {"ours": [], "stock Trainer": []}
    for _ in range(opts.rounds):
        rates["stock Trainer"].append(stock(base.path, data, settings, tokenizer))
        rates["ours"].append(ours(base.path, data, settings, tokenizer.pad_token_id))
        print(
            "  " + ", ".join(f"{name} {runs[-1]:.0f} tok/s" for name, runs in rates.items()),
            flush=True,
        )
    mine, theirs = statistics.median(rates["ours"]), statistics.median(rates["stock Trainer"])
    print(f"ours: {mine:.0f} tok/s")
    print(f"stock Trainer: {theirs:.0f} tok/s")
    print(f"ratio ours/stock: {mine / theirs:.2f} (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
