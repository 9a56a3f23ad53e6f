"""What a LoRA fine-tune is made of: the adapter's shape and the optimisation schedule.

The defaults are the ones measured on the embedded model on a 2-core CPU: the demo's 256 ticket
examples train in under two minutes (one epoch, 15 steps), and the adapter then answers every
held-out ticket with valid JSON in the asked shape (the base model never does), with category and
priority both right on 22 of 32. lr 1e-3 got 15 of 32 in the same time; batch 8 (twice the steps)
12.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from harness.core.caps import DeviceCount, Seed
from harness.core.strict import Strict

# vLLM refuses adapters above its largest `--max-lora-rank` choice; failing here is cheaper than
# failing after training.
VLLM_MAX_LORA_RANK = 512


class LoraSettings(Strict):
    """The adapter: rank, scale, dropout and which linear layers it wraps."""

    r: int = Field(16, ge=1, le=VLLM_MAX_LORA_RANK, description="rank; vLLM serves ranks up to 512")
    alpha: float = Field(32, gt=0, description="scale numerator: the update is scaled by alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = Field(
        "all-linear",
        description=(
            "'all-linear' (every linear layer but the output head) or module names, e.g. [q_proj,"
            " v_proj]"
        ),
    )

    @field_validator("target_modules")
    @classmethod
    def _names(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, str):
            return value if value == "all-linear" else [value]
        if not value:
            raise ValueError(
                "target_modules is empty: name at least one module, or use 'all-linear'"
            )
        return value


class TrainSettings(Strict):
    """One training run. `max_steps`, when set, wins over `epochs`."""

    data: str = Field(
        description=(
            "training data: JSONL (chat `messages` or instruction/input/output), JSON, CSV or"
            " Parquet"
        )
    )
    lora: LoraSettings = LoraSettings()
    lr: float = Field(
        2e-3, gt=0, description="peak learning rate (AdamW); high because runs are short"
    )
    epochs: float | None = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    batch_size: int = Field(16, ge=1, description="examples per forward pass")
    grad_accum: int = Field(1, ge=1, description="forward passes per optimizer step")
    max_length: int = Field(
        512, ge=16, description="tokens; longer examples are truncated (and counted)"
    )
    warmup_ratio: float = Field(
        0.1, ge=0, lt=1, description="share of the steps spent ramping the learning rate up"
    )
    weight_decay: float = Field(0.0, ge=0)
    val_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of the examples held out for validation loss; 0: none"
    )
    eval_every: int = Field(
        5,
        ge=1,
        description="optimizer steps between validation losses (the last step is always evaluated)",
    )
    early_stopping_patience: int | None = Field(
        2,
        ge=1,
        description=(
            "stop after this many evaluations without a better validation loss; null: never"
        ),
    )
    seed: Seed = 0
    processes: DeviceCount = Field(
        1,
        ge=1,
        description=(
            "data-parallel training processes (DDP through accelerate: gloo on CPU, NCCL on GPU,"
            " one GPU each); the effective batch (batch_size x grad_accum) and the schedule stay"
            " as set"
        ),
    )
    accelerate_config: str | None = Field(
        None,
        description=(
            "an accelerate config file (from `accelerate config`: FSDP, DeepSpeed, several nodes), "
            "launched unchanged with `accelerate launch --config_file`; relative to the config"
        ),
    )

    @model_validator(mode="after")
    def _has_length(self) -> "TrainSettings":
        if self.epochs is None and self.max_steps is None:
            raise ValueError("set `epochs` or `max_steps`: training needs a length")
        return self
