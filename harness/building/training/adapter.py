"""LoRA adapters cached by content: the same base weights, data, settings and libraries give the
same folder.

An adapter folder counts as finished only when it holds the manifest, and the folder appears in one
rename once everything is written; an interrupted run leaves at most a dot-folder nobody reuses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.building.training.data import encode, load_examples, require_file, split
from harness.building.training.launch import TrainJob, train_launched
from harness.building.training.loop import fit
from harness.building.training.settings import LoraSettings, TrainSettings
from harness.core.children import die_with_parent
from harness.core.errors import ConfigError, HarnessError
from harness.core.models import ModelRef
from harness.core.paths import harness_home
from harness.core.textfiles import write_atomic

MANIFEST = "harness-adapter.json"
# Bump when a change to this package changes what training produces, so old adapters are not reused.
TRAINER_VERSION = 1
# The layout of a finished folder, in its manifest; an older one is upgraded in place when reused
# (no retraining). 1 (no field): adapter_config.json as peft 0.21 saves it, which peft 0.13 refuses.
# 2: portable_adapter_config.
FORMAT = 2
LIBRARIES = ("torch", "transformers", "peft")

if TYPE_CHECKING:
    from accelerate import Accelerator


@dataclass(frozen=True)
class TrainedAdapter:
    """A finished peft adapter folder (what `vllm --lora-modules NAME=PATH` loads) and how it was
    made."""

    path: Path
    key: str
    rank: int
    reused: bool
    # per optimizer step: step, train_loss, lr, tokens, tokens_per_s, val_loss when evaluated
    metrics: list[dict[str, Any]]
    trainable_params: int
    total_params: int
    wall_s: float  # of the training that made the adapter (a reused one reports the original's)
    tokens_per_s: float  # non-padding tokens per second of the optimizer steps
    truncated: int  # examples cut to max_length
    examples: int  # examples in the data file, training and validation together
    best_step: (
        int | None
    )  # the step whose weights were kept (lowest validation loss); None without validation


LAUNCH_FIELDS = ("processes", "accelerate_config")


def launched(settings: TrainSettings) -> bool:
    """Whether training is launched as processes of its own (torchrun or `accelerate launch`, see
    launch.py)."""
    return settings.processes > 1 or settings.accelerate_config is not None


def default_cache_root() -> Path:
    return harness_home() / "adapters"


def library_versions() -> dict[str, str]:
    return {name: version(name) for name in LIBRARIES}


def adapter_key(
    base_fingerprint: str,
    data_bytes: bytes,
    settings: TrainSettings,
    versions: dict[str, str] | None = None,
    launch_config: bytes | None = None,
) -> str:
    """sha256 of everything that decides the weights. The data's path is left out (its bytes count),
    so moving the file does not retrain; so is the accelerate config's (`launch_config`: its bytes).
    How many processes train, and the accelerate config (precision, sharding), change the numerics,
    so they count; a single process adds nothing, and its keys are those of every adapter trained
    before there were more.
    """
    payload = {
        "trainer": TRAINER_VERSION,
        "base": base_fingerprint,
        "data": hashlib.sha256(data_bytes).hexdigest(),
        "settings": settings.model_dump(mode="json", exclude={"data", *LAUNCH_FIELDS}),
        "versions": library_versions() if versions is None else versions,
    }
    if launched(settings):
        payload["launch"] = {
            "processes": settings.processes,
            "accelerate_config": (
                hashlib.sha256(launch_config).hexdigest() if launch_config else None
            ),
        }
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def finished(folder: Path) -> dict[str, Any] | None:
    """The manifest of a finished adapter folder, else None."""
    manifest = folder / MANIFEST
    return json.loads(manifest.read_text()) if manifest.is_file() else None


def check_lora_targets(
    base: ModelRef, lora: LoraSettings, settings_file: str = "training settings"
) -> None:
    """Every named target is a linear layer of the base model. Builds the model on the meta device
    (no weights), so a plan can check this in a second, before anything trains."""
    if lora.target_modules == "all-linear":
        return
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(
            AutoConfig.from_pretrained(base.path, local_files_only=True)
        )
    head = model.get_output_embeddings()
    linear = [
        name
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, Conv1D)) and module is not head
    ]
    missing = [
        t for t in lora.target_modules if not any(n == t or n.endswith(f".{t}") for n in linear)
    ]
    if missing:
        leaves = sorted({name.rsplit(".", 1)[-1] for name in linear})
        raise ConfigError(
            settings_file,
            "lora.target_modules",
            f"{base.name} has no linear module named {', '.join(map(repr, missing))}",
            f"use 'all-linear' or some of: {', '.join(leaves)} "
            "(the output head is left out, as with all-linear)",
        )


def train_adapter(
    base: ModelRef,
    settings: TrainSettings,
    data_path: Path,
    cache_root: Path | None = None,
    retrain: bool = False,
    *,
    settings_file: str = "training settings",
    log: Callable[[str], None] = print,
    in_child: bool = False,
    accelerate_config: Path | None = None,
) -> TrainedAdapter:
    """The adapter for these inputs: reused from the cache when finished there, else trained.

    `settings_file` names where the settings came from (e.g. "configs/demo.yaml:14") in errors.
    `in_child`: train in a child process (`log` must then be a module-level function), so the model,
    the optimizer state and torch's thread pools leave with it: trained in the harness process, they
    kept it at 6 GB resident while vLLM generated, for the rest of the run. Several processes, or an
    accelerate config (`accelerate_config`: the file `settings.accelerate_config` names, resolved),
    always train in processes of their own (see launch.py).
    """
    root = cache_root or default_cache_root()
    data = require_file(data_path).read_bytes()
    launch_config = (
        require_file(accelerate_config).read_bytes() if accelerate_config is not None else None
    )
    key = adapter_key(base.fingerprint, data, settings, launch_config=launch_config)
    dest = root / key
    manifest = None if retrain else finished(dest)
    if manifest:
        log(f"adapter {key[:12]}: reusing {dest}")
        if manifest.get("format", 1) < FORMAT:
            portable_adapter_config(dest)
            manifest = {**manifest, "format": FORMAT}
            _write_manifest(dest, manifest)
        return _adapter(dest, manifest, reused=True)
    check_lora_targets(base, settings.lora, settings_file)
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=root))
    work.chmod(0o755)  # mkdtemp makes it private; the finished adapter is an ordinary folder
    try:
        args = (base, settings, data_path, hashlib.sha256(data).hexdigest(), key, work, log)
        if launched(settings):
            train_launched(
                TrainJob(base, settings, data_path, args[3], key, work), accelerate_config, log
            )
            manifest = finished(work)
            if manifest is None:
                raise HarnessError(
                    f"training on {settings.processes} processes ended without an adapter in {work}"
                )
        else:
            manifest = _train_in_child(*args) if in_child else train(*args)
        if dest.exists():  # unfinished leftovers, or the adapter being retrained
            trash = Path(tempfile.mkdtemp(prefix=".replaced-", dir=root))
            dest.rename(trash / key)
            work.rename(dest)
            shutil.rmtree(trash)
        else:
            work.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(
        f"adapter {key[:12]}: trained in {manifest['wall_s']:.0f} s ({manifest['tokens_per_s']:.0f}"
        f" tok/s) -> {dest}"
    )
    return _adapter(dest, manifest, reused=False)


def portable_adapter_config(folder: Path) -> None:
    """adapter_config.json as every peft from 0.13 on loads it (0.13-0.17 are the ones beside
    transformers 4.x): peft writes every LoraConfig field it has, and a field it lacks makes peft
    0.13 raise a TypeError (0.14-0.17 warn and drop it). A field at its default tells no peft
    anything (each fills in its own default, and the fields 0.13, 0.17 and 0.21 share have the same
    ones), so those are left out, and so is `peft_version` (the manifest keeps every library's
    version). What the adapter does is unchanged: r, alpha, dropout, targets and any field set
    otherwise than by default stay."""
    from peft import LoraConfig

    defaults = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(LoraConfig)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    kept = {
        k: v
        for k, v in config.items()
        if k != "peft_version" and not (k in defaults and v == defaults[k])
    }
    write_atomic(path, json.dumps(kept, indent=2, sort_keys=True) + "\n")


def silent(message: str) -> None:
    """The log of every process of a launched run but the main one."""


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2))


def _adapter(folder: Path, manifest: dict[str, Any], reused: bool) -> TrainedAdapter:
    fields = {f.name for f in dataclasses.fields(TrainedAdapter)} - {"path", "reused"}
    return TrainedAdapter(path=folder, reused=reused, **{name: manifest[name] for name in fields})


def _train_in_child(*args: Any) -> dict[str, Any]:
    """`train` in a fresh (spawned, not forked: torch's threads do not survive a fork) process that
    dies with the harness; its errors come back as raised."""
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent
    ) as pool:
        return pool.submit(train, *args).result()


def train(
    base: ModelRef,
    settings: TrainSettings,
    data_path: Path,
    data_sha256: str,
    key: str,
    out: Path,
    log: Callable[[str], None],
    accelerator: Accelerator | None = None,
) -> dict[str, Any]:
    """Train into `out` and write the manifest last; returns the manifest. `accelerator`: this
    process's, in a launched run (see worker.py), where every process trains and the main one saves
    and logs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    main = accelerator is None or accelerator.is_main_process
    if not main:
        log = silent
    started = time.perf_counter()
    examples = load_examples(data_path)
    tokenizer = AutoTokenizer.from_pretrained(base.path, local_files_only=True)
    encoded = [encode(tokenizer, e.messages, settings.max_length) for e in examples]
    truncated = sum(cut for _, cut in encoded)
    examples_train, val = (
        [tokens for tokens, _ in part if tokens.targets]
        for part in split(encoded, settings.val_fraction, settings.seed, str(data_path))
    )
    dropped = len(examples) - len(examples_train) - len(val)
    if truncated:
        log(
            f"warning: {truncated} of {len(examples)} examples are longer than"
            f" max_length={settings.max_length} tokens and were truncated"
            + (f"; {dropped} lost their whole answer and were left out" if dropped else "")
        )
    if not examples_train:
        raise ConfigError(
            str(data_path),
            "",
            f"no training example keeps an answer token within max_length={settings.max_length}",
            "raise `max_length`",
        )

    device = (
        str(accelerator.device)
        if accelerator is not None
        else "cuda"
        if torch.cuda.is_available()
        else "cpu"
    )
    torch.manual_seed(settings.seed)
    model = AutoModelForCausalLM.from_pretrained(
        base.path,
        local_files_only=True,
        dtype=torch.bfloat16 if device.startswith("cuda") else torch.float32,
    ).to(device)
    lora = settings.lora
    model = get_peft_model(
        model,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
        ),
    )
    trainable, total = model.get_nb_trainable_parameters()
    log(
        f"adapter {key[:12]}: training LoRA r={lora.r} ({trainable:,} parameters) on"
        f" {len(examples_train)} examples of {data_path.name}, {len(val)} held out for validation"
        + (f", on {accelerator.num_processes} processes" if accelerator is not None else "")
    )
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    result = fit(model, examples_train, val, settings, pad_id, device, log, accelerator)
    processes = 1 if accelerator is None else accelerator.num_processes
    if accelerator is not None:
        accelerator.wait_for_everyone()
        model = accelerator.unwrap_model(model)
    if not main:
        return {}
    model.save_pretrained(out)
    portable_adapter_config(out)
    manifest = {
        "format": FORMAT,
        "key": key,
        "base": {"name": base.name, "fingerprint": base.fingerprint},
        "data": {"path": str(data_path), "sha256": data_sha256},
        "settings": settings.model_dump(mode="json"),
        "versions": library_versions(),
        "rank": lora.r,
        "metrics": result.metrics,
        "trainable_params": trainable,
        "total_params": total,
        "wall_s": time.perf_counter() - started,
        "tokens_per_s": result.tokens_per_s,
        "truncated": truncated,
        "examples": len(examples),
        "train_examples": len(examples_train),
        "processes": processes,
        "val_examples": len(val),
        "best_step": result.best_step,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_manifest(out, manifest)
    return manifest
