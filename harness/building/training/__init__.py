"""LoRA fine-tuning of a base model on local data, cached by content hash (see adapter.py).

Importing this package is cheap: torch, transformers, peft and datasets load when training starts.
"""

from harness.building.training.adapter import (
    TrainedAdapter,
    adapter_key,
    check_lora_targets,
    train_adapter,
)
from harness.building.training.settings import LoraSettings, TrainSettings

__all__ = [
    "LoraSettings",
    "TrainSettings",
    "TrainedAdapter",
    "adapter_key",
    "check_lora_targets",
    "train_adapter",
]
