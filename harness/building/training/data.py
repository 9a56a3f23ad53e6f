"""Training data: local files become chat conversations, then token ids with an assistant-only loss
mask.

Every bad record is reported with the place a user can open (`data.jsonl:7`, `data.csv: row 3`),
because a training run that fails after minutes over line 7 is the worst way to learn about it.
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from harness.core.errors import ConfigError, HarnessError
from harness.core.textfiles import cause, check_text, read_text

ROLES = ("system", "user", "assistant")
IGNORE = -100  # the label torch's cross-entropy skips
SHAPE_FIX = (
    'one example per record: {"messages": [{"role": "user", "content": ...}, '
    '{"role": "assistant", "content": ...}]} or {"instruction": ..., "input": ..., "output": ...}'
)
_LOADERS = {".json": "from_json", ".csv": "from_csv", ".parquet": "from_parquet"}
T = TypeVar("T")


@dataclass(frozen=True)
class Example:
    """One conversation and where it came from, for error messages."""

    messages: list[dict[str, str]]
    where: str


@dataclass(frozen=True)
class Tokens:
    """Token ids and labels: the label is the token itself on assistant text, IGNORE elsewhere."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def targets(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise ConfigError(
            str(path),
            "",
            "training data not found",
            "check the `data:` path (relative to the config file)",
        )
    return path


def load_examples(path: Path) -> list[Example]:
    """Examples from a local JSONL, JSON, CSV or Parquet file (never from the network)."""
    require_file(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", *_LOADERS):
        raise ConfigError(
            str(path),
            "",
            f"unsupported data format {suffix or '(no suffix)'!r}",
            "use a .jsonl, .json, .csv or .parquet file",
        )
    records = (
        _jsonl_records(path) if suffix == ".jsonl" else _dataset_records(path, _LOADERS[suffix])
    )
    if not records:
        raise ConfigError(str(path), "", "the file is empty: no training examples", SHAPE_FIX)
    return [
        Example(_conversation(record, file, key), f"{file}: {key}" if key else file)
        for record, file, key in records
    ]


def _jsonl_records(path: Path) -> list[tuple[Any, str, str]]:
    """(record, file:line, key) per non-blank line, parsed here so errors can name the line."""
    records = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((json.loads(line), f"{path}:{number}", ""))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}:{number}",
                "",
                f"not valid JSON ({exc.msg} at column {exc.colno})",
                "one JSON object per line",
            ) from None
    return records


def _dataset_records(path: Path, loader: str) -> list[tuple[Any, str, str]]:
    """Rows read by `datasets` from the local file; its cache goes to a temp folder, not ~/.cache."""
    from datasets import Dataset

    if path.stat().st_size == 0:
        return []
    check_text(path)
    with tempfile.TemporaryDirectory(prefix="harness-data-") as cache:
        try:
            rows = getattr(Dataset, loader)(
                str(path), cache_dir=cache, keep_in_memory=True
            ).to_list()
        except Exception as exc:  # noqa: BLE001 - `datasets` and its readers raise many types; name the file
            raise ConfigError(
                str(path),
                "",
                f"could not be read as {path.suffix[1:]} ({cause(exc)})",
                "check the file opens in the tool that wrote it",
            ) from None
    return [(row, str(path), f"row {i}") for i, row in enumerate(rows, start=1)]


def _conversation(record: Any, file: str, key: str) -> list[dict[str, str]]:
    """Chat messages from a record in either accepted shape; a conversation must teach something."""

    def fail(problem: str, fix: str = SHAPE_FIX, field: str = "") -> ConfigError:
        return ConfigError(file, ".".join(k for k in (key, field) if k), problem, fix)

    if not isinstance(record, dict):
        raise fail(f"expected a JSON object, got {type(record).__name__}")
    if record.get("messages") is not None:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise fail("`messages` must be a non-empty list", field="messages")
        for i, message in enumerate(messages):
            if (
                not isinstance(message, dict)
                or message.get("role") not in ROLES
                or not isinstance(message.get("content"), str)
            ):
                raise fail(
                    "each message needs a `role` (system, user or assistant) and a string"
                    " `content`",
                    field=f"messages[{i}]",
                )
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    elif isinstance(record.get("instruction"), str) and "output" in record:
        extra, output = (_text(record.get(field)) for field in ("input", "output"))
        prompt = record["instruction"] + (f"\n\n{extra}" if extra.strip() else "")
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    else:
        raise fail("neither `messages` nor `instruction` and `output` fields")
    roles = [m["role"] for m in messages]
    if "assistant" not in roles or not any(
        m["content"].strip() for m in messages if m["role"] == "assistant"
    ):
        raise fail(
            "no assistant turn with text: nothing to learn from",
            "add the answer as a message with role `assistant` (or an `output` field), or remove"
            " the example",
            field="messages",
        )
    if "user" not in roles[: roles.index("assistant")]:
        raise fail(
            "an assistant turn comes before any user turn",
            "start the conversation with a user message",
            field="messages",
        )
    return messages


def _text(value: Any) -> str:
    """A cell as text: CSV readers turn empty cells into None and digits into numbers."""
    return "" if value is None else str(value)


def split(
    items: list[T], val_fraction: float, seed: int, data_file: str
) -> tuple[list[T], list[T]]:
    """(train, validation), a seeded shuffle so the same seed holds out the same examples."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(items) * val_fraction)) if val_fraction > 0 else 0
    if len(items) - n_val < 1:
        raise ConfigError(
            data_file,
            "",
            f"only {len(items)} example(s): none left to train on after holding out "
            f"{val_fraction:.0%} for validation",
            "add examples, or set `val_fraction: 0`",
        )
    return [items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]


def encode(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> tuple[Tokens, bool]:
    """The conversation in the model's own chat template, labels only on assistant text.

    Each assistant turn's span is found by rendering the conversation up to it (with the generation
    prompt) and through it; its closing end-of-turn token is a label too, so the model learns to
    stop. Returns the tokens (cut to max_length) and whether they were cut.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(
            messages[:i], tokenize=False, add_generation_prompt=True
        )
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (text.startswith(through) and through.startswith(before)):
            raise HarnessError(
                "the model's chat template renders earlier turns differently once later turns"
                " follow, so assistant tokens cannot be located; train on single-turn examples"
            )
        spans.append((len(before), len(through.rstrip())))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    labels = [
        tok if any(s < end and e > start for start, end in spans) else IGNORE
        for tok, (s, e) in zip(ids, encoded["offset_mapping"])
    ]
    return Tokens(ids[:max_length], labels[:max_length]), len(ids) > max_length
