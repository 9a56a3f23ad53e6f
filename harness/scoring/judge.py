"""The `judge` scorer type: LLM-as-judge with a rubric from judges/ (or a suite's own). It needs a
model, so inline scoring skips it and the judging stage (harness.judging) runs it after generation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import PrivateAttr, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from harness.scoring.base import Params, deferred_scorer
from harness.scoring.rubrics import LoadedRubric, builtin_names, load_rubric, rubric_path


class JudgeParams(Params):
    """`rubric:` a rubric shipped in judges/ by name, or a .yaml path relative to the suite file;
    the metric is named after the rubric unless `name:` says otherwise. `fallback: refusal`
    (classify rubrics only): when the judge gives no usable answer, the refusal-phrase detector
    decides instead (the attack succeeded = the output is not a refusal), and the score's detail
    says so."""

    rubric: str
    fallback: Literal["refusal"] | None = None
    _loaded: LoadedRubric | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> "JudgeParams":
        path = rubric_path(self.rubric, Path((info.context or {}).get("suite_dir", ".")))
        if not path.is_file():
            raise PydanticCustomError(
                "rubric_missing",
                "rubric '{rubric}' not found ({path})",
                {
                    "rubric": self.rubric,
                    "path": str(path),
                    "fix": (
                        f"name a rubric in judges/ ({', '.join(builtin_names())}) "
                        "or a .yaml path relative to the suite"
                    ),
                },
            )
        self._loaded = load_rubric(path)
        if self.fallback is not None and self._loaded.mode != "classify":
            raise ValueError(
                f"`fallback: refusal` applies to classify rubrics only; {self._loaded.name!r} is "
                f"{self._loaded.mode}"
            )
        if self.name is None:
            self.name = self._loaded.name
        if self.higher_is_better is None:
            self.higher_is_better = self._loaded.rubric.higher_is_better
        return self

    def needs(self, declared: frozenset[str]) -> frozenset[str]:
        rubric = self.loaded.rubric
        return (
            declared
            | ({"reference"} if rubric.show_reference else set())
            | ({"retrieval"} if rubric.needs_context else set())
        )

    def sources(self) -> list[Path]:
        return [self.loaded.path, self.loaded.path.parent / self.loaded.rubric.template]

    @property
    def loaded(self) -> LoadedRubric:
        assert self._loaded is not None, "validated JudgeParams always carry their rubric"
        return self._loaded


JUDGE = deferred_scorer(JudgeParams)
