"""The training loop: a plain torch loop under `accelerate`, because on a CPU the wins are in what
it does not compute.

Two choices make it faster than a stock `transformers.Trainer` on the same model and data:
batches group examples of similar length (less padding), and the batch is padded on the left so
every sequence ends at the same column; the model then projects to the vocabulary only the last
columns that hold assistant tokens (`logits_to_keep`), instead of every position of the prompt.

On several processes (`train.processes`, or the user's accelerate config: DDP, FSDP, DeepSpeed) the
Accelerator wraps the model and the optimiser, and every process walks the same batches in the same
order, each taking every N-th example of each one. So an optimizer step still sees `batch_size x
grad_accum` examples, the schedule counts the same steps, and the gradient is the one a single
process computes: each process's share of the summed loss is divided by the step's assistant tokens
on all processes together, times N, since the wrappers average gradients over the processes.
(accelerate's own `split_batches` cuts fixed-size batches and skips a short one mid-epoch;
length-grouped batches are short anywhere.)
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterator

from rich.console import Console

from harness.building.training.data import IGNORE, Tokens
from harness.building.training.settings import TrainSettings
from harness.core.errors import HarnessError
from harness.core.progress import StageProgress

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

MAX_GRAD_NORM = (
    1.0  # the transformers Trainer default; keeps an early large gradient from derailing LoRA
)
MEGA_BATCH = 50  # length-sort within this many batches: shuffled enough, padded little


@dataclass
class Batch:
    input_ids: "torch.Tensor"
    attention_mask: "torch.Tensor"
    position_ids: "torch.Tensor"
    labels: "torch.Tensor"
    keep: int  # trailing columns that can predict an assistant token

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


@dataclass
class Fit:
    """What a run produced besides the weights: per-step rows and the throughput of the train steps."""

    metrics: list[dict[str, Any]]
    best_step: int | None
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def collate(items: list[Tokens], pad_id: int, device: str = "cpu") -> Batch:
    """Left-padded tensors; positions count real tokens only, so padding changes no prediction."""
    import torch

    width = max(len(t) for t in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        start = width - len(item)
        ids[row, start:] = torch.tensor(item.input_ids)
        labels[row, start:] = torch.tensor(item.labels)
        mask[row, start:] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    targets = (labels != IGNORE).any(0).nonzero()
    first = int(targets[0]) if len(targets) else width - 1
    return Batch(
        ids.to(device),
        mask.to(device),
        positions.to(device),
        labels.to(device),
        min(width, width - first + 1),
    )


def loss_sum(model: Any, batch: Batch) -> "torch.Tensor":
    """Summed cross-entropy over the batch's assistant tokens (the caller divides by their count)."""
    import torch.nn.functional as F

    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        logits_to_keep=batch.keep,
        use_cache=False,
    )
    logits = out.logits[:, :-1].float()
    targets = batch.labels[:, batch.labels.shape[1] - batch.keep + 1 :]
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )


def length_grouped(
    lengths: list[int], batch_size: int, generator: "torch.Generator"
) -> list[list[int]]:
    """One epoch of batches: shuffle, sort by length within mega-batches, cut, shuffle the batches."""
    import torch

    order = torch.randperm(len(lengths), generator=generator).tolist()
    batches: list[list[int]] = []
    for start in range(0, len(order), batch_size * MEGA_BATCH):
        chunk = sorted(order[start : start + batch_size * MEGA_BATCH], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def steps_per_epoch(n_train: int, settings: TrainSettings) -> int:
    return math.ceil(math.ceil(n_train / settings.batch_size) / settings.grad_accum)


def total_steps(n_train: int, settings: TrainSettings) -> int:
    if settings.max_steps is not None:
        return settings.max_steps
    return max(1, math.ceil(settings.epochs * steps_per_epoch(n_train, settings)))


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup, then linear decay; unlike the transformers schedule no step runs at lr 0,
    which matters when a run is 15 steps long."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / (total - warmup))


def _step_groups(
    lengths: list[int], settings: TrainSettings, generator: "torch.Generator"
) -> Iterator[list[list[int]]]:
    """Endless optimizer steps, each a list of micro-batches; an epoch's last step may be short."""
    while True:
        batches = length_grouped(lengths, settings.batch_size, generator)
        for start in range(0, len(batches), settings.grad_accum):
            yield batches[start : start + settings.grad_accum]


def evaluate(
    model: Any,
    examples: list[Tokens],
    batch_size: int,
    pad_id: int,
    device: str,
    accelerator: Accelerator | None = None,
) -> float:
    """Mean loss per assistant token over the examples; on several processes each scores its share
    and the sums are added up, so every process gets the same number."""
    import torch

    model.eval()
    share = (
        examples
        if accelerator is None
        else examples[accelerator.process_index :: accelerator.num_processes]
    )
    order = sorted(range(len(share)), key=lambda i: len(share[i]))
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            items = [share[i] for i in order[start : start + batch_size]]
            total += float(loss_sum(model, collate(items, pad_id, device)))
            count += sum(t.targets for t in items)
    if accelerator is not None and accelerator.num_processes > 1:
        total, count = summed(accelerator, total, count)
    return total / max(count, 1)


def summed(accelerator: Accelerator, *values: float) -> list[float]:
    """Each value added up over every process (float64: token counts stay exact)."""
    import torch

    local = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    return accelerator.reduce(local, reduction="sum").tolist()


class BestWeights:
    """The lowest validation loss so far, the step that reached it and a copy of its trainable
    weights."""

    def __init__(self) -> None:
        self.loss, self.step, self.stale = math.inf, None, 0
        self.weights: dict[str, Any] = {}

    def offer(self, model: Any, step: int, loss: float) -> None:
        if loss < self.loss:
            self.loss, self.step, self.stale = loss, step, 0
            self.weights = {
                n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
            }
        else:
            self.stale += 1

    def restore(self, model: Any) -> None:
        import torch

        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in self.weights:
                    param.copy_(self.weights[name])


def shard(items: list[int], accelerator: Accelerator) -> tuple[list[int], bool]:
    """This process's examples of a micro-batch (every N-th), and whether they count. A process
    whose share is empty (a micro-batch smaller than N) computes the first example's loss times
    zero, so every process runs the same forward and backward passes: the wrappers' gradient
    all-reduce needs each of them."""
    mine = items[accelerator.process_index :: accelerator.num_processes]
    return (mine, True) if mine else (items[:1], False)


def fit(
    model: Any,
    train: list[Tokens],
    val: list[Tokens],
    settings: TrainSettings,
    pad_id: int,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    accelerator: Accelerator | None = None,
) -> Fit:
    """Train the model's trainable (LoRA) parameters in place; with validation data, end on the best
    ones.

    `accelerator`: the one a launched process made (see worker.py); None is a single process on
    `device`. The caller saves `accelerator.unwrap_model(model)`."""
    import torch
    from accelerate import Accelerator

    accelerator = accelerator or Accelerator(cpu=device == "cpu")
    processes = accelerator.num_processes
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    steps = total_steps(len(train), settings)
    warmup = min(math.ceil(settings.warmup_ratio * steps), steps - 1)
    # the schedule is stepped once per optimizer step on every process: not prepared (accelerate's
    # would step once per process)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, warmup=warmup, total=steps)
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    if processes > 1:
        # each process its own dropout masks, as every example has its own in one process (the same
        # seed on every process gave example k of each share the same mask); the weights start alike
        # (DDP sends process 0's)
        torch.manual_seed(settings.seed + accelerator.process_index)
    groups = _step_groups(
        [len(t) for t in train], settings, torch.Generator().manual_seed(settings.seed)
    )
    metrics: list[dict[str, Any]] = []
    best = BestWeights()
    tokens, seconds = 0, 0.0
    shown = {"loss": "-", "val": "-", "rate": "-"}
    quiet = None if accelerator.is_main_process else Console(quiet=True)
    with StageProgress("training", steps, unit="steps", console=quiet) as bar:
        for step in range(1, steps + 1):
            group = next(groups)
            targets = sum(train[i].targets for batch in group for i in batch)
            started = time.perf_counter()
            model.train()
            step_loss, step_tokens, lr = 0.0, 0, schedule.get_last_lr()[0]
            for number, indices in enumerate(group, 1):
                mine, counts = shard(indices, accelerator)
                batch = collate([train[i] for i in mine], pad_id, accelerator.device)
                loss = loss_sum(model, batch) / max(targets, 1)
                syncing = number == len(group) or processes == 1
                with nullcontext() if syncing else accelerator.no_sync(model):
                    accelerator.backward(
                        loss if processes == 1 else loss * (processes if counts else 0)
                    )
                if counts:
                    step_loss += loss.item()
                    step_tokens += batch.tokens
            if processes > 1:
                step_loss, step_tokens = summed(accelerator, step_loss, step_tokens)
                step_tokens = int(step_tokens)
            if not math.isfinite(step_loss):
                raise HarnessError(
                    f"training diverged: the loss is {step_loss} at step {step}.\n"
                    f"  fix: lower `lr` (now {settings.lr:g})"
                )
            accelerator.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - started
            tokens, seconds = tokens + step_tokens, seconds + elapsed
            row = {
                "step": step,
                "train_loss": step_loss,
                "lr": lr,
                "tokens": step_tokens,
                "tokens_per_s": step_tokens / elapsed,
            }
            shown.update(loss=f"{step_loss:.4f}", rate=f"{tokens / seconds:.0f}")
            if val and (step % settings.eval_every == 0 or step == steps):
                row["val_loss"] = evaluate(
                    model, val, settings.batch_size, pad_id, accelerator.device, accelerator
                )
                best.offer(model, step, row["val_loss"])
                shown["val"] = f"{row['val_loss']:.4f}"
            metrics.append(row)
            bar.advance(note="loss {loss}  val {val}  {rate} tok/s".format(**shown))
            if (
                settings.early_stopping_patience is not None
                and best.stale >= settings.early_stopping_patience
            ):
                log(
                    f"early stopping at step {step}: no better validation loss in {best.stale}"
                    f" evaluations (best {best.loss:.4f} at step {best.step})"
                )
                break
    if best.step is not None and best.step != metrics[-1]["step"]:
        best.restore(model)
    return Fit(metrics, best.step, tokens, seconds)
