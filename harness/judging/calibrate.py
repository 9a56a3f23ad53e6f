"""Is this judge good enough to gate? Its answers on a rubric's calibration set, against the labels.

The statistic that decides (against the rubric's `min_agreement`) is chance-corrected: Cohen's kappa
for labels and for pairwise verdicts (A, B or tie), quadratic weighted kappa for scales (a 4 where
people said 5 costs less than a 1). Beside it: Spearman's rho for scales, kappa on pass/fail (a
scale's `passing_score` and up), and for pairwise rubrics the share of verdicts that flip when the
two answers swap places and how often the first position wins. An item the judge gave no usable
answer for counts as the worst answer it could give (the far end of the scale, or no label), so a
judge cannot look good by failing to answer.

Results are cached in the store by what decides them: the judge's identity (model fingerprint or
endpoint), the rubric's files, the calibration set's bytes, the way answers are asked for, and the
retry settings. How each answer was actually read is counted (`read`): a judge asked for
probabilities that returned none was read from its structured reply instead, and a check that says
`logprobs` must not hide that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from harness.judging.agreement import bootstrap_statistic, cohen_kappa, spearman, weighted_kappa
from harness.judging.asking import Answerer, ask, method_for
from harness.judging.replies import FIRST, SECOND, position_bias
from harness.planning.judge import JudgeModel
from harness.scoring.calibration import READS, CalibrationItem, template_variables
from harness.scoring.rubrics import LoadedRubric, Reply

if TYPE_CHECKING:
    from harness.planning.config import JudgeConfig

CALIBRATION_VERSION = (
    2  # bump when the statistics change, so cached checks are computed again (2: `read` counted)
)
NO_ANSWER = "(no answer)"


@dataclass(frozen=True)
class JudgeCalibration:
    rubric: str
    judge: str
    method: str
    statistic: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    min_agreement: float
    items: int
    unusable: int
    calibration: str
    spearman: float | None = None
    pass_fail_kappa: float | None = None
    exact_agreement: float | None = None
    flip_rate: float | None = None
    first_position_rate: float | None = None
    key: str = ""
    read: dict[str, int] | None = (
        None  # answers per way they were read (calibration.READS); None: not counted
    )

    @property
    def validated(self) -> bool:
        return self.value is not None and self.value >= self.min_agreement

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "validated": self.validated}

    def sentence(self) -> str:
        """`quadratic weighted kappa 0.41 [0.22, 0.58] on 48 items (2 unanswered), below the bar
        0.6`"""
        value = "undefined" if self.value is None else f"{self.value:.2f}"
        ci = f" [{self.ci_low:.2f}, {self.ci_high:.2f}]" if self.ci_low is not None else ""
        unanswered = f", {self.unusable} unanswered" if self.unusable else ""
        verdict = "meets" if self.validated else "is below"
        return (
            f"{self.statistic} {value}{ci} on {self.items} items{unanswered}; {verdict} the bar "
            f"{self.min_agreement:g}"
        )


def calibration_key(
    judge: JudgeModel, rubric: LoadedRubric, method: str, settings: JudgeConfig, seed: int
) -> str:
    assert rubric.calibration is not None
    payload = {
        "version": CALIBRATION_VERSION,
        "judge": judge.fingerprint,
        "rubric": rubric.content_hash,
        "calibration": rubric.calibration.content_hash,
        "method": method,
        "attempts": settings.attempts,
        "max_tokens": settings.max_tokens,
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def calibrate_judge(
    answerer: Answerer, rubric: LoadedRubric, settings: JudgeConfig
) -> JudgeCalibration | None:
    """The judge's agreement with the rubric's calibration set (cached); None when the rubric has no
    set."""
    if rubric.calibration is None:
        return None
    method = method_for(rubric, answerer.judge, settings)
    key = calibration_key(answerer.judge, rubric, method, settings, answerer.seed)
    cached = answerer.store.judge_calibration(key) if answerer.use_cache else None
    if cached is not None:
        return JudgeCalibration(**{k: v for k, v in cached.items() if k != "validated"})
    items = rubric.calibration.items
    asks = [(rubric, variables) for item in items for variables in _orders(item)]
    replies = iter(
        ask(
            answerer, asks, settings, label=f"calibrating {rubric.name} with {answerer.judge.label}"
        )
    )
    answers = [[reply for reply, _ in (next(replies) for _ in _orders(item))] for item in items]
    result = agreement_with_labels(rubric, items, answers)
    check = JudgeCalibration(
        rubric=rubric.name,
        judge=answerer.judge.label,
        method=method,
        min_agreement=rubric.rubric.min_agreement,
        calibration=str(rubric.calibration.path),
        key=key,
        **result,
    )
    answerer.store.put_judge_calibration(key, check.as_dict())
    return check


def _orders(item: CalibrationItem) -> list[dict[str, Any]]:
    """The prompts' variables: pairwise items are asked in both orders, as in a run."""
    variables = template_variables(item)
    if item.answer_a is None:
        return [variables]
    return [variables, {**variables, "answer_a": item.answer_b, "answer_b": item.answer_a}]


def agreement_with_labels(
    rubric: LoadedRubric,
    items: Sequence[CalibrationItem],
    answers: Sequence[Sequence[Reply | None]],
    resamples: int = 2000,
) -> dict[str, Any]:
    """The statistics of JudgeCalibration (without its identity) from each item's replies (pairwise:
    both orders)."""
    labels = [item.label for item in items]
    mode = rubric.mode
    unusable = sum(any(a is None for a in pair) for pair in answers)
    reads = [READS[-1] if a is None else a.read_by for pair in answers for a in pair]
    out: dict[str, Any] = {
        "items": len(items),
        "unusable": unusable,
        "read": {how: reads.count(how) for how in READS if how in reads},
    }
    if mode == "pointwise":
        scale = rubric.rubric.scale
        assert scale is not None
        points = list(range(scale.min, scale.max + 1))
        said = [a[0].answer if a[0] is not None else None for a in answers]
        rounded = [
            _worst(label, points) if s is None else int(np.clip(round(s), scale.min, scale.max))
            for s, label in zip(said, labels)
        ]
        passing = rubric.rubric.passing_score

        def decide(ix: np.ndarray) -> float | None:
            return weighted_kappa([rounded[i] for i in ix], [labels[i] for i in ix], points)

        usable = [(s, label) for s, label in zip(said, labels) if s is not None]
        out.update(
            statistic="quadratic weighted kappa",
            value=decide(np.arange(len(items))),
            spearman=spearman([s for s, _ in usable], [float(label) for _, label in usable])[0],
            pass_fail_kappa=cohen_kappa(
                [r >= passing for r in rounded], [label >= passing for label in labels]
            ),
            exact_agreement=float(np.mean([r == label for r, label in zip(rounded, labels)])),
        )
    else:
        verdicts = (
            [_verdict(a) for a in answers]
            if mode == "pairwise"
            else [a[0].answer if a[0] is not None else NO_ANSWER for a in answers]
        )

        def decide(ix: np.ndarray) -> float | None:
            return cohen_kappa([verdicts[i] for i in ix], [labels[i] for i in ix])

        out.update(
            statistic="cohen kappa",
            value=decide(np.arange(len(items))),
            exact_agreement=float(np.mean([v == label for v, label in zip(verdicts, labels)])),
        )
        if mode == "pairwise":
            out.update(position_bias([[r.answer for r in a] for a in answers if None not in a]))  # type: ignore[union-attr]
    out["ci_low"], out["ci_high"] = bootstrap_statistic(decide, len(items), resamples)
    return out


def _worst(label: int, points: list[int]) -> int:
    """The scale's end farthest from the label: what an unanswered item counts as."""
    return points[0] if abs(label - points[0]) >= abs(label - points[-1]) else points[-1]


def _verdict(pair: Sequence[Reply | None]) -> str:
    """The two orders' answers as one verdict about (answer_a, answer_b): agreeing orders give their
    winner, disagreeing ones a tie (as pairwise_score counts them); a missing answer is no verdict.
    """
    if None in pair:
        return NO_ANSWER
    first, second = FIRST[pair[0].answer], SECOND[pair[1].answer]  # type: ignore[union-attr]
    if first != second:
        return "tie"
    return {"candidate": "A", "baseline": "B", "tie": "tie"}[first]


def calibrate_rubrics(
    answerer: Answerer, rubrics: Sequence[LoadedRubric], settings: JudgeConfig
) -> dict[str, JudgeCalibration | None]:
    """Every rubric's check (by rubric path), each once."""
    return {
        path: calibrate_judge(answerer, r, settings)
        for path, r in {str(r.path): r for r in rubrics}.items()
    }
