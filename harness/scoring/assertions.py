"""Golden-set assertions: deterministic pass/fail checks of an output against a value or the
reference."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import ValidationInfo, field_validator, model_validator

from harness.core.errors import HarnessError
from harness.core.textfiles import read_text
from harness.scoring.base import UNIT, Params, Score, ScoreInput, scorer

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


def parse_json(text: str, strip_fences: bool = True) -> tuple[Any, str | None]:
    """(value, None) or (None, why). Models often wrap JSON in a markdown fence; that alone is
    forgiven."""
    if strip_fences:
        match = _FENCE.match(text)
        text = match.group(1) if match else text
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


def _expected(value: str | None, item: ScoreInput) -> str:
    """The value to compare with. A case without one never reaches a scorer (the suite loader checks
    the needs of every case), and is an error here rather than a silent 0 that would look like a
    regression.
    """
    expected = value if value is not None else item.reference
    if expected is None:
        raise HarnessError("no `value` and the case has no `reference` to compare with")
    return expected


class TextParams(Params):
    """`value:` to compare with; without it the case's `reference` is used."""

    value: str | None = None
    ignore_case: bool = False

    def needs(self, declared: frozenset[str]) -> frozenset[str]:
        return declared - {"reference"} if self.value is not None else declared


class EqualsParams(TextParams):
    strip: bool = True


@scorer(EqualsParams, needs=("generated", "reference"), bounds=UNIT)
def equals(p: EqualsParams, item: ScoreInput) -> Score:
    expected = _expected(p.value, item)
    got = item.output.strip() if p.strip else item.output
    want = expected.strip() if p.strip else expected
    if p.ignore_case:
        got, want = got.casefold(), want.casefold()
    ok = got == want
    return Score(float(ok), ok, "" if ok else f"expected exactly {want[:200]!r}")


@scorer(TextParams, needs=("generated", "reference"), bounds=UNIT)
def contains(p: TextParams, item: ScoreInput) -> Score:
    expected = _expected(p.value, item)
    hay, needle = (
        (item.output.casefold(), expected.casefold()) if p.ignore_case else (item.output, expected)
    )
    ok = needle in hay
    return Score(float(ok), ok, "" if ok else f"does not contain {expected[:200]!r}")


class RegexParams(Params):
    pattern: str
    ignore_case: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern is not a valid regular expression ({exc})") from None
        return pattern


@scorer(RegexParams, bounds=UNIT)
def regex(p: RegexParams, item: ScoreInput) -> Score:
    ok = re.search(p.pattern, item.output, re.IGNORECASE if p.ignore_case else 0) is not None
    return Score(float(ok), ok, "" if ok else f"no match for /{p.pattern}/")


class JsonParams(Params):
    strip_fences: bool = True


@scorer(JsonParams, bounds=UNIT)
def json_valid(p: JsonParams, item: ScoreInput) -> Score:
    _, why = parse_json(item.output, p.strip_fences)
    return Score(float(why is None), why is None, why or "")


class SchemaParams(JsonParams):
    """The JSON Schema inline (`schema:`) or in a file beside the suite (`schema_file:`)."""

    json_schema: dict[str, Any] | None = None
    schema_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema" in data:
            data = {**data, "json_schema": data["schema"]}
            del data["schema"]
        return data

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> "SchemaParams":
        if (self.json_schema is None) == (self.schema_file is None):
            raise ValueError(
                "give exactly one of `schema:` (inline) or `schema_file:` (a path beside the suite)"
            )
        if self.schema_file is not None:
            path = Path((info.context or {}).get("suite_dir", ".")) / self.schema_file
            if not path.exists():
                raise ValueError(
                    f"schema_file {str(path)!r} not found (paths are relative to the suite file)"
                )
            self.json_schema = json.loads(read_text(path))
        try:
            jsonschema.validators.validator_for(self.json_schema).check_schema(self.json_schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return self


@scorer(SchemaParams, bounds=UNIT)
def json_schema(p: SchemaParams, item: ScoreInput) -> Score:
    value, why = parse_json(item.output, p.strip_fences)
    if why:
        return Score(0.0, False, why)
    validator = jsonschema.validators.validator_for(p.json_schema)(p.json_schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return Score(1.0, True)
    where = "/".join(str(x) for x in error.absolute_path) or "(root)"
    return Score(0.0, False, f"schema: {where}: {error.message[:200]}")


class FieldsParams(JsonParams):
    """Named fields of the output's JSON must equal the reference's; no `fields` means all of them."""

    fields: list[str] | None = None


@scorer(FieldsParams, needs=("generated", "json_reference"), bounds=UNIT)
def json_fields(p: FieldsParams, item: ScoreInput) -> Score:
    want, why = parse_json(_expected(None, item), strip_fences=True)
    if why or not isinstance(want, dict):
        return Score(
            0.0, False, f"the reference is not a JSON object ({why or type(want).__name__})"
        )
    got, why = parse_json(item.output, p.strip_fences)
    if why or not isinstance(got, dict):
        return Score(0.0, False, why or f"output is a JSON {type(got).__name__}, not an object")
    fields = p.fields if p.fields is not None else list(want)
    wrong = [f for f in fields if got.get(f, _MISSING) != want.get(f, _MISSING)]
    if not wrong:
        return Score(1.0, True)
    shown = ", ".join(
        f"{f}={got.get(f, '<missing>')!r} (want {want.get(f, '<missing>')!r})" for f in wrong[:4]
    )
    return Score(0.0, False, f"fields differ: {shown}")


_MISSING = object()
