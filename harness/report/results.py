"""results.json: one record per (candidate, suite, case) plus the run's metadata and verdict.

The field list is documented in docs/results-json.md; bump SCHEMA_VERSION on any change.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from harness.core.errors import HarnessError
from harness.planning.config import StatsConfig
from harness.report.breakdown import (
    by_tag,
    corpus_level,
    judge_agreement,
    judge_reports,
    suite_directions,
)
from harness.store.store import Store
from harness.verdict.comparisons import comparisons, summarize

SCHEMA_VERSION = 6


def _clean(value: Any) -> Any:
    """NaN, infinities and numpy scalars -> JSON values (null for what is not a finite number)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _json_ready(value: Any) -> Any:
    """The whole record with every value _clean, however deep: JSON has no NaN or Infinity
    (json.dumps writes them, and no strict parser reads them back), so results.json can carry none,
    whatever a run stored.
    """
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return _clean(value)


def history(store: Store, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Each metric's mean over the pinned run and every finished drift run of this config, oldest
    first."""
    runs = store.runs()
    keep = runs[
        ((runs["name"] == run["name"]) & (runs["kind"] == "drift") & (runs["status"] == "finished"))
        | (runs["run_id"] == run["against"])
        | (runs["run_id"] == run["run_id"])
    ]
    points = []
    for r in keep.itertuples(index=False):
        for row in summarize(store.table("scores", r.run_id)).itertuples(index=False):
            points.append(
                {
                    "run_id": r.run_id,
                    "created_at": r.created_at,
                    "candidate": row.candidate,
                    "suite": row.suite,
                    "metric": row.metric,
                    "mean": _clean(row.mean),
                    "pinned": r.run_id == run["against"],
                }
            )
    return points


def build_results(store: Store, run_id: str) -> dict[str, Any]:
    run = store.run(run_id)
    if run is None:
        raise HarnessError(f"no run {run_id!r} in {store.where}")
    cases = store.table("cases", run_id).set_index(["suite", "case_id"])
    responses = store.table("responses", run_id)
    scores = store.table("scores", run_id)
    by_response = {
        key: group for key, group in scores.groupby(["candidate", "suite", "case_id"], sort=False)
    }
    records = []
    for row in responses.itertuples(index=False):
        case = cases.loc[(row.suite, row.case_id)]
        metric_rows = by_response.get((row.candidate, row.suite, row.case_id), pd.DataFrame())
        records.append(
            {
                "candidate": row.candidate,
                "suite": row.suite,
                "case_id": row.case_id,
                "input": json.loads(case["input_json"]),
                "reference": _clean(case["reference"]),
                "tags": json.loads(case["tags_json"]),
                "metadata": (
                    json.loads(case["metadata_json"])
                    if isinstance(case["metadata_json"], str)
                    else {}
                ),
                "request": json.loads(row.request_json),
                "output": row.output,
                "error": _clean(row.error),
                "latency_s": _clean(row.latency_s),
                "prompt_tokens": _clean(row.prompt_tokens),
                "completion_tokens": _clean(row.completion_tokens),
                "finish_reason": _clean(row.finish_reason),
                "cached": bool(row.cached),
                "retrieved": (
                    json.loads(row.context_json) if isinstance(row.context_json, str) else None
                ),
                "logliks": (
                    json.loads(row.logliks_json) if isinstance(row.logliks_json, str) else None
                ),
                "metrics": {m.metric: _clean(m.value) for m in metric_rows.itertuples(index=False)},
                "details": {
                    m.metric: m.detail for m in metric_rows.itertuples(index=False) if m.detail
                },
                "passed": {
                    m.metric: None if _clean(m.passed) is None else bool(m.passed)
                    for m in metric_rows.itertuples(index=False)
                },
            }
        )
    config = run["config"]
    stats = StatsConfig.model_validate(config.get("stats", {}))
    summary = summarize(scores, stats, config["seed"])
    candidates = [c["name"] for c in config["candidates"]]
    meta = run["meta"] or {}
    verdict = (
        None
        if run["verdict"] is None
        else {k: v for k, v in run["verdict"].items() if k != "comparisons"}
    )
    compared = (run["verdict"] or {}).get("comparisons")
    # decided by a harness that did not keep them with the verdict, or not decided
    if compared is None:
        pinned = store.table("scores", run["against"]) if run["against"] else None
        compared = (
            comparisons(
                scores,
                candidates,
                config["baseline"],
                stats,
                config["seed"],
                pinned,
                suite_directions(meta),
            )
            if not scores.empty
            else []
        )
    stored_cases = store.table("cases", run_id)
    usage = (
        (
            responses.groupby("candidate", sort=False)
            .agg(
                requests=("case_id", "count"),
                errors=("error", "count"),
                cached=("cached", "sum"),
                mean_latency_s=("latency_s", "mean"),
                prompt_tokens=("prompt_tokens", "sum"),
                completion_tokens=("completion_tokens", "sum"),
            )
            .reset_index()
        )
        if not responses.empty
        else pd.DataFrame()
    )
    return _json_ready(
        {
            "schema_version": SCHEMA_VERSION,
            "run": {
                "id": run["run_id"],
                "name": run["name"],
                "kind": run["kind"],
                "against": run["against"],
                "status": run["status"],
                "created_at": run["created_at"],
                "finished_at": run["finished_at"],
                "config_hash": run["config_hash"],
                "config": run["config"],
                **(run["meta"] or {}),
            },
            "verdict": verdict,
            "summary": [{k: _clean(v) for k, v in r.items()} for r in summary.to_dict("records")],
            "comparisons": compared,
            "by_tag": by_tag(scores, stored_cases, config["baseline"]),
            "corpus": corpus_level(responses, stored_cases, meta),
            "agreement": judge_agreement(scores, stored_cases),
            "judges": judge_reports(meta, scores, responses),
            "usage": [{k: _clean(v) for k, v in r.items()} for r in usage.to_dict("records")],
            "timings": [
                {"stage": t.stage, "model": t.subject, "seconds": round(t.seconds, 3)}
                for t in store.table("timings", run_id).itertuples(index=False)
            ],
            "cases": records,
            "artifacts": store.artifacts(run_id),
            "history": history(store, run) if run["kind"] == "drift" else [],
        }
    )
