"""What a run's meta holds: written whole when the run begins (runs.run_metadata), then each later
key alone, by key (Store.set_meta_key), so no writer reads the record back to change one part of it.
Reports and resumed runs read it; no stage of the same process does."""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class JudgeRecord(TypedDict):
    """One judge metric as the judging stage checked its judge (report.breakdown.judge_reports
    renders it)."""

    suite: str
    metric: str
    rubric: str
    calibrated: bool
    check: (
        dict[str, Any] | None
    )  # judging.calibrate.JudgeCalibration.as_dict(); None without a calibration set


class SettleRecord(TypedDict):
    """stop_when_settled's progress after its latest wave (verdict.settle.Settlement.as_dict)."""

    wave: int
    wave_cases: int
    alpha_split: float
    fail_fast: bool


class RunMeta(TypedDict, total=False):
    """The keys set after the run began; the rest (inputs, seed, suites, models, ...) are
    runs.run_metadata's."""

    built: dict[
        str, dict[str, str]
    ]  # what each built artifact is -> candidate -> its identity (Built.identities)
    judges: list[JudgeRecord]
    settle: SettleRecord


MetaKey = Literal["built", "judges", "settle"]
