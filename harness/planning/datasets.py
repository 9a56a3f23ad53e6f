"""Cases from the data users already have: any local file the `datasets` library reads (JSONL, JSON,
CSV, Parquet, Arrow) or a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`,
with a column mapping in suite.yaml (which column is the prompt, the chat messages, the reference,
the choices, ...), like Inspect's FieldSpec or lm-eval's doc_to_text / doc_to_target. Nothing is
fetched: the data is local.

    cases: data/questions.parquet columns: {id: qid, prompt: question, reference: answer, tags:
    topic, metadata: [source, difficulty]} split: test               # a DatasetDict folder's split
    sample: {n: 50, seed: 0}  # a seeded random subset limit: 100                # then at most this
    many rows
"""

from __future__ import annotations

import hashlib
import string
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import Field

from harness.core.errors import ConfigError
from harness.core.strict import Strict
from harness.core.textfiles import cause, check_text

T = TypeVar("T")

# Read by `datasets`; other suffixes (and .jsonl / .csv without a column mapping) keep their own
# readers.
READERS = {
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".arrow": "arrow",
}
CASE_FIELDS = ("prompt", "messages", "text", "reference", "choices", "answer_index")


class Columns(Strict):
    """suite.yaml `columns:`: case field -> the dataset column that holds it (exactly one of prompt,
    messages, text); `metadata` lists columns kept as the case's metadata."""

    id: str | None = Field(None, description="a column of unique ids; default: the row number")
    prompt: str | None = Field(None, description="a column of prompt strings")
    messages: str | None = Field(
        None, description="a column of chat messages ([{role, content}, ...])"
    )
    text: str | None = Field(None, description="a column of plain text scored for perplexity")
    reference: str | None = None
    choices: str | None = Field(None, description="a column of lists of choice strings")
    answer_index: str | None = Field(
        None, description="the right choice: an index, a letter (A, B, ...) or its text"
    )
    tags: str | None = Field(None, description="a column of tags (a list, or one string)")
    metadata: list[str] = Field([], description="columns kept as the case's metadata")


class Sample(Strict):
    n: int = Field(ge=1)
    seed: int = 0


def reads_with_datasets(path: Path, columns: Columns | None) -> bool:
    """A save_to_disk folder, a Parquet/Arrow/JSON file, or any readable file given a column
    mapping."""
    return (
        path.is_dir()
        or path.suffix.lower() in (".parquet", ".arrow", ".json")
        or (columns is not None and path.suffix.lower() in READERS)
    )


def data_hash(path: Path) -> bytes:
    """The bytes a suite's cases come from: the file, or every file of a save_to_disk folder (sorted
    by path)."""
    if path.is_file():
        return path.read_bytes()
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest().encode()


def subset(cases: list[T], sample: Sample | None, limit: int | None) -> list[T]:
    """A seeded random `sample` of the cases (kept in their order), then the first `limit`: the same
    for every format, so the same data and seed always give the same cases."""
    if sample is not None and sample.n < len(cases):
        keep = sorted(np.random.default_rng(sample.seed).permutation(len(cases))[: sample.n])
        cases = [cases[i] for i in keep]
    return cases[:limit] if limit is not None else cases


def dataset_records(
    path: Path, columns: Columns | None, split: str | None, where: str
) -> list[tuple[str, dict[str, Any]]]:
    """(file:row N, a case record in the JSONL shape) per row; `where`: the suite file's `cases:`
    line, where a mapping error is reported."""
    table = _read(path, split, where)
    if len(table) == 0:
        raise ConfigError(str(path), "", "no rows", "add at least one case")
    mapping = columns or Columns(
        **{f: f for f in ("id", *CASE_FIELDS, "tags") if f in table.column_names}
    )
    mapping = mapping.model_copy(
        update={
            "metadata": (
                mapping.metadata
                or (["metadata"] if columns is None and "metadata" in table.column_names else [])
            )
        }
    )
    _check_columns(mapping, table.column_names, path, where)
    return [_record(row, number, mapping, path) for number, row in enumerate(table, start=1)]


def _read(path: Path, split: str | None, where: str) -> Any:
    import datasets

    datasets.disable_progress_bars()
    if not path.exists():
        raise ConfigError(
            str(path),
            "",
            "cases file not found",
            "check `cases:` in the suite file (relative to it)",
        )
    check_text(path)
    try:
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
        elif path.suffix.lower() == ".arrow":
            loaded = datasets.Dataset.from_file(str(path))
        else:
            loaded = datasets.load_dataset(
                READERS[path.suffix.lower()],
                data_files=str(path),
                split="train",
                keep_in_memory=True,
            )
    except Exception as exc:  # noqa: BLE001 - `datasets` and its readers raise many types; each names the file here
        raise ConfigError(
            str(path),
            "",
            f"`datasets` cannot read it ({cause(exc)})",
            "give a JSONL, JSON, CSV, Parquet or Arrow file, or a folder saved by save_to_disk",
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            problem = "names no split" if split is None else f"has no split {split!r}"
            raise ConfigError(
                where,
                "split",
                f"{path} holds splits {', '.join(loaded)}; the suite {problem}",
                f"set `split:` to one of {', '.join(loaded)}",
            )
        return loaded[split]
    if split is not None:
        raise ConfigError(
            where, "split", f"{path} is a single dataset with no splits", "remove `split:`"
        )
    return loaded


def _check_columns(mapping: Columns, present: list[str], path: Path, where: str) -> None:
    sources = [f for f in ("prompt", "messages", "text") if getattr(mapping, f)]
    if len(sources) != 1:
        raise ConfigError(
            where,
            "columns",
            "map exactly one of prompt, messages or text to a column "
            f"({'none is' if not sources else ', '.join(sources) + ' are'} mapped)",
            f"the columns of {path.name} are: {', '.join(present)}",
        )
    for field, column in [(f, getattr(mapping, f)) for f in ("id", *CASE_FIELDS, "tags")] + [
        ("metadata", c) for c in mapping.metadata
    ]:
        if column is not None and column not in present:
            raise ConfigError(
                where,
                f"columns.{field}",
                f"column {column!r} is not in {path.name}",
                f"map `{field}` to one of its columns: {', '.join(present)}",
            )


def _record(
    row: dict[str, Any], number: int, mapping: Columns, path: Path
) -> tuple[str, dict[str, Any]]:
    """(where, a case record in the JSONL shape) for one row."""
    where = f"{path}:row {number}"
    raw: dict[str, Any] = {"id": str(row[mapping.id]) if mapping.id else str(number)}
    for field in CASE_FIELDS:
        column = getattr(mapping, field)
        if column is not None and row[column] is not None:
            raw[field] = row[column]
    if "reference" in raw and not isinstance(raw["reference"], str):
        raw["reference"] = str(raw["reference"])
    if "answer_index" in raw:
        raw["answer_index"] = _answer_index(raw["answer_index"], raw.get("choices") or [], where)
    if mapping.tags:
        tags = row[mapping.tags]
        raw["tags"] = (
            [] if tags is None else [str(t) for t in (tags if isinstance(tags, list) else [tags])]
        )
    if mapping.metadata == ["metadata"] and isinstance(row["metadata"], dict):
        raw["metadata"] = row["metadata"]
    elif mapping.metadata:
        raw["metadata"] = {c: row[c] for c in mapping.metadata}
    return where, raw


def _answer_index(value: Any, choices: list[str], where: str) -> int:
    """An index as it is (a number, or digits in a text column); a letter (A, B, ...) as its
    position; otherwise the text of one of the choices."""
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and float(value).is_integer()
    ):
        return int(value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    if len(text) == 1 and text.upper() in string.ascii_uppercase[: len(choices)]:
        return string.ascii_uppercase.index(text.upper())
    if text in choices:
        return choices.index(text)
    raise ConfigError(
        where,
        "answer_index",
        f"{value!r} is neither an index, a letter nor one of the choices",
        "map `answer_index` to a column of 0-based indices, letters (A, B, ...) or choice texts",
    )
