"""Judge rubrics: a YAML file (what is judged, on which scale or labels) beside a jinja2 prompt template.

Shipped rubrics live in judges/ and are used by name; a suite can also point at its own YAML. Every
rubric is checked when its suite loads: the YAML against `Rubric`, the template by parsing it and
rendering it with sample variables, so a typo fails before any model starts.

The reply format is not the template's business: the harness appends one fixed instruction built from
the same JSON Schema it sends as structured output. Engines that enforce the schema (vLLM, OpenAI) and
engines that do not (Anthropic's API, transformers) thus ask for the same JSON, and one parser reads it.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import jinja2
import jsonschema
from jinja2 import meta
from pydantic import Field, model_validator

from harness.errors import ConfigError
from harness.paths import builtin_dir
from harness.strict import Strict
from harness.yamlfile import load_yaml, validate

WINNERS = ("A", "B", "tie")
REASONING_CHARS = 300
ANSWER_KEY = {"pointwise": "score", "classify": "answer", "pairwise": "winner"}
# The answer a judge is asked for, per mode; `reference` only when the rubric shows it.
COMMON_VARIABLES = ("criteria", "question", "context", "metadata")
ANSWER_VARIABLES = {"pointwise": ("answer",), "classify": ("answer",), "pairwise": ("answer_a", "answer_b")}


class Scale(Strict):
    min: int
    max: int

    @model_validator(mode="after")
    def _ordered(self) -> "Scale":
        if self.max <= self.min:
            raise ValueError("`scale.max` must be greater than `scale.min`")
        return self


class Rubric(Strict):
    name: str
    mode: Literal["pointwise", "pairwise", "classify"]
    scale: Scale | None = Field(None, description="pointwise: the integer range of a score")
    labels: list[str] | None = Field(None, description="classify: the answers a judge may give")
    positive: str | None = Field(None, description="classify: the label that scores 1.0")
    criteria: str
    show_reference: bool = Field(False, description="give the template the case's `reference`")
    needs_context: bool = Field(False, description="judge only answers given retrieved text (RAG candidates)")
    higher_is_better: bool = Field(True, description="classify: false when the positive label is the bad outcome")
    template: str = Field(description="jinja2 file, relative to this YAML")

    @model_validator(mode="after")
    def _fits_mode(self) -> "Rubric":
        if (self.mode == "pointwise") != (self.scale is not None):
            raise ValueError("`scale: {min, max}` is required for mode pointwise and only allowed there")
        if (self.mode == "classify") != (self.labels is not None and self.positive is not None):
            raise ValueError("`labels` and `positive` are required for mode classify and only allowed there")
        if self.labels is not None:
            if len(set(self.labels)) != len(self.labels) or len(self.labels) < 2:
                raise ValueError("`labels` needs at least two distinct labels")
            if any(not label.strip() for label in self.labels):
                raise ValueError("a label must be non-empty")
            if self.positive not in self.labels:
                raise ValueError(f"`positive` {self.positive!r} is not one of the labels {self.labels}")
        return self


@dataclass(frozen=True)
class Reply:
    """A parsed judge reply: its reasons, and the score, label or winner."""

    reasoning: str
    answer: Any


@dataclass(frozen=True)
class LoadedRubric:
    rubric: Rubric
    path: Path
    template: jinja2.Template

    @property
    def name(self) -> str:
        return self.rubric.name

    @property
    def mode(self) -> str:
        return self.rubric.mode

    @cached_property
    def schema(self) -> dict[str, Any]:
        """What the judge must reply: reasons first, so a model thinks before it scores. The reasons are
        capped so that constrained decoding always closes the JSON within `judge.max_tokens` (a small
        model otherwise repeats itself until it is cut off)."""
        return self._schema(REASONING_CHARS)

    @cached_property
    def reply_schema(self) -> dict[str, Any]:
        """What a reply is checked against: the same, but longer reasons from a judge that is only asked
        in the prompt (no structured output) are kept, not thrown away."""
        return self._schema(None)

    def _schema(self, reasoning_chars: int | None) -> dict[str, Any]:
        r = self.rubric
        if r.scale is not None:
            answer: dict[str, Any] = {"type": "integer", "minimum": r.scale.min, "maximum": r.scale.max}
        else:
            answer = {"type": "string", "enum": list(r.labels or WINNERS)}
        key = ANSWER_KEY[r.mode]
        reasoning = {"type": "string"} if reasoning_chars is None else {"type": "string", "maxLength": reasoning_chars}
        return {"type": "object", "properties": {"reasoning": reasoning, key: answer},
                "required": ["reasoning", key], "additionalProperties": False}

    @property
    def instruction(self) -> str:
        r = self.rubric
        if r.scale is not None:
            shape = f"<an integer from {r.scale.min} to {r.scale.max}>"
        else:
            options = [json.dumps(x) for x in (r.labels or WINNERS)]
            shape = f"{', '.join(options[:-1])} or {options[-1]}"
        return (f'Reply with only a JSON object and nothing else: {{"reasoning": "<one or two short sentences>", '
                f'"{ANSWER_KEY[r.mode]}": {shape}}}')

    def render(self, **variables: Any) -> str:
        """The judge prompt: the template with the rubric's criteria, then the reply instruction."""
        prompt = self.template.render(criteria=self.rubric.criteria.strip(), **variables).strip()
        return f"{prompt}\n\n{self.instruction}"

    def parse(self, text: str) -> tuple[Reply | None, str | None]:
        """(verdict, None), or (None, why) when no JSON object in the reply fits the schema."""
        value, why = first_json_object(text)
        if value is None:
            return None, why
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(self.reply_schema).iter_errors(value))
        if error is not None:
            where = "/".join(str(x) for x in error.absolute_path) or "(root)"
            return None, f"reply does not fit the schema: {where}: {error.message[:200]}"
        answer = value[ANSWER_KEY[self.mode]]
        # JSON Schema counts 1.0 as an integer; the score is kept as the integer it is.
        return Reply(value["reasoning"].strip(), int(answer) if self.mode == "pointwise" else answer), None


def first_json_object(text: str) -> tuple[dict | None, str | None]:
    """The first JSON object in a reply: models without structured output wrap it in prose or fences."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value, None
        start = text.find("{", start + 1)
    shown = " ".join(text.split())[:120]
    return None, f"no JSON object in the reply ({shown!r})" if shown else "empty reply"


def judges_dir() -> Path:
    """The shipped rubrics: judges/ in a checkout, harness.builtin_judges in a wheel."""
    return builtin_dir("judges")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in judges_dir().glob("*.yaml"))


def rubric_path(ref: str, suite_dir: Path) -> Path:
    """A bare name is a rubric shipped in judges/; a .yaml/.yml path is relative to the suite file."""
    if ref.endswith((".yaml", ".yml")):
        path = Path(ref).expanduser()
        return path if path.is_absolute() else suite_dir / path
    return judges_dir() / f"{ref}.yaml"


_ENV = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
SENTINEL = "harness-sample-{}-5c1e"


def load_rubric(path: Path) -> LoadedRubric:
    """ConfigError (naming the rubric file, and the template line where there is one) unless the YAML
    is a valid rubric and its template parses, uses only known variables and places the answers."""
    data, node = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), "(top level)", "expected a mapping of keys", "see judges/correctness.yaml")
    rubric: Rubric = validate(Rubric, data, path, node)
    template_path = path.parent / rubric.template
    if not template_path.is_file():
        raise ConfigError(str(path), "template", f"template file {str(template_path)!r} not found",
                          "put the jinja2 template beside the rubric YAML and name it here")
    source = template_path.read_text()
    allowed = COMMON_VARIABLES + ANSWER_VARIABLES[rubric.mode] + (("reference",) if rubric.show_reference else ())
    fix = f"a {rubric.mode} template may use: {', '.join(allowed)}"
    try:
        names = meta.find_undeclared_variables(_ENV.parse(source))
        template = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(str(path), "template", f"{rubric.template} line {exc.lineno} does not parse: {exc.message}",
                          "fix the jinja2 syntax at that line") from None
    unknown = sorted(names - set(allowed))
    if unknown:
        hint = "; set `show_reference: true` to use `reference`" if "reference" in unknown else ""
        raise ConfigError(str(path), "template", f"{rubric.template} uses unknown variables: {', '.join(unknown)}",
                          fix + hint)
    loaded = LoadedRubric(rubric, path, template)
    sample = {name: SENTINEL.format(name) for name in ANSWER_VARIABLES[rubric.mode]
              + (("reference",) if rubric.show_reference else ())}
    try:
        rendered = loaded.render(question="What is the sample question?", context="[doc.md#0] sample text",
                                 metadata={}, **sample)
    except Exception as exc:  # noqa: BLE001 - a user template can fail in any way; report it as config
        raise ConfigError(str(path), "template", f"{rubric.template}{_template_line(exc)} does not render: "
                          f"{type(exc).__name__}: {exc}",
                          fix + " (metadata may be empty: use metadata.get(...))") from None
    missing = [name for name, value in sample.items() if value not in rendered]
    if missing:
        raise ConfigError(str(path), "template", f"{rubric.template} never shows {', '.join(missing)} to the judge",
                          "place them in the prompt, e.g. {{ " + missing[0] + " }}")
    return loaded


def _template_line(exc: Exception) -> str:
    """' line N' for the deepest template frame in a render error (jinja2 rewrites tracebacks to it)."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
    return f" line {lines[-1]}" if lines else ""
