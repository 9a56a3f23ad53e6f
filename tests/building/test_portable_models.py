"""Model folders and adapters that tools on transformers 4.x read as the harness does on 5.x.

`harness models pull` converts with transformers 5, which writes RoPE's base inside
`rope_parameters` (4.x then uses 10000: another model) and names the tokenizer class
`TokenizersBackend` (4.x cannot load it); peft 0.21 writes adapter fields peft 0.13 refuses. The
fast tests check the rewritten files on small folders saved by transformers 5 and peft 0.21, and the
upgrade of a cache an older harness wrote. The slow ones install a 4.x stack from PyPI and compare
prompt log-probabilities of the real model, and of an adapter the harness trained, token by token
with transformers 5.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, NoReturn

import pytest

from harness.building.training import TrainSettings, adapter_key, train_adapter
from harness.building.training.adapter import FORMAT as ADAPTER_FORMAT
from harness.building.training.adapter import finished, portable_adapter_config
from harness.core import models
from harness.core.models import FORMAT, MANIFEST, ModelRef, fingerprint_folder, portable, resolve
from harness.core.paths import harness_home
from harness.planning.suites import load_suite
from harness.serving.loglik import mc_prompt
from support.paths import REPO, SUPPORT

ROOT = REPO
SCRIPT = SUPPORT / "stack_logprobs.py"
# The oldest transformers the harness allows (pyproject) and the last 4.x, each with the tokenizers,
# huggingface_hub and peft of its day. The chat template inside tokenizer_config.json is what 4.46
# reads; chat_template.jinja is read from 4.50 on.
STACKS = {
    "4.46": {
        "transformers": "4.46.3",
        "tokenizers": "0.20.3",
        "huggingface_hub": "0.26.5",
        "peft": "0.13.2",
    },
    "4.57": {
        "transformers": "4.57.6",
        "tokenizers": "0.22.2",
        "huggingface_hub": "0.36.2",
        "peft": "0.17.1",
    },
}
TOLERANCE = 1e-4  # nats per token; measured: 0.0 on every token, base and adapter, on both stacks


def tiny_folder(folder: Path, rope: dict[str, Any]) -> Path:
    """A model folder's config and tokenizer files as transformers 5 saves them (no weights: nothing
    reads them)."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import BPE
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    LlamaConfig(
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=8,
        max_position_embeddings=16384,
        rope_parameters=rope,
        dtype="bfloat16",
    ).save_pretrained(folder)
    backend = Tokenizer(
        BPE(vocab={"<s>": 0, "</s>": 1, "a": 2, "b": 3, "ab": 4}, merges=[("a", "b")])
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = "{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}"
    tokenizer.save_pretrained(folder)
    return folder


ROPES = {
    "default": {"rope_type": "default", "rope_theta": 100000.0},
    "llama3": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
}


@pytest.mark.parametrize("rope", ROPES.values(), ids=ROPES.keys())
def test_portable_files_carry_what_4x_reads_and_5x_reads_the_same(
    tmp_path: Path, rope: dict[str, Any]
) -> None:
    from transformers import AutoConfig, AutoTokenizer

    saved = tiny_folder(tmp_path / "saved", rope)
    assert (
        json.loads((saved / "tokenizer_config.json").read_text())["tokenizer_class"]
        == "TokenizersBackend"
    )
    made = shutil.copytree(saved, tmp_path / "portable")
    portable(made)

    config = json.loads((made / "config.json").read_text())
    assert config["rope_theta"] == rope["rope_theta"] and config["torch_dtype"] == "bfloat16"
    assert config["rope_parameters"] == rope  # what 5.x reads is still there
    scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
    assert config.get("rope_scaling") == (None if rope["rope_type"] == "default" else scaling)
    tokenizer_config = json.loads((made / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tokenizer_config["chat_template"] == (saved / "chat_template.jinja").read_text()

    before, after = (AutoConfig.from_pretrained(f).to_dict() for f in (saved, made))
    assert {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == {
        "_name_or_path"
    }
    old, new = (AutoTokenizer.from_pretrained(f) for f in (saved, made))
    chat = [{"role": "user", "content": "ab a"}]
    assert type(new) is type(old)
    assert new("abba").input_ids == old("abba").input_ids
    assert new.apply_chat_template(chat, tokenize=False) == old.apply_chat_template(
        chat, tokenize=False
    )
    copy = {f.name: f.read_bytes() for f in made.iterdir()}
    portable(made)
    assert {f.name: f.read_bytes() for f in made.iterdir()} == copy  # twice is once


def old_cache(home: Path) -> Path:
    """An embedded model's folder as an older harness left it: transformers 5's files, a manifest
    without format."""
    folder = tiny_folder(home / "models" / models.DEFAULT_MODEL, ROPES["default"])
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / MANIFEST).write_text(
        json.dumps(
            {
                "alias": models.DEFAULT_MODEL,
                "source": "pypi:x",
                "fingerprint": fingerprint_folder(folder),
            }
        )
    )
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cache root of its own, with nothing resolved from another (resolve is memoised)."""
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    monkeypatch.setattr(
        models.subprocess, "run", lambda *a, **k: pytest.fail("an upgrade downloads nothing")
    )
    resolve.cache_clear()
    yield tmp_path
    resolve.cache_clear()


def test_an_old_cache_is_upgraded_in_place_once(home: Path) -> None:
    folder = old_cache(home)
    old = json.loads((folder / MANIFEST).read_text())["fingerprint"]

    ref = resolve(models.DEFAULT_MODEL)

    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["format"] == FORMAT and ref.fingerprint == manifest[
        "fingerprint"
    ] == fingerprint_folder(folder)
    assert ref.fingerprint != old and manifest["source"] == "pypi:x"
    assert json.loads((folder / "config.json").read_text())["rope_theta"] == 100000.0
    assert [p.name for p in home.rglob("*") if ".tmp" in p.name] == []
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert models.pull(log=lambda _: None) == ref  # a later pull (or resolve) finds it upgraded
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files


def interrupted(folder: Path) -> NoReturn:
    raise KeyboardInterrupt


def test_an_upgrade_cut_short_is_finished_by_the_next_one(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = old_cache(home)
    whole = shutil.copytree(folder, home / "whole")
    portable(whole)
    with monkeypatch.context() as patch:  # stopped after the json files, before the manifest
        patch.setattr(models, "fingerprint_folder", interrupted)
        with pytest.raises(KeyboardInterrupt):
            models.pull(log=lambda _: None)
    assert "format" not in json.loads((folder / MANIFEST).read_text())
    assert models.pull(log=lambda _: None).fingerprint == fingerprint_folder(whole)


def test_an_adapter_config_keeps_only_what_every_peft_reads(tmp_path: Path) -> None:
    from peft import LoraConfig

    LoraConfig(
        r=4,
        lora_alpha=32,
        lora_dropout=0.05,
        target_modules=["q_proj", "v_proj"],
        task_type="CAUSAL_LM",
        inference_mode=True,
    ).save_pretrained(tmp_path)
    saved = LoraConfig.from_pretrained(tmp_path).to_dict()
    portable_adapter_config(tmp_path)
    assert set(json.loads((tmp_path / "adapter_config.json").read_text())) == {
        "inference_mode",
        "lora_alpha",
        "lora_dropout",
        "peft_type",
        "r",
        "target_modules",
        "task_type",
    }
    read = LoraConfig.from_pretrained(tmp_path).to_dict()
    assert {k for k in saved.keys() | read.keys() if saved.get(k) != read.get(k)} <= {
        "peft_version"
    }


def test_a_cached_adapter_of_an_older_harness_is_made_portable_when_reused(tmp_path: Path) -> None:
    from peft import LoraConfig

    data = tmp_path / "train.jsonl"
    data.write_text(
        (ROOT / "suites" / "tickets" / "train.jsonl").read_text().splitlines()[0] + "\n"
    )
    settings = TrainSettings(data="train.jsonl")
    base = ModelRef("base", tmp_path, "f" * 64)
    folder = tmp_path / "adapters" / adapter_key(base.fingerprint, data.read_bytes(), settings)
    LoraConfig(r=16, target_modules=["q_proj"], task_type="CAUSAL_LM").save_pretrained(folder)
    fields = {
        "key": folder.name,
        "rank": 16,
        "metrics": [],
        "trainable_params": 1,
        "total_params": 2,
        "wall_s": 1.0,
        "tokens_per_s": 1.0,
        "truncated": 0,
        "examples": 1,
        "best_step": None,
    }
    (folder / "harness-adapter.json").write_text(json.dumps(fields))

    reused = train_adapter(
        base, settings, data, cache_root=tmp_path / "adapters", log=lambda _: None
    )

    assert reused.reused and finished(folder)["format"] == ADAPTER_FORMAT
    assert "peft_version" not in json.loads((folder / "adapter_config.json").read_text())


# --- transformers 4.x against 5.x on the real model --------------------------------------------------------------


def stack(name: str) -> Path:
    """A folder of the 4.x stack's four packages from PyPI (wheels only, no dependencies: torch,
    numpy, safetensors and the rest come from the harness's venv), cached by its pins. Put first on
    PYTHONPATH, its packages shadow the venv's. Built in a sibling folder and renamed, so an
    interrupted build is never reused."""
    pins = [f"{package}=={version}" for package, version in STACKS[name].items()]
    root = harness_home() / "test-stacks"
    folder = (
        root / f"transformers-{name}-{hashlib.sha256(' '.join(pins).encode()).hexdigest()[:12]}"
    )
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    work = root / f".{folder.name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--target",
            str(work),
            *pins,
        ],
        check=True,
    )
    work.rename(folder)
    return folder


def cases() -> list[dict[str, Any]]:
    """Twelve prompts: a case of each chat suite through the chat template, two training
    conversations with their answers, and plain texts as the log-likelihood probes score them."""
    chats = [
        (name, load_suite(ROOT / "suites" / name / "suite.yaml").cases[0])
        for name in ("tickets", "knowledge", "release_notes", "overrefusal", "safety", "forgetting")
    ]
    out: list[dict[str, Any]] = [
        {"id": f"{name}/{case.id}", "messages": [m.model_dump() for m in case.messages]}
        for name, case in chats
    ]
    train = (ROOT / "suites" / "tickets" / "train.jsonl").read_text().splitlines()
    out += [{"id": f"train/{i}", "messages": json.loads(train[i])["messages"]} for i in (100, 101)]
    out += [
        {"id": f"perplexity/{case.id}", "text": case.messages[-1].content}
        for case in load_suite(ROOT / "suites" / "perplexity" / "suite.yaml").cases[:3]
    ]
    question = load_suite(ROOT / "suites" / "forgetting_mc" / "suite.yaml").cases[0]
    out.append(
        {
            "id": "forgetting_mc/0",
            "text": mc_prompt(question.messages[-1].content) + " " + question.reference,
        }
    )
    return out


def score(job: dict[str, Any], folder: Path, stack_folder: Path | None) -> dict[str, Any]:
    """stack_logprobs.py's output for `job`, run on the harness's transformers 5, or on a 4.x stack."""
    (folder / "job.json").write_text(json.dumps(job))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", TOKENIZERS_PARALLELISM="false")
    if stack_folder is not None:
        env["PYTHONPATH"] = str(stack_folder)
    subprocess.run(
        [sys.executable, str(SCRIPT), str(folder / "job.json"), str(folder / "out.json")],
        env=env,
        check=True,
        timeout=600,
    )
    return json.loads((folder / "out.json").read_text())


def as_5x_wrote_it(model: ModelRef, folder: Path) -> Path:
    """The model with config.json as transformers 5 writes it (no top-level rope_theta); its other
    files as they are (the tokenizer portable, so that 4.x gets as far as the weights)."""
    folder.mkdir()
    for file in model.path.iterdir():
        (folder / file.name).symlink_to(file)
    config = json.loads((model.path / "config.json").read_text())
    (folder / "config.json").unlink()
    (folder / "config.json").write_text(
        json.dumps({k: v for k, v in config.items() if k not in ("rope_theta", "torch_dtype")})
    )
    return folder


@pytest.fixture(scope="module")
def scored(model: ModelRef, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every run's output: "5" (the harness's stack), each 4.x stack, and "4.57 old" (the old
    config.json on 4.57). Two at a time, one thread each (the machines have two cores)."""
    started = time.perf_counter()
    tmp = tmp_path_factory.mktemp("portable")
    stacks = {name: stack(name) for name in STACKS}
    built = time.perf_counter()
    data = tmp / "train.jsonl"
    data.write_text(
        "".join(
            line + "\n"
            for line in (ROOT / "suites" / "tickets" / "train.jsonl").read_text().splitlines()[:8]
        )
    )
    adapter = train_adapter(
        model,
        TrainSettings(data="train.jsonl", max_steps=2, batch_size=4, lr=1e-2, val_fraction=0),
        data,
        cache_root=tmp / "adapters",
        log=lambda _: None,
    )
    trained = time.perf_counter()
    job = {"model": str(model.path), "adapter": str(adapter.path), "cases": cases()}
    old = {**job, "model": str(as_5x_wrote_it(model, tmp / "old-config")), "adapter": None}
    runs = {
        "5": (job, None),
        **{name: (job, folder) for name, folder in stacks.items()},
        "4.57 old": (old, stacks["4.57"]),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(score, j, tmp_path_factory.mktemp("run"), s)
            for name, (j, s) in runs.items()
        }
        out = {name: future.result() for name, future in futures.items()}
    print(
        f"stacks {built - started:.0f} s, adapter {trained - built:.0f} s, "
        f"runs {time.perf_counter() - trained:.0f} s"
    )
    return out


def worst(a: dict[str, list[float]], b: dict[str, list[float]]) -> tuple[float, str]:
    """The largest per-token difference of two runs' log-probabilities, and the case it is in."""
    return max(
        (max((abs(x - y) for x, y in zip(a[case], b[case], strict=True)), default=0.0), case)
        for case in a
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", STACKS)
def test_transformers_4_reads_the_model_and_the_adapter_as_5_does(
    scored: dict[str, dict[str, Any]], name: str
) -> None:
    five, four = scored["5"], scored[name]
    assert {k: four["versions"][k] for k in STACKS[name]} == STACKS[name], (
        "the 4.x stack did not shadow the venv's"
    )
    assert four["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert four["ids"] == five["ids"]  # same chat template text, same tokens
    for part in ("base", "adapter"):
        gap, case = worst(five[part], four[part])
        assert gap <= TOLERANCE, f"{part}: {name} differs from 5.x by {gap:.3g} nats in {case}"
    gap, _ = worst(five["base"], five["adapter"])
    assert gap > 1.0, "the adapter changes nothing, so the comparison of adapters shows nothing"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_without_a_top_level_rope_theta_transformers_4_reads_another_model(
    scored: dict[str, dict[str, Any]],
) -> None:
    gap, case = worst(scored["5"]["base"], scored["4.57 old"]["base"])
    assert gap > 1.0, (
        f"config.json without rope_theta differs by only {gap:.3g} nats ({case}): this test sees"
        " nothing"
    )
