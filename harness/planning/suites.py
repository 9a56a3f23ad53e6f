"""Suites are data: a YAML file naming its cases (JSONL), its scorers and its generation settings."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from harness.core.errors import ConfigError
from harness.core.paths import builtin_dir
from harness.core.sampling import Generation
from harness.core.strict import Strict
from harness.core.textfiles import cause, csv_text, read_text
from harness.core.yamlfile import jsonl_records, key_path, line_of, load_yaml, validate
from harness.planning.datasets import (
    Columns,
    Sample,
    data_hash,
    dataset_records,
    reads_with_datasets,
    subset,
)
from harness.scoring.registry import CASE_NEEDS, ScorerSpec, build_scorer, implicit_scorer
from harness.scoring.retrieval import RETRIEVAL_METRICS


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class Case(Strict):
    """One input (chat messages, a prompt, or a `text` to score), an optional reference, and
    free-form tags/metadata. A multiple-choice case adds `choices` and `answer_index`: it is
    answered by the log-likelihood of each choice, not by generation; a `text` case is scored for
    perplexity."""

    id: str
    messages: list[Message] = []
    prompt: str | None = None
    text: str | None = Field(
        None, description="plain text whose log-likelihood is scored (perplexity probes)"
    )
    choices: list[str] | None = Field(None, min_length=2)
    answer_index: int | None = Field(None, ge=0)
    reference: str | None = None
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    _where: str = PrivateAttr("")  # file:line the case was read from, for errors

    @property
    def where(self) -> str:
        return self._where

    @model_validator(mode="after")
    def _one_input(self) -> "Case":
        # (validation runs again on a validated case, whose `text` is also its one message)
        as_text = self.text is not None and self.messages == [
            Message(role="user", content=self.text)
        ]
        chat = bool(self.messages) and not as_text
        if (chat + (self.prompt is not None) + (self.text is not None)) != 1:
            raise ValueError(
                "a case needs exactly one of `messages` (a chat), `prompt` (a string) or `text` "
                "(plain text to score)"
            )
        if (self.choices is None) != (self.answer_index is None):
            raise ValueError("a multiple-choice case needs both `choices` and `answer_index`")
        if self.choices is not None:
            if self.prompt is None and [m.role for m in self.messages] != ["user"]:
                raise ValueError("a multiple-choice case asks its question with `prompt`")
            if self.answer_index >= len(self.choices):  # type: ignore[operator]
                raise ValueError(
                    f"`answer_index` {self.answer_index} is past the last of {len(self.choices)}"
                    " choices (it counts from 0)"
                )
            self.reference = self.choices[self.answer_index]  # type: ignore[index]
        if self.prompt is not None or self.text is not None:
            self.messages = [
                Message(role="user", content=self.prompt if self.prompt is not None else self.text)
            ]
            self.prompt = None
        return self

    @property
    def loglik(self) -> str:
        """How the case is answered: "none" (generation), "choices" or "text" (log-likelihoods)."""
        return (
            "choices" if self.choices is not None else "text" if self.text is not None else "none"
        )


class SuiteFile(Strict):
    name: str
    description: str = ""
    cases: str = Field(
        description=(
            "the cases, relative to the suite file: JSONL in the case shape, a HarmBench CSV, "
            "or any file `datasets` reads (JSON, CSV, Parquet, Arrow) or a save_to_disk folder"
        )
    )
    columns: Columns | None = Field(None, description="which dataset column is which case field")
    split: str | None = Field(None, description="the split of a DatasetDict folder")
    sample: Sample | None = Field(None, description="a seeded random subset: {n, seed}")
    limit: int | None = Field(None, ge=1, description="at most this many cases (after `sample`)")
    generation: Generation = Generation()
    scorers: list[str | dict[str, Any]] = Field(
        min_length=1, description="a scorer type, or a mapping with `type:`"
    )


class Suite(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    description: str
    path: Path
    generation: Generation
    scorers: list[ScorerSpec]
    cases: list[Case]
    content_hash: str

    @property
    def metrics(self) -> list[str]:
        """Scorer metrics (retrieval metrics too, when cases name their gold documents)."""
        return list(self.directions)

    @property
    def directions(self) -> dict[str, bool]:
        """metric -> whether higher is better, for every metric the suite produces."""
        return {s.metric: s.higher_is_better for s in self.scorers}

    def scorer(self, metric: str) -> ScorerSpec | None:
        return next((s for s in self.scorers if s.metric == metric), None)

    def cases_for(self, spec: ScorerSpec) -> list[Case]:
        """The cases a scorer writes a row for (retrieval metrics: those with gold documents)."""
        return [c for c in self.cases if spec.applies(has_gold(c), retrieves=True)]


def has_gold(case: Case) -> bool:
    return bool(case.metadata.get("gold_doc_ids"))


def resolve_suite_path(ref: str, base_dir: Path) -> Path:
    """`builtin:NAME` is a suite shipped in suites/; anything else is a path from the config's
    folder."""
    if ref.startswith("builtin:"):
        return builtin_dir("suites") / ref.removeprefix("builtin:") / "suite.yaml"
    path = Path(ref).expanduser()
    path = (path if path.is_absolute() else base_dir / path).resolve()
    return path / "suite.yaml" if path.is_dir() else path


def load_suite(path: Path) -> Suite:
    data, node = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            str(path),
            "(top level)",
            "expected a mapping of keys",
            "see suites/tickets/suite.yaml for the shape",
        )
    spec: SuiteFile = validate(SuiteFile, data, path, node)
    scorers = []
    for i, raw in enumerate(spec.scorers):
        scorers.append(build_scorer(raw, path, line_of(node, ("scorers", i)), f"scorers[{i}]"))
    metrics = [s.metric for s in scorers]
    repeated = sorted({m for m in metrics if metrics.count(m) > 1})
    if repeated:
        raise ConfigError(
            f"{path}:{line_of(node, ('scorers',))}",
            "scorers",
            f"metric names repeat: {', '.join(repeated)}",
            "give each scorer a distinct `name:`",
        )
    cases_path = path.parent / spec.cases
    if reads_with_datasets(cases_path, spec.columns):
        records = dataset_records(
            cases_path, spec.columns, spec.split, f"{path}:{line_of(node, ('cases',))}"
        )
        cases = cases_from(records, "fix the row, or the suite's `columns:` mapping")
    else:
        cases = load_cases(cases_path)
    cases = subset(cases, spec.sample, spec.limit)
    _check_needs(path, node, scorers, cases)
    if any(has_gold(c) for c in cases):  # retrieval is scored where cases name their gold documents
        scorers += [implicit_scorer(t) for t in RETRIEVAL_METRICS if t not in metrics]
    # everything the cases are asked and scored with: the suite, its cases, its scorers' settings
    # and files
    digest = hashlib.sha256(path.read_bytes() + b"\0" + data_hash(cases_path))
    digest.update(
        json.dumps([s.params.model_dump(mode="json") for s in scorers], sort_keys=True).encode()
    )
    for source in (f for s in scorers for f in s.params.sources()):
        digest.update(b"\0" + source.read_bytes())
    return Suite(
        name=spec.name,
        description=spec.description,
        path=path,
        generation=spec.generation,
        scorers=scorers,
        cases=cases,
        content_hash=digest.hexdigest(),
    )


def _lacks(need: str, case: Case) -> bool:
    """Whether a case lacks what a scorer needs of it (CASE_NEEDS)."""
    if need == "generated":
        return case.loglik != "none"
    if need in ("choices", "text"):
        return case.loglik != need
    if need == "reference":
        return case.reference is None
    if need == "json_reference":
        try:
            return case.reference is None or not isinstance(json.loads(case.reference), dict)
        except json.JSONDecodeError:
            return True
    raise ValueError(f"unknown case need {need!r}")


# A scorer and the shape of the suite's cases disagree: told at the scorer's line in the suite file.
SHAPE_ERRORS = {
    "generated": (
        "scores generated text, but case {id!r} is a log-likelihood probe ({loglik})",
        "put probes in a suite of their own, scored by multiple_choice or perplexity",
    ),
    "choices": (
        "needs cases with `prompt`, `choices` and `answer_index`; case {id!r} has none",
        "put such cases in this suite, or use another scorer",
    ),
    "text": (
        "needs cases with `text`; case {id!r} has none",
        "put such cases in this suite, or use another scorer",
    ),
}
# A case misses what its scorer compares with: told at the case's line in the cases file.
CASE_ERRORS = {
    "reference": (
        "compares the output with the case's `reference`, and this case has none",
        (
            "add a `reference` to the case (equals and contains can take a `value:` instead), "
            "or remove the scorer"
        ),
    ),
    "json_reference": (
        "compares JSON fields with the case's `reference`, which must be a JSON object",
        'make the reference a JSON object in a string, e.g. "{\\"category\\": \\"billing\\"}"',
    ),
}


def _check_needs(path: Path, node: Any, scorers: list[ScorerSpec], cases: list[Case]) -> None:
    """Every case carries what each scorer declares it needs: a broken suite is exit 2 when it
    loads, never a 0 score that looks like a regression."""
    for i, spec in enumerate(scorers):
        for need in sorted(spec.needs & set(CASE_NEEDS), key=lambda n: n not in SHAPE_ERRORS):
            case = next((c for c in cases if _lacks(need, c)), None)
            if case is None:
                continue
            if need in SHAPE_ERRORS:
                problem, fix = SHAPE_ERRORS[need]
                raise ConfigError(
                    f"{path}:{line_of(node, ('scorers', i))}",
                    f"scorers[{i}]",
                    f"`{spec.type}` " + problem.format(id=case.id, loglik=case.loglik),
                    fix,
                )
            problem, fix = CASE_ERRORS[need]
            raise ConfigError(
                case.where,
                f"case {case.id!r}",
                f"scorer `{spec.metric}` ({spec.type}) {problem}",
                fix,
            )


HARMBENCH_COLUMNS = (
    "Behavior",
    "FunctionalCategory",
    "SemanticCategory",
    "Tags",
    "ContextString",
    "BehaviorID",
)


def load_harmbench_csv(path: Path) -> list[Case]:
    """A behaviours CSV in HarmBench's columns, so the real HarmBench file can be dropped in.

    A contextual behaviour is shown the way HarmBench shows it: the context, a rule, then the
    request.
    """
    import pandas as pd

    text = csv_text(path)
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types on a broken file; each names the file here
        raise ConfigError(
            str(path),
            "",
            f"not a readable CSV ({cause(exc)})",
            "save it as UTF-8 CSV with a header row",
        ) from None
    missing = [c for c in HARMBENCH_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(
            str(path),
            "(header)",
            f"missing column(s) {', '.join(missing)}",
            f"a HarmBench behaviours CSV has the columns {', '.join(HARMBENCH_COLUMNS)}",
        )
    cases = []
    for number, row in enumerate(table.itertuples(index=False), start=2):
        if not row.Behavior.strip() or not row.BehaviorID.strip():
            raise ConfigError(
                f"{path}:{number}",
                "Behavior" if not row.Behavior.strip() else "BehaviorID",
                "empty",
                "every behaviour needs a Behavior text and a BehaviorID",
            )
        prompt = (
            f"{row.ContextString}\n\n---\n\n{row.Behavior}"
            if row.ContextString.strip()
            else row.Behavior
        )
        tags = [row.SemanticCategory, row.FunctionalCategory] + [
            t for t in row.Tags.split(",") if t.strip()
        ]
        case = Case(
            id=row.BehaviorID,
            prompt=prompt,
            tags=[t.strip() for t in tags if t.strip()],
            metadata={
                "behavior": row.Behavior,
                "context": row.ContextString,
                "semantic_category": row.SemanticCategory,
                "functional_category": row.FunctionalCategory,
            },
        )
        case._where = f"{path}:{number}"
        cases.append(case)
    return cases


def load_cases(path: Path) -> list[Case]:
    if not path.exists():
        raise ConfigError(
            str(path),
            "",
            "cases file not found",
            "check `cases:` in the suite file (relative to it)",
        )
    if path.suffix.lower() == ".csv":
        cases = load_harmbench_csv(path)
        if not cases:
            raise ConfigError(str(path), "", "no behaviours", "add at least one row")
        return cases
    records = []
    for where, raw in jsonl_records(read_text(path).splitlines(), path, "one JSON object per line"):
        if isinstance(raw, dict) and "id" not in raw:
            raw["id"] = where.rsplit(":", 1)[1]
        records.append((where, raw))
    if not records:
        raise ConfigError(str(path), "", "no cases", "add at least one JSON line")
    return cases_from(records, "see suites/tickets/cases.jsonl for the shape of a case")


def cases_from(records: list[tuple[str, Any]], fix: str) -> list[Case]:
    """Validated cases from (file:line, record) pairs; a bad record or a repeated id is a
    ConfigError there."""
    cases: list[Case] = []
    seen: set[str] = set()
    for where, raw in records:
        try:
            case = Case.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(
                where,
                key_path(err["loc"]) or "(case)",
                err["msg"].removeprefix("Value error, "),
                fix,
            ) from None
        if case.id in seen:
            raise ConfigError(
                where, "id", f"case id {case.id!r} repeats", "give every case a unique `id`"
            )
        seen.add(case.id)
        case._where = where
        cases.append(case)
    if not cases:
        raise ConfigError(records[0][0] if records else "", "", "no cases", "add at least one case")
    return cases
