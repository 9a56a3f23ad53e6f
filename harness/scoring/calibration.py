"""Calibration sets: labeled examples a judge must agree with before its scores may decide a gate.

A rubric names its set (`calibration: calibration/NAME.jsonl`, relative to the rubric YAML). Each
line is one item: the variables the rubric's template shows (`question`, `answer` or
`answer_a`/`answer_b`, `reference`, `context`, `metadata`) and the `label` a careful person gives it
under the rubric (a score on its scale, one of its labels, or A / B / tie for pairwise rubrics).
`kind` (positive / negative / hard ...) and `note` are for people reading the set. The shipped sets
were written and labeled by this project.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from pydantic import ValidationError

from harness.core.errors import ConfigError
from harness.core.strict import Strict
from harness.core.textfiles import read_text
from harness.core.yamlfile import jsonl_records, key_path

MIN_ITEMS = 10  # fewer cannot tell a judge that agrees from one that was lucky
# The ways a calibration answer ends up read (judging.calibrate counts them): rubrics.Reply.read_by,
# or not at all.
READS = ("logprobs", "structured", "unanswered")
SHAPE = (
    'one JSON object per line: {"id", "question", "answer" (pairwise: "answer_a", "answer_b"), '
    '"reference"?, "context"?, "metadata"?, "label", "kind"?, "note"?}; see judges/calibration/'
)


class CalibrationItem(Strict):
    id: str
    question: str
    answer: str | None = None
    answer_a: str | None = None
    answer_b: str | None = None
    reference: str | None = None
    context: str = ""
    metadata: dict[str, Any] = {}
    label: int | str
    kind: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class CalibrationSet:
    path: Path
    items: tuple[CalibrationItem, ...]
    content_hash: str


# (problem, fix) when an item does not fit the rubric it calibrates (rubrics.Rubric.misfit), else
# None
Misfit = Callable[["CalibrationItem"], "tuple[str, str] | None"]


def load_calibration(path: Path, misfit: Misfit) -> CalibrationSet:
    """Every item checked against the rubric it calibrates (`misfit`, the rubric's own test: the set
    is read for one rubric, and only the rubric knows what its judge is shown); a bad item is a
    ConfigError at its line."""
    if not path.is_file():
        raise ConfigError(
            str(path),
            "",
            "calibration set not found",
            "write the labeled items there (see judges/calibration/), or fix `calibration:` "
            "in the rubric (relative to the rubric file)",
        )
    items: list[CalibrationItem] = []
    seen: set[str] = set()
    for where, raw in jsonl_records(read_text(path).splitlines(), path, SHAPE):
        try:
            item = CalibrationItem.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            fix = "remove it or fix its spelling" if err["type"] == "extra_forbidden" else SHAPE
            raise ConfigError(
                where,
                key_path(err["loc"]) or "(item)",
                err["msg"].removeprefix("Value error, "),
                fix,
            ) from None
        problem = misfit(item)
        if problem is not None:
            raise ConfigError(where, f"item {item.id!r}", *problem)
        if item.id in seen:
            raise ConfigError(
                where, "id", f"item id {item.id!r} repeats", "give every item a unique `id`"
            )
        seen.add(item.id)
        items.append(item)
    if len(items) < MIN_ITEMS:
        raise ConfigError(
            str(path),
            "",
            f"{len(items)} items; a calibration set needs at least {MIN_ITEMS}",
            "add labeled items: clear positives, clear negatives and hard cases",
        )
    if len({str(i.label) for i in items}) < 2:
        raise ConfigError(
            str(path),
            "label",
            "every item has the same label, so agreement is undefined",
            "add items with other labels",
        )
    return CalibrationSet(path, tuple(items), hashlib.sha256(path.read_bytes()).hexdigest())


def template_variables(item: CalibrationItem) -> dict[str, Any]:
    """What the rubric's template is rendered with, as in a run (see judging.judgements)."""
    answers = (
        {"answer": item.answer}
        if item.answer is not None
        else {"answer_a": item.answer_a, "answer_b": item.answer_b}
    )
    return {
        "question": item.question,
        "context": item.context,
        "metadata": item.metadata,
        **({"reference": item.reference} if item.reference is not None else {}),
        **answers,
    }


def read_counts(check: Mapping[str, Any]) -> str:
    """How a judge check's answers were actually read, from its stored dict: `logprobs 38,
    structured 4` (pairwise items count both orders' answers); `not counted` for a check stored
    before reads were counted.
    """
    read = check.get("read")
    if not read:
        return "not counted"
    answers = sum(read.values())
    both = f" ({answers} answers: both orders of each item)" if answers != check["items"] else ""
    return ", ".join(f"{how} {n}" for how, n in read.items() if n) + both


def reading(check: Mapping[str, Any]) -> str:
    """The way the answers were asked for (judge.method, as resolved) beside the ways they were
    read: `asked: logprobs; read: logprobs 38, structured 4`."""
    return f"asked: {check['method']}; read: {read_counts(check)}"
