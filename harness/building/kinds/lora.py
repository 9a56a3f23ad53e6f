"""`kind: lora`: a LoRA fine-tune of the base model, served beside it (vLLM --enable-lora) under the
candidate's name: an existing peft adapter, or one trained on demand and cached by content hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from harness.building.kinds.base import Kind, KindContext, LocalCandidateBase
from harness.building.training import check_lora_targets, train_adapter
from harness.building.training.settings import TrainSettings
from harness.core.console import console, log
from harness.core.errors import ConfigError
from harness.core.models import fingerprint_folder
from harness.core.textfiles import check_text
from harness.core.yamlfile import load_yaml
from harness.serving.base import Adapter, LocalTarget
from harness.serving.devices import processes_problem, visible

if TYPE_CHECKING:
    from harness.core.models import ModelRef
    from harness.store.store import Store


class LoraCandidate(LocalCandidateBase):
    """A LoRA fine-tune of the base model: an existing peft adapter, or one trained on demand."""

    kind: Literal["lora"]
    adapter: str | None = Field(None, description="a peft adapter folder to use as is")
    train: TrainSettings | None = Field(
        None, description="train the adapter (cached by content hash) when missing"
    )

    @model_validator(mode="after")
    def _one_source(self) -> "LoraCandidate":
        if (self.adapter is None) == (self.train is None):
            raise ValueError(
                "a lora candidate needs exactly one of `adapter:` (a peft folder) or `train:` "
                "(how to train it)"
            )
        return self


def check(candidate: LoraCandidate, ctx: KindContext) -> None:
    """The adapter folder, or the training data, is there; training targets exist in the base model."""
    if candidate.adapter is not None:
        adapter_config(ctx, candidate.adapter)
    if candidate.train is not None:
        data = ctx.resolve_path(candidate.train.data)
        if not data.is_file():
            raise ctx.error(
                ("train", "data"),
                f"training data {data} not found",
                "check the `data:` path (relative to the config)",
            )
        check_text(data)
        # with an accelerate config the processes may be on other nodes: the config's own business
        if (
            launch_config(candidate.train, ctx) is None
            and (problem := processes_problem(candidate.train.processes, visible())) is not None
        ):
            raise ctx.error(("train", "processes"), *problem)
        assert ctx.model is not None  # a lora candidate runs on a base model
        check_lora_targets(
            ctx.model, candidate.train.lora, f"{ctx.where('train', 'lora')}: {ctx.key('train')}"
        )


def launch_config(settings: TrainSettings, ctx: KindContext) -> Path | None:
    """The accelerate config file the settings name, resolved; None when they name none. It is read
    as a config is (core.yamlfile: a regular file, its size, aliases and depth) and must be a
    mapping of settings, so that what `accelerate launch` would fail on mid-build, after the models
    started, is a config error at plan time.
    """
    if settings.accelerate_config is None:
        return None
    path = ctx.resolve_path(settings.accelerate_config)
    written = "`accelerate config --config_file PATH` writes one"
    try:
        launch, _ = load_yaml(path)
    except ConfigError as exc:
        raise ctx.error(
            ("train", "accelerate_config"),
            f"accelerate config {exc.file}: {exc.problem}",
            f"{exc.fix}; {written}",
        ) from None
    if not isinstance(launch, dict):
        held = (
            "nothing"
            if launch is None
            else "a list"
            if isinstance(launch, list)
            else "a single value"
        )
        raise ctx.error(
            ("train", "accelerate_config"),
            f"accelerate config {path} holds {held}, not a mapping of "
            "settings (distributed_type: ..., num_processes: ...)",
            written,
        )
    return path


def adapter_config(ctx: KindContext, adapter: str) -> Path:
    path = ctx.resolve_path(adapter)
    config_file = path / "adapter_config.json"
    if not config_file.exists():
        raise ctx.error(
            ("adapter",),
            f"{path} is not a peft adapter folder (no adapter_config.json)",
            "point `adapter:` at a folder saved by peft's save_pretrained, or use `train:`",
        )
    return config_file


def build(
    candidate: LoraCandidate, ctx: KindContext, store: Store, run_id: str, retrain: bool
) -> Adapter:
    """The peft adapter as given, or trained (cached by content hash) when it is missing."""
    base = ctx.model
    assert base is not None  # a lora candidate runs on a base model
    if candidate.adapter is not None:
        config_file = adapter_config(ctx, candidate.adapter)
        path = config_file.parent
        rank = int(json.loads(config_file.read_text()).get("r", 16))
        digest = hashlib.sha256(
            f"{base.fingerprint}:{fingerprint_folder(path)}".encode()
        ).hexdigest()
        store.put_artifact(
            run_id, candidate.name, "adapter", {"path": str(path), "rank": rank, "trained": False}
        )
        return Adapter(candidate.name, path, rank, digest)
    settings = candidate.train
    assert settings is not None  # the config model requires adapter or train
    data = ctx.resolve_path(settings.data)
    result = train_adapter(
        base,
        settings,
        data,
        retrain=retrain,
        log=log,
        in_child=True,
        accelerate_config=launch_config(settings, ctx),
    )
    console.log(
        f"{candidate.name}: adapter {'reused' if result.reused else 'trained'} at {result.path}"
    )
    store.put_artifact(
        run_id,
        candidate.name,
        "training",
        {
            "path": str(result.path),
            "key": result.key,
            "rank": result.rank,
            "reused": result.reused,
            "metrics": result.metrics,
            "trainable_params": result.trainable_params,
            "total_params": result.total_params,
            "wall_s": result.wall_s,
            "tokens_per_s": result.tokens_per_s,
            "truncated": result.truncated,
            "examples": result.examples,
            "settings": settings.model_dump(mode="json"),
        },
    )
    return Adapter(candidate.name, Path(result.path), result.rank, result.key)


def target(candidate: LoraCandidate, model: ModelRef | None, adapter: Any) -> LocalTarget:
    """The base model's engine, serving the adapter beside it."""
    assert model is not None
    return LocalTarget(model, (adapter,))


def served(
    candidate: LoraCandidate, model: ModelRef | None, adapter: Any
) -> tuple[str, str | None]:
    """Requests name the adapter; answers are cached under the adapter's own fingerprint."""
    return adapter.name, adapter.fingerprint


KIND = Kind("lora", LoraCandidate, check=check, build=build, target=target, served=served)
