"""LoRA training: data errors, the assistant-only loss mask, the content-hash cache, interruption
safety, and (slow) real training on the embedded model."""

from __future__ import annotations

import json
import pickle
import time
from itertools import groupby
from pathlib import Path

import pytest

from harness.building.training import (
    LoraSettings,
    TrainSettings,
    adapter_key,
    check_lora_targets,
    train_adapter,
)
from harness.building.training.adapter import MANIFEST, finished, library_versions
from harness.building.training.data import IGNORE, encode, load_examples, split
from harness.core.console import log
from harness.core.errors import ConfigError, HarnessError
from harness.core.models import ModelRef
from support.paths import REPO

ROOT = REPO
TICKETS = ROOT / "suites" / "tickets" / "train.jsonl"
CASES = ROOT / "suites" / "tickets" / "cases.jsonl"


def ticket_lines(n: int, start: int = 0) -> list[str]:
    return TICKETS.read_text().splitlines()[start : start + n]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def tokenizer(model: ModelRef):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model.path, local_files_only=True)


# --- bad input: every error names the file and, where there is one, the line ---


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty") as err:
        load_examples(write(tmp_path / "data.jsonl", []))
    assert err.value.file == str(tmp_path / "data.jsonl")


def test_malformed_jsonl_line_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "data.jsonl", ticket_lines(6) + ['{"messages": [oops'])
    with pytest.raises(ConfigError, match="not valid JSON") as err:
        load_examples(path)
    assert f"{path}:7" in str(err.value)


def test_example_without_assistant_turn_is_named(tmp_path: Path) -> None:
    no_answer = json.dumps({"messages": [{"role": "user", "content": "hello?"}]})
    path = write(tmp_path / "data.jsonl", ticket_lines(3) + [no_answer])
    with pytest.raises(ConfigError, match="no assistant turn") as err:
        load_examples(path)
    assert f"{path}:4" in str(err.value)


def test_bad_message_shape_and_unknown_shape(tmp_path: Path) -> None:
    bad_role = json.dumps({"messages": [{"role": "bot", "content": "hi"}]})
    with pytest.raises(ConfigError, match="role") as err:
        load_examples(write(tmp_path / "a.jsonl", [bad_role]))
    assert "a.jsonl:1: messages[0]" in str(err.value)
    with pytest.raises(ConfigError, match="neither `messages` nor") as err:
        load_examples(write(tmp_path / "b.jsonl", [json.dumps({"question": "q", "answer": "a"})]))
    assert "b.jsonl:1" in str(err.value)


def test_csv_instruction_format_and_row_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        "instruction,input,output\nSay hi,,hi\n"
        'Classify,"Ticket: late parcel","{""category"": ""shipping""}"\n'
    )
    examples = load_examples(good)
    assert examples[0].messages == [
        {"role": "user", "content": "Say hi"},
        {"role": "assistant", "content": "hi"},
    ]
    assert examples[1].messages[0]["content"] == "Classify\n\nTicket: late parcel"
    bad = tmp_path / "bad.csv"
    bad.write_text("instruction,input,output\nSay hi,,hi\nSay bye,,\n")
    with pytest.raises(ConfigError, match="no assistant turn") as err:
        load_examples(bad)
    assert f"{bad}: row 2" in str(err.value)


def test_parquet_and_json_chat_files(tmp_path: Path) -> None:
    import pandas as pd

    rows = [json.loads(line) for line in ticket_lines(3)]
    pd.DataFrame(rows).to_parquet(tmp_path / "data.parquet")
    (tmp_path / "data.json").write_text(json.dumps(rows))
    for name in ("data.parquet", "data.json"):
        assert [e.messages for e in load_examples(tmp_path / name)] == [r["messages"] for r in rows]


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported data format"):
        load_examples(write(tmp_path / "data.txt", ["hello"]))
    with pytest.raises(ConfigError, match="not found"):
        load_examples(tmp_path / "nope.jsonl")


def test_too_few_examples_for_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="none left to train on"):
        split(["only"], 0.1, 0, "data.jsonl")
    train, val = split(list(range(256)), 0.1, 0, "data.jsonl")
    assert (len(train), len(val)) == (230, 26) and split(list(range(256)), 0.1, 0, "x") == (
        train,
        val,
    )


def test_unknown_target_module_lists_the_real_ones(model: ModelRef) -> None:
    check_lora_targets(model, LoraSettings(target_modules=["q_proj", "self_attn.v_proj"]))
    with pytest.raises(ConfigError, match="no linear module named 'query'") as err:
        check_lora_targets(
            model, LoraSettings(target_modules=["q_proj", "query"]), "configs/demo.yaml:12"
        )
    assert err.value.file == "configs/demo.yaml:12" and err.value.key == "lora.target_modules"
    for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert name in err.value.fix


def test_settings_validation() -> None:
    assert LoraSettings(target_modules="q_proj").target_modules == ["q_proj"]
    with pytest.raises(ValueError, match="needs a length"):
        TrainSettings(data="d.jsonl", epochs=None)
    with pytest.raises(ValueError, match="Extra inputs"):
        TrainSettings(data="d.jsonl", learning_rate=1e-3)


# --- the loss mask: real tokenizer, real chat template ---


def test_labels_cover_only_assistant_text(tokenizer) -> None:
    messages = json.loads(ticket_lines(1)[0])["messages"]
    tokens, cut = encode(tokenizer, messages, 512)
    assert not cut and len(tokens.input_ids) == len(tokens.labels)
    learned = [tok for tok, label in zip(tokens.input_ids, tokens.labels) if label != IGNORE]
    assert tokenizer.decode(learned) == messages[-1]["content"] + "<|im_end|>"
    first = tokens.labels.index(next(label for label in tokens.labels if label != IGNORE))
    assert all(label == IGNORE for label in tokens.labels[:first])
    assert tokenizer.decode(tokens.input_ids[:first]).endswith("<|im_start|>assistant\n")
    assert tokens.input_ids == tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"]


def test_labels_in_multi_turn_and_truncation(tokenizer) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "One?"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": "Two?"},
        {"role": "assistant", "content": "2"},
    ]
    tokens, _ = encode(tokenizer, messages, 512)
    runs = [
        tokenizer.decode([tok for tok, _ in run])
        for learned, run in groupby(
            zip(tokens.input_ids, tokens.labels), key=lambda pair: pair[1] != IGNORE
        )
        if learned
    ]
    assert runs == ["1<|im_end|>", "2<|im_end|>"]
    short, cut = encode(tokenizer, messages, 10)
    assert cut and len(short.input_ids) == 10 and short.targets == 0


# --- the cache key ---


def test_adapter_key_tracks_every_input() -> None:
    settings = TrainSettings(data="a.jsonl")
    key = adapter_key("fp", b"data", settings)
    assert key == adapter_key("fp", b"data", settings, library_versions())
    assert key == adapter_key(
        "fp", b"data", settings.model_copy(update={"data": "elsewhere/a.jsonl"})
    )
    changed = [
        adapter_key("fp2", b"data", settings),
        adapter_key("fp", b"data2", settings),
        adapter_key("fp", b"data", settings.model_copy(update={"lr": 1e-4})),
        adapter_key("fp", b"data", settings.model_copy(update={"lora": LoraSettings(r=8)})),
        adapter_key("fp", b"data", settings, {**library_versions(), "peft": "0.0.1"}),
    ]
    assert len({key, *changed}) == 6


def test_folder_without_manifest_is_not_finished(tmp_path: Path) -> None:
    (tmp_path / "adapter_model.safetensors").write_bytes(b"half written")
    assert finished(tmp_path) is None
    (tmp_path / MANIFEST).write_text("{}")
    assert finished(tmp_path) == {}


# --- early stopping, on a small randomly initialised Llama (real layers, real LoRA, seconds to train) ---


def small_lora_model(vocab_size: int):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    return get_peft_model(
        LlamaForCausalLM(config), LoraConfig(r=4, target_modules="all-linear", lora_dropout=0.0)
    )


def test_early_stopping_ends_on_the_best_evaluation(tokenizer) -> None:
    from harness.building.training.loop import fit

    items = [encode(tokenizer, json.loads(line)["messages"], 512)[0] for line in ticket_lines(8)]
    # a step this small cannot move the validation loss, so no evaluation after the first improves
    # on it
    settings = TrainSettings(
        data="d.jsonl",
        max_steps=10,
        batch_size=2,
        lr=1e-12,
        eval_every=1,
        early_stopping_patience=2,
        val_fraction=0.25,
    )
    result = fit(
        small_lora_model(len(tokenizer)),
        items[:6],
        items[6:],
        settings,
        tokenizer.pad_token_id,
        log=lambda _: None,
    )
    assert [m["step"] for m in result.metrics] == [1, 2, 3] and result.best_step == 1
    assert len({m["val_loss"] for m in result.metrics}) == 1


def test_best_weights_are_restored() -> None:
    import torch

    from harness.building.training.loop import BestWeights

    model = torch.nn.Linear(2, 2)
    best = BestWeights()
    best.offer(model, 1, 0.5)
    kept = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    best.offer(model, 2, 0.7)
    assert (best.step, best.stale) == (1, 1)
    best.restore(model)
    assert torch.equal(model.weight, kept)


# --- real training on the embedded model ---

TINY = dict(max_steps=1, batch_size=2, val_fraction=0, lr=1e-3)


@pytest.fixture(scope="module")
def trained(model: ModelRef, tmp_path_factory: pytest.TempPathFactory):
    """One real adapter: 3 steps on 20 ticket examples plus one too long for max_length."""
    folder = tmp_path_factory.mktemp("train")
    long = {
        "messages": [
            {"role": "user", "content": "Summarise: " + "the parcel is late again. " * 40},
            {"role": "assistant", "content": "late parcel"},
        ]
    }
    data = write(folder / "data.jsonl", ticket_lines(20) + [json.dumps(long)])
    settings = TrainSettings(
        data="data.jsonl",
        max_steps=3,
        batch_size=4,
        lr=3e-3,
        val_fraction=0.2,
        eval_every=1,
        max_length=128,
    )
    logs: list[str] = []
    started = time.perf_counter()
    adapter = train_adapter(model, settings, data, cache_root=folder / "adapters", log=logs.append)
    return adapter, settings, data, logs, time.perf_counter() - started


@pytest.mark.slow
def test_training_records_metrics_and_truncation(trained) -> None:
    adapter, settings, data, logs, _ = trained
    assert (
        not adapter.reused
        and adapter.rank == 16
        and adapter.examples == 21
        and adapter.truncated == 1
    )
    assert [line for line in logs if "truncated" in line] == [
        "warning: 1 of 21 examples are longer than max_length=128 tokens and were truncated; "
        "1 lost their whole answer and were left out"
    ]
    assert [m["step"] for m in adapter.metrics] == [1, 2, 3]
    assert all("val_loss" in m and m["tokens_per_s"] > 0 for m in adapter.metrics)
    assert adapter.best_step == min(adapter.metrics, key=lambda m: m["val_loss"])["step"]
    assert 0 < adapter.trainable_params < adapter.total_params
    config = json.loads((adapter.path / "adapter_config.json").read_text())
    assert config["r"] == 16 and set(config["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }


@pytest.mark.slow
def test_adapter_changes_greedy_output(model: ModelRef, trained) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = trained[0]
    tokenizer = AutoTokenizer.from_pretrained(
        model.path, local_files_only=True, padding_side="left"
    )
    prompts = [json.loads(line)["prompt"] for line in CASES.read_text().splitlines()[:2]]
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def greedy(lm) -> list[str]:
        with torch.inference_mode():
            out = lm.generate(**batch, max_new_tokens=16, do_sample=False)
        return tokenizer.batch_decode(
            out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
        )

    base = AutoModelForCausalLM.from_pretrained(
        model.path, local_files_only=True, dtype=torch.float32
    )
    before = greedy(base)
    after = greedy(PeftModel.from_pretrained(base, str(adapter.path)))
    assert before != after


@pytest.mark.slow
def test_same_inputs_reuse_the_adapter(model: ModelRef, trained) -> None:
    adapter, settings, data, _, trained_s = trained
    mtime = adapter.path.stat().st_mtime_ns
    started = time.perf_counter()
    again = train_adapter(model, settings, data, cache_root=adapter.path.parent, log=lambda _: None)
    assert again.reused and again.path == adapter.path and again.key == adapter.key
    assert again.metrics == adapter.metrics and again.wall_s == adapter.wall_s
    assert adapter.path.stat().st_mtime_ns == mtime
    assert time.perf_counter() - started < min(2.0, trained_s / 5)


@pytest.mark.slow
def test_changes_retrain_and_training_is_deterministic(model: ModelRef, tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    data = write(tmp_path / "data.jsonl", ticket_lines(6))
    settings = TrainSettings(data="data.jsonl", **TINY)
    first = train_adapter(model, settings, data, cache_root=root, log=lambda _: None)
    weights = (first.path / "adapter_model.safetensors").read_bytes()

    # Trained again in a child process (as `harness compare` trains): the same bytes.
    again = train_adapter(
        model, settings, data, cache_root=root, retrain=True, log=log, in_child=True
    )
    assert not again.reused and again.key == first.key
    assert (again.path / "adapter_model.safetensors").read_bytes() == weights

    other_settings = train_adapter(
        model, settings.model_copy(update={"lr": 2e-3}), data, cache_root=root, log=lambda _: None
    )
    write(data, ticket_lines(6, start=6))
    other_data = train_adapter(model, settings, data, cache_root=root, log=lambda _: None)
    assert not other_settings.reused and not other_data.reused
    assert len({first.key, other_settings.key, other_data.key}) == 3
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [first.key, other_settings.key, other_data.key]
    )


def test_a_config_error_crosses_a_process_boundary_intact() -> None:
    error = pickle.loads(
        pickle.dumps(ConfigError("data.jsonl", "max_length", "too short", "raise it"))
    )
    assert (error.file, error.key, error.problem, error.fix) == (
        "data.jsonl",
        "max_length",
        "too short",
        "raise it",
    )
    assert str(error) == "data.jsonl: max_length: too short\n  fix: raise it"


@pytest.mark.slow
def test_an_error_in_the_training_child_is_raised_in_the_harness(
    model: ModelRef, tmp_path: Path
) -> None:
    long = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "word " * 200},
                {"role": "assistant", "content": "ok"},
            ]
        }
    )
    data = write(tmp_path / "data.jsonl", [long] * 4)
    settings = TrainSettings(data="data.jsonl", max_length=16, val_fraction=0, max_steps=1)
    with pytest.raises(ConfigError, match="max_length=16"):
        train_adapter(
            model, settings, data, cache_root=tmp_path / "adapters", log=log, in_child=True
        )
    assert not [p for p in (tmp_path / "adapters").iterdir() if not p.name.startswith(".")]


@pytest.mark.slow
def test_interrupted_training_leaves_no_finished_adapter(
    model: ModelRef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peft import PeftModel

    root = tmp_path / "adapters"
    data = write(tmp_path / "data.jsonl", ticket_lines(6))
    settings = TrainSettings(data="data.jsonl", **TINY)
    save = PeftModel.save_pretrained

    # Ctrl-C after the weights are written, before the manifest
    def save_then_interrupt(self, folder, **kwargs):
        save(self, folder, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(PeftModel, "save_pretrained", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train_adapter(model, settings, data, cache_root=root, log=lambda _: None)
    assert list(root.iterdir()) == []
    monkeypatch.undo()

    # a folder killed mid-copy (weights, no manifest) is not taken as finished either
    key = adapter_key(model.fingerprint, data.read_bytes(), settings)
    (root / key).mkdir()
    (root / key / "adapter_model.safetensors").write_bytes(b"partial")
    adapter = train_adapter(model, settings, data, cache_root=root, log=lambda _: None)
    assert not adapter.reused and finished(adapter.path) is not None
    assert sorted(p.name for p in adapter.path.iterdir()) == sorted(
        ["README.md", "adapter_config.json", "adapter_model.safetensors", MANIFEST]
    )
    assert [p.name for p in root.iterdir()] == [key]


@pytest.mark.slow
def test_divergence_stops_with_a_fix(model: ModelRef, tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    data = write(tmp_path / "data.jsonl", ticket_lines(6))
    settings = TrainSettings(
        data="data.jsonl", **{**TINY, "max_steps": 3, "lr": 1e30, "warmup_ratio": 0}
    )
    with pytest.raises(HarnessError, match=r"(?s)training diverged.*fix: lower `lr`"):
        train_adapter(model, settings, data, cache_root=root, log=lambda _: None)
    assert list(root.iterdir()) == []


@pytest.mark.slow
def test_left_padding_does_not_change_the_loss(model: ModelRef, tokenizer) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from harness.building.training.loop import collate, loss_sum

    lm = AutoModelForCausalLM.from_pretrained(
        model.path, local_files_only=True, dtype=torch.float32
    ).eval()
    items = [encode(tokenizer, json.loads(line)["messages"], 512)[0] for line in ticket_lines(4)]
    assert len({len(t) for t in items}) > 1  # the batch really is padded
    with torch.inference_mode():
        batched = float(loss_sum(lm, collate(items, tokenizer.pad_token_id)))
        reference = sum(
            float(lm(input_ids=torch.tensor([t.input_ids]), labels=torch.tensor([t.labels])).loss)
            * t.targets
            for t in items
        )
    assert batched == pytest.approx(reference, rel=1e-4)
