"""Every number and every switch a user writes has its own type (issue 33, item 9): a boolean or a
quoted number where a number belongs, and a quoted word or a number where a boolean belongs, is
refused at its file:line and key, never converted (`alpha_split: true` was read as 1.0, `wave: "20"`
as 20, `fail_fast: "yes"` as true).

The fields are found by walking the pydantic models themselves from a document of each kind the
harness reads (config, suite, scorer settings, rubric, case, calibration item), so a field added
later is held to it too; and every such field of every model must be walked, so a model added later
fails here until a document reaches it.
"""

from __future__ import annotations

import copy
import json
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from harness.core.errors import ConfigError, Problems
from harness.core.strict import Strict
from harness.planning.config import Config, read_config
from harness.planning.suites import Case, SuiteFile, load_cases, load_suite
from harness.scoring.calibration import CalibrationItem, load_calibration
from harness.scoring.registry import known_types, scorer_type
from harness.scoring.rubrics import Rubric, load_rubric

Loc = tuple[Any, ...]
NUMBERS = {int, float}

CONFIG = {
    "name": "strict",
    "model": "./model",
    "seed": 0,
    "engine": {"kind": "scripted", "script": [{"answer": "ok", "delay_s": 0, "times": 1}]},
    "generation": {"max_tokens": 8, "temperature": 0, "top_p": 1},
    "candidates": [
        {
            "name": "bare",
            "kind": "prompt",
            "few_shot": [{"user": "u", "assistant": "a"}],
            "generation": {"max_tokens": 8},
        },
        {"name": "rag", "kind": "rag", "retrieval": {"documents": "docs"}},
        {"name": "tuned", "kind": "lora", "train": {"data": "train.jsonl", "lora": {"r": 8}}},
        {"name": "api", "kind": "endpoint", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
    ],
    "suites": ["suites/s", {"suite": "suites/s", "candidates": ["bare"]}],
    "gates": [{"candidate": "tuned", "suite": "s", "metric": "m", "min": 0.5}],
    "gate_policy": {"ungated_regressions": "warn"},
    "stats": {"resamples": 1000},
    "drift": {"baseline": "pin"},
    "stop_when_settled": {"wave": 10},
    "judge": {"endpoint": {"base_url": "http://127.0.0.1:9/v1", "model": "judge"}},
    "report": {"mlflow": {"tracking_uri": "file:///tmp/mlruns"}},
    "store": {"url": "runs.sqlite"},
}
SUITE = {
    "name": "s",
    "cases": "cases.jsonl",
    "sample": {"n": 1, "seed": 0},
    "limit": 1,
    "generation": {"max_tokens": 8},
    "scorers": ["json_valid"],
}
RUBRIC = {
    "name": "r",
    "mode": "pointwise",
    "scale": {"min": 1, "max": 5},
    "criteria": "right?",
    "template": "r.j2",
    "min_agreement": 0.5,
    "pass_at": 4,
}
CASE = {"id": "c1", "prompt": "q", "choices": ["a", "b"], "answer_index": 0}
ITEM = {"id": "i1", "question": "q", "answer": "a", "label": 3}
# what a scorer type needs besides `type` to be valid
SCORER_NEEDS = {
    "regex": {"pattern": "x"},
    "json_schema": {"schema": {}},
    "judge": {"rubric": "correctness"},
}


def _yaml_line(text: str, loc: Loc) -> int:
    """The 1-based line of the key at `loc`, found by PyYAML's own composer."""
    node = yaml.compose(text)
    line = 0
    for part in loc:
        if isinstance(part, int):
            node = node.value[part]
            line = node.start_mark.line
        else:
            key, node = next((k, v) for k, v in node.value if k.value == part)
            line = key.start_mark.line
    return line + 1


@dataclass(frozen=True)
class Kind:
    """A kind of file the harness reads: its model, a valid document of it, how it is written and
    read."""

    name: str
    model: type[BaseModel]
    document: dict[str, Any]
    write: Callable[
        [Path, dict[str, Any]], tuple[Path, str]
    ]  # -> (the file that holds the document, its text)
    read: Callable[[Path], list[str]]  # -> the errors reported (empty: accepted)
    at: Loc = ()  # where the document sits in its file: an error in a document inside another names its line
    rows: bool = False  # JSONL: an error names the row

    def line(self, text: str, loc: Loc) -> int:
        return 1 if self.rows else _yaml_line(text, self.at or loc)

    def key(self, loc: Loc) -> str:
        return dotted(self.at + loc)


def _raised(read: Callable[[], object]) -> list[str]:
    try:
        read()
    except ConfigError as exc:
        return [str(exc)]
    return []


def _write_config(folder: Path, document: dict[str, Any]) -> tuple[Path, str]:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, default_flow_style=False))
    return path, path.read_text()


def _read_config(path: Path) -> list[str]:
    problems = Problems()
    read_config(path, problems)
    return [str(error) for error in problems.listed(str(path))]


def _write_suite(folder: Path, suite: dict[str, Any]) -> tuple[Path, str]:
    """Scorer settings are written one entry a line ({type: ..., ...}): a scorer's errors name its
    entry's line."""
    (folder / "cases.jsonl").write_text(
        json.dumps({"id": "c1", "prompt": "q", "reference": "{}"}) + "\n"
    )
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False, default_flow_style=None))
    return path, path.read_text()


def _write_rubric(folder: Path, rubric: dict[str, Any]) -> tuple[Path, str]:
    (folder / "r.j2").write_text("{{ criteria }} {{ question }} {{ answer }}")
    path = folder / "r.yaml"
    path.write_text(yaml.safe_dump(rubric, sort_keys=False, default_flow_style=False))
    return path, path.read_text()


def _write_row(name: str) -> Callable[[Path, dict[str, Any]], tuple[Path, str]]:
    def write(folder: Path, row: dict[str, Any]) -> tuple[Path, str]:
        path = folder / name
        path.write_text(json.dumps(row) + "\n")
        return path, path.read_text()

    return write


def _scorer_kinds() -> list[Kind]:
    """One kind per scorer settings model, as a suite's only scorer."""
    first: dict[type[BaseModel], str] = {}
    for name in known_types():
        first.setdefault(scorer_type(name).params, name)  # type: ignore[union-attr]
    return [
        Kind(
            f"scorer {name}",
            params,
            {"type": name, **SCORER_NEEDS.get(name, {})},
            lambda folder, entry: _write_suite(folder, {**SUITE, "scorers": [entry]}),
            lambda path: _raised(lambda: load_suite(path)),
            at=("scorers", 0),
        )
        for params, name in first.items()
    ]


# Each engine's settings are a member of `engine:`'s union, walked through a config that names it.
ENGINES = {
    "vllm": {"kind": "vllm", "max_concurrency": 2, "enforce_eager": True},
    "transformers": {"kind": "transformers", "batch_size": 2},
}
KINDS = [
    Kind("config", Config, CONFIG, _write_config, _read_config),
    *(
        Kind(
            f"config with {name}", Config, {**CONFIG, "engine": engine}, _write_config, _read_config
        )
        for name, engine in ENGINES.items()
    ),
    Kind("suite", SuiteFile, SUITE, _write_suite, lambda path: _raised(lambda: load_suite(path))),
    *_scorer_kinds(),
    Kind("rubric", Rubric, RUBRIC, _write_rubric, lambda path: _raised(lambda: load_rubric(path))),
    Kind(
        "case",
        Case,
        CASE,
        _write_row("cases.jsonl"),
        lambda path: _raised(lambda: load_cases(path)),
        rows=True,
    ),
    Kind(
        "calibration item",
        CalibrationItem,
        ITEM,
        _write_row("items.jsonl"),
        lambda path: _raised(lambda: load_calibration(path, lambda item: None)),
        rows=True,
    ),
]


def scalars(annotation: Any) -> set[type]:
    """The plain types a field takes as itself (through Optional, unions and Annotated; not inside a
    list)."""
    if annotation in (bool, int, float, str):
        return {annotation}
    if get_origin(annotation) in (Union, types.UnionType) or hasattr(annotation, "__metadata__"):
        return set().union(*(scalars(arg) for arg in get_args(annotation)))
    return set()


def models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in models_in(arg)]


def member(annotation: Any, value: dict[str, Any]) -> type[BaseModel]:
    """The model a mapping validates as: the one there is, or the union's member its `kind` names."""
    found = models_in(annotation)
    if len(found) == 1:
        return found[0]
    return next(
        m for m in found if value.get("kind") in get_args(m.model_fields["kind"].annotation)
    )


def fields(
    model: type[BaseModel], document: dict[str, Any], loc: Loc = ()
) -> Iterator[tuple[type[BaseModel], Loc, set[type]]]:
    """(model, key path, plain types) of each number or boolean field of `model` and of every model
    nested in `document`, which validates as `model`."""
    for name, field in model.model_fields.items():
        kinds = scalars(field.annotation)
        if kinds & {bool, *NUMBERS}:
            yield model, (*loc, name), kinds
        value = document.get(name)
        for i, item in enumerate(value) if isinstance(value, list) else [(None, value)]:
            if isinstance(item, dict) and models_in(field.annotation):
                where = (*loc, name) if i is None else (*loc, name, i)
                yield from fields(member(field.annotation, item), item, where)


def wrong_values(kinds: set[type]) -> list[Any]:
    """What must be refused where a value of `kinds` belongs: a boolean or a quoted number for a
    number, a quoted boolean or a number for a boolean (a quoted one is fine where text is allowed
    too)."""
    wrong: list[Any] = []
    if kinds & NUMBERS:
        wrong += [True] + (["2"] if str not in kinds else [])
    if bool in kinds:
        wrong += (["true"] if str not in kinds else []) + ([1] if not kinds & NUMBERS else [])
    return wrong


def placed(document: dict[str, Any], loc: Loc, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target: Any = changed
    for part in loc[:-1]:
        target = target[part]
    target[loc[-1]] = value
    return changed


def dotted(loc: Loc) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


CHANGES = [
    pytest.param(kind, loc, value, id=f"{kind.name}:{dotted(loc)}={value!r}")
    for kind in KINDS
    for _, loc, kinds in fields(kind.model, kind.document)
    for value in wrong_values(kinds)
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_each_document_is_valid_as_written(kind: Kind) -> None:
    """The documents the changes start from validate, so that each refusal below is the changed
    value's alone."""
    kind.model.model_validate(kind.document)


@pytest.mark.parametrize(("kind", "loc", "value"), CHANGES)
def test_a_wrong_typed_value_is_refused_at_its_line(
    tmp_path: Path, kind: Kind, loc: Loc, value: Any
) -> None:
    """At the line of its key (of the scorer entry that holds it; of its row in JSONL) and its key
    path (and the member of a union, such as a calibration item's `label.int`)."""
    path, text = kind.write(tmp_path, placed(kind.document, loc, value))
    where = re.compile(rf"{re.escape(f'{path}:{kind.line(text, loc)}: {kind.key(loc)}')}(\.\w+)?: ")
    errors = kind.read(path)
    assert errors, f"{kind.key(loc)}: {value!r} was accepted"
    said = next((error for error in errors if where.match(error)), None)
    assert said is not None and "Input should be a valid" in said, (where.pattern, errors)
    if not kind.rows:
        assert f", not {json.dumps(value)}\n  fix: write " in said, said


def test_every_number_and_boolean_of_every_model_is_walked() -> None:
    """Each such field of each model a file can hold (every model its fields name, each candidate
    kind and scorer type) is changed above: a model added later and reached by no document fails
    here."""
    walked = {
        (model, loc[-1]) for kind in KINDS for model, loc, _ in fields(kind.model, kind.document)
    }
    reachable: set[type[BaseModel]] = set()
    waiting = [kind.model for kind in KINDS]
    while waiting:
        model = waiting.pop()
        if model not in reachable:
            reachable.add(model)
            waiting += [
                found
                for field in model.model_fields.values()
                for found in models_in(field.annotation)
            ]
    assert all(issubclass(model, Strict) for model in reachable)
    missed = sorted(
        f"{model.__module__}.{model.__name__}.{name}"
        for model in reachable
        for name, field in model.model_fields.items()
        if scalars(field.annotation) & {bool, *NUMBERS} and (model, name) not in walked
    )
    assert missed == []


def test_a_number_with_an_exponent_is_a_number(tmp_path: Path) -> None:
    """YAML 1.1 reads `1e-4` as text (it wants `1.0e-4`), which strict types would refuse: the
    harness reads it as the number every ML config means by it."""
    train = {"data": "train.jsonl", "lr": "LR", "weight_decay": "WD", "epochs": "EP"}
    document = placed(CONFIG, ("candidates", 2, "train"), train)
    path, _ = _write_config(tmp_path, document)
    path.write_text(
        path.read_text().replace("LR", "1e-4").replace("WD", "2.5E-2").replace("EP", "3e0")
    )
    loaded = read_config(path, Problems(collect=False))
    assert loaded is not None
    settings = loaded.config.candidates[2].train
    assert (settings.lr, settings.weight_decay, settings.epochs) == (1e-4, 0.025, 3.0)
