"""Judge rubrics: a YAML file (what is judged, on which scale or labels) beside a jinja2 prompt
template.

Shipped rubrics live in judges/ and are used by name; a suite can also point at its own YAML. Every
rubric is checked when its suite loads: the YAML against `Rubric`, the template by parsing it and
rendering it with sample variables, so a typo fails before any model starts.

The reply format is not the template's business: the harness appends one fixed instruction per way
of reading the answer. Structured: built from the same JSON Schema it sends as structured output, so
engines that enforce the schema (vLLM, OpenAI) and engines that do not (Anthropic's API,
transformers) ask for the same JSON, and one parser reads it. Token probabilities (G-Eval): the
answer alone, read off the first token's likeliest alternatives. A rubric also names its calibration
set (see calibration.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import traceback
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Sequence

import jinja2
import jsonschema
from jinja2 import meta
from pydantic import Field, model_validator

from harness.core.errors import ConfigError
from harness.core.paths import builtin_dir
from harness.core.strict import Strict
from harness.core.textfiles import read_text
from harness.core.yamlfile import load_yaml, validate
from harness.scoring.calibration import CalibrationItem, CalibrationSet, load_calibration

WINNERS = ("A", "B", "tie")
# Cohen's kappa of 0.6 is the usual line between "moderate" and "substantial" agreement (Landis &
# Koch).
DEFAULT_MIN_AGREEMENT = 0.6
REASONING_CHARS = 300
ANSWER_KEY = {"pointwise": "score", "classify": "answer", "pairwise": "winner"}
# How a judge's answer is read: off the first token's probabilities, or from a JSON reply
# (structured output).
Method = Literal["logprobs", "structured"]
# The answer a judge is asked for, per mode; `reference` only when the rubric shows it.
COMMON_VARIABLES = ("criteria", "question", "context", "metadata")
ANSWER_VARIABLES = {
    "pointwise": ("answer",),
    "classify": ("answer",),
    "pairwise": ("answer_a", "answer_b"),
}


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
    needs_context: bool = Field(
        False, description="judge only answers given retrieved text (RAG candidates)"
    )
    higher_is_better: bool = Field(
        True, description="classify: false when the positive label is the bad outcome"
    )
    template: str = Field(description="jinja2 file, relative to this YAML")
    calibration: str | None = Field(
        None,
        description=(
            "JSONL of labeled items, relative to this YAML: a judge "
            "must agree with them before its scores may gate"
        ),
    )
    min_agreement: float = Field(
        DEFAULT_MIN_AGREEMENT,
        ge=-1,
        le=1,
        description=(
            "the bar on the rubric's agreement statistic (kappa; quadratic "
            "weighted kappa for scales) that a judge must reach to gate"
        ),
    )
    pass_at: int | None = Field(
        None,
        description=(
            "pointwise: the lowest score that counts as a pass when "
            "agreement on pass/fail is reported (default: the top quarter)"
        ),
    )

    @model_validator(mode="after")
    def _fits_mode(self) -> "Rubric":
        if (self.mode == "pointwise") != (self.scale is not None):
            raise ValueError(
                "`scale: {min, max}` is required for mode pointwise and only allowed there"
            )
        if (self.mode == "classify") != (self.labels is not None and self.positive is not None):
            raise ValueError(
                "`labels` and `positive` are required for mode classify and only allowed there"
            )
        if self.labels is not None:
            if len(set(self.labels)) != len(self.labels) or len(self.labels) < 2:
                raise ValueError("`labels` needs at least two distinct labels")
            if any(not label.strip() for label in self.labels):
                raise ValueError("a label must be non-empty")
            if self.positive not in self.labels:
                raise ValueError(
                    f"`positive` {self.positive!r} is not one of the labels {self.labels}"
                )
        if self.pass_at is not None and (
            self.scale is None or not self.scale.min < self.pass_at <= self.scale.max
        ):
            raise ValueError(
                "`pass_at` applies to pointwise rubrics and must lie above `scale.min`, up to"
                " `scale.max`"
            )
        return self

    @property
    def passing_score(self) -> int:
        """Pointwise: scores from here up count as a pass (1..5 -> 4)."""
        assert self.scale is not None
        return (
            self.pass_at
            if self.pass_at is not None
            else self.scale.max - (self.scale.max - self.scale.min) // 4
        )

    def allowed_labels(self) -> list[int | str]:
        if self.scale is not None:
            return list(range(self.scale.min, self.scale.max + 1))
        return list(self.labels or ("A", "B", "tie"))

    def misfit(self, item: CalibrationItem) -> tuple[str, str] | None:
        """(problem, fix) when the item cannot be shown to this rubric's judge or its label is not
        one it gives."""
        pairwise = self.mode == "pairwise"
        if pairwise and (item.answer_a is None or item.answer_b is None):
            return "a pairwise item needs `answer_a` and `answer_b`", "add both answers"
        if not pairwise and item.answer is None:
            return f"a {self.mode} item needs `answer`", "add the answer being judged"
        if self.show_reference and item.reference is None:
            return (
                "the rubric shows the judge a reference, and this item has none",
                "add `reference`",
            )
        if self.needs_context and not item.context.strip():
            return (
                "the rubric judges answers against retrieved text, and this item has no `context`",
                "add `context`",
            )
        allowed = self.allowed_labels()
        if item.label not in allowed or isinstance(item.label, bool):
            return (
                f"label {item.label!r} is not one the rubric gives",
                f"use one of {', '.join(map(repr, allowed))}",
            )
        return None


@dataclass(frozen=True)
class Reply:
    """A parsed judge reply: its reasons, and the score, label or winner. Read off token
    probabilities, the score is their expected value (a float), and `probabilities` (per option,
    renormalised) and `mass` (the options' share of the whole distribution before that) say how it
    was read."""

    reasoning: str
    answer: Any
    probabilities: dict[str, float] | None = None
    mass: float | None = None

    @property
    def read_by(self) -> Method:
        """How it was actually read: a judge asked for probabilities that returned none (or none of
        the options) was asked again, and read from its structured reply."""
        return "structured" if self.probabilities is None else "logprobs"


@dataclass(frozen=True)
class LoadedRubric:
    rubric: Rubric
    path: Path
    template: jinja2.Template
    calibration: CalibrationSet | None = None

    @cached_property
    def content_hash(self) -> str:
        """The rubric as a judge sees it: its YAML and its template."""
        digest = hashlib.sha256(self.path.read_bytes() + b"\0")
        digest.update((self.path.parent / self.rubric.template).read_bytes())
        return digest.hexdigest()

    @property
    def options(self) -> list[str]:
        """What a judge answers, as text: each score of the scale, each label, or A / B / tie."""
        r = self.rubric
        return (
            [str(s) for s in range(r.scale.min, r.scale.max + 1)]
            if r.scale
            else list(r.labels or WINNERS)
        )

    @property
    def reads_logprobs(self) -> bool:
        """Whether the answer can be read off the first token's probabilities: no option may begin
        another (a 1..10 scale's "1" would also be the start of "10")."""
        opts = [o.lower() for o in self.options]
        return not any(a != b and b.startswith(a) for a in opts for b in opts)

    @property
    def name(self) -> str:
        return self.rubric.name

    @property
    def mode(self) -> str:
        return self.rubric.mode

    @cached_property
    def schema(self) -> dict[str, Any]:
        """What the judge must reply: reasons first, so a model thinks before it scores. The reasons
        are capped so that constrained decoding always closes the JSON within `judge.max_tokens` (a
        small model otherwise repeats itself until it is cut off)."""
        return self._schema(REASONING_CHARS)

    @cached_property
    def reply_schema(self) -> dict[str, Any]:
        """What a reply is checked against: the same, but longer reasons from a judge that is only
        asked in the prompt (no structured output) are kept, not thrown away."""
        return self._schema(None)

    def _schema(self, reasoning_chars: int | None) -> dict[str, Any]:
        r = self.rubric
        if r.scale is not None:
            answer: dict[str, Any] = {
                "type": "integer",
                "minimum": r.scale.min,
                "maximum": r.scale.max,
            }
        else:
            answer = {"type": "string", "enum": list(r.labels or WINNERS)}
        key = ANSWER_KEY[r.mode]
        reasoning = (
            {"type": "string"}
            if reasoning_chars is None
            else {"type": "string", "maxLength": reasoning_chars}
        )
        return {
            "type": "object",
            "properties": {"reasoning": reasoning, key: answer},
            "required": ["reasoning", key],
            "additionalProperties": False,
        }

    @property
    def instruction(self) -> str:
        r = self.rubric
        if r.scale is not None:
            shape = f"<an integer from {r.scale.min} to {r.scale.max}>"
        else:
            options = [json.dumps(x) for x in r.labels or WINNERS]
            shape = f"{', '.join(options[:-1])} or {options[-1]}"
        return (
            'Reply with only a JSON object and nothing else: {"reasoning": "<one or two short'
            f' sentences>", "{ANSWER_KEY[r.mode]}": {shape}}}'
        )

    @property
    def answer_instruction(self) -> str:
        """For a judge read by its token probabilities: the answer alone, as the reply's first
        token."""
        r = self.rubric
        if r.scale is not None:
            return (
                f"Reply with only the score, one whole number from {r.scale.min} to {r.scale.max},"
                " and nothing else."
            )
        options = [json.dumps(x) for x in self.options]
        return f"Reply with only {', '.join(options[:-1])} or {options[-1]}, and nothing else."

    def render(self, method: Method = "structured", **variables: Any) -> str:
        """The judge prompt: the template with the rubric's criteria, then the reply instruction."""
        prompt = self.template.render(criteria=self.rubric.criteria.strip(), **variables).strip()
        return (
            f"{prompt}\n\n{self.instruction if method == 'structured' else self.answer_instruction}"
        )

    def read_logprobs(self, top: Sequence[tuple[str, float]]) -> tuple[Reply | None, str | None]:
        """G-Eval's reading (Liu et al., 2023) of the first token's likeliest alternatives: a
        scale's score is the probability-weighted mean of the scores, a label the likeliest label;
        probabilities are renormalised over the options found. A token counts for the one option it
        begins ("Yes", " yes" -> "yes").
        """
        probabilities: dict[str, float] = {}
        for token, logprob in top:
            text = token.strip().lower()
            hits = [o for o in self.options if text and o.lower().startswith(text)]
            if len(hits) == 1:
                probabilities[hits[0]] = probabilities.get(hits[0], 0.0) + math.exp(logprob)
        if not probabilities:
            shown = ", ".join(repr(t) for t, _ in top[:5])
            return (
                None,
                (
                    f"no option ({', '.join(self.options)}) among the first token's likeliest"
                    f" ({shown or 'none'})"
                ),
            )
        mass = sum(probabilities.values())
        shares = {o: probabilities[o] / mass for o in self.options if o in probabilities}
        if self.rubric.scale is not None:
            answer: Any = sum(int(o) * p for o, p in shares.items())
        else:
            answer = max(shares, key=lambda o: (shares[o], -self.options.index(o)))
        return Reply("", answer, {o: round(p, 4) for o, p in shares.items()}, round(mass, 4)), None

    def parse(self, text: str) -> tuple[Reply | None, str | None]:
        """(verdict, None), or (None, why) when no JSON object in the reply fits the schema."""
        value, why = first_json_object(text)
        if value is None:
            return None, why
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(self.reply_schema).iter_errors(value)
        )
        if error is not None:
            where = "/".join(str(x) for x in error.absolute_path) or "(root)"
            return None, f"reply does not fit the schema: {where}: {error.message[:200]}"
        answer = value[ANSWER_KEY[self.mode]]
        # JSON Schema counts 1.0 as an integer; the score is kept as the integer it is.
        return (
            Reply(value["reasoning"].strip(), int(answer) if self.mode == "pointwise" else answer),
            None,
        )


def first_json_object(text: str) -> tuple[dict | None, str | None]:
    """The first JSON object in a reply: models without structured output wrap it in prose or
    fences."""
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


_ENV = jinja2.Environment(
    autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
)
SENTINEL = "harness-sample-{}-5c1e"


def load_rubric(path: Path) -> LoadedRubric:
    """ConfigError (naming the rubric file, and the template line where there is one) unless the
    YAML is a valid rubric and its template parses, uses only known variables and places the
    answers."""
    data, node = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), "(top level)", "expected a mapping of keys", "see judges/correctness.yaml"
        )
    rubric: Rubric = validate(Rubric, data, path, node)
    template_path = path.parent / rubric.template
    if not template_path.is_file():
        raise ConfigError(
            str(path),
            "template",
            f"template file {str(template_path)!r} not found",
            "put the jinja2 template beside the rubric YAML and name it here",
        )
    source = read_text(template_path)
    allowed = (
        COMMON_VARIABLES
        + ANSWER_VARIABLES[rubric.mode]
        + (("reference",) if rubric.show_reference else ())
    )
    fix = f"a {rubric.mode} template may use: {', '.join(allowed)}"
    try:
        names = meta.find_undeclared_variables(_ENV.parse(source))
        template = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            str(path),
            "template",
            f"{rubric.template} line {exc.lineno} does not parse: {exc.message}",
            "fix the jinja2 syntax at that line",
        ) from None
    unknown = sorted(names - set(allowed))
    if unknown:
        hint = "; set `show_reference: true` to use `reference`" if "reference" in unknown else ""
        raise ConfigError(
            str(path),
            "template",
            f"{rubric.template} uses unknown variables: {', '.join(unknown)}",
            fix + hint,
        )
    loaded = LoadedRubric(rubric, path, template)
    sample = {
        name: SENTINEL.format(name)
        for name in ANSWER_VARIABLES[rubric.mode]
        + (("reference",) if rubric.show_reference else ())
    }
    try:
        rendered = loaded.render(
            question="What is the sample question?",
            context="[doc.md#0] sample text",
            metadata={},
            **sample,
        )
    except Exception as exc:  # noqa: BLE001 - a user template can fail in any way; report it as config
        raise ConfigError(
            str(path),
            "template",
            f"{rubric.template}{_template_line(exc)} does not render: {type(exc).__name__}: {exc}",
            fix + " (metadata may be empty: use metadata.get(...))",
        ) from None
    missing = [name for name, value in sample.items() if value not in rendered]
    if missing:
        raise ConfigError(
            str(path),
            "template",
            f"{rubric.template} never shows {', '.join(missing)} to the judge",
            "place them in the prompt, e.g. {{ " + missing[0] + " }}",
        )
    if rubric.calibration is None:
        return loaded
    return replace(
        loaded, calibration=load_calibration(path.parent / rubric.calibration, rubric.misfit)
    )


def _template_line(exc: Exception) -> str:
    """' line N' for the deepest template frame in a render error (jinja2 rewrites tracebacks to
    it)."""
    lines = [
        f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"
    ]
    return f" line {lines[-1]}" if lines else ""
