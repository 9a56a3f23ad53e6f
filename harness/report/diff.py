"""`harness diff RUN_A RUN_B`: what changed between two stored runs, per (candidate, suite, metric).

Each candidate of B is paired with itself in A, case by case, with the same tests and intervals as a
run's own comparisons (McNemar + Tango for pass/fail metrics, the paired bootstrap otherwise), read
in each metric's direction. Only suites both runs scored with the same content are compared: a
changed suite (file, cases, scorer settings, rubrics) would pair different questions, so it is named
and left out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import HarnessError
from harness.planning.config import StatsConfig
from harness.report.breakdown import suite_directions
from harness.report.html import environment, metric_table
from harness.store.store import Store
from harness.verdict.comparisons import comparisons, summarize


@dataclass
class Diff:
    a: dict[str, Any]
    b: dict[str, Any]
    rows: list[dict]  # comparisons of B's candidates with themselves in A
    summary: list[dict]  # B's means
    skipped: list[str] = field(default_factory=list)  # suites left out, and why


def diff_runs(store: Store, run_a: str, run_b: str) -> Diff:
    a, b = (_finished(store, run) for run in (run_a, run_b))
    suites_a = ((a["meta"] or {}).get("inputs") or {}).get("suites", {})
    suites_b = ((b["meta"] or {}).get("inputs") or {}).get("suites", {})
    skipped = [f"{name}: only in {run_b}" for name in suites_b if name not in suites_a]
    skipped += [
        f"{name}: changed between the runs (content hash {suites_a[name][:12]} ->"
        f" {suites_b[name][:12]})"
        for name in suites_b
        if name in suites_a and suites_a[name] != suites_b[name]
    ]
    same = [name for name in suites_b if suites_a.get(name) == suites_b[name]]
    if not same:
        raise HarnessError(
            f"runs {run_a} and {run_b} share no suite with the same content ("
            + "; ".join(skipped)
            + ")\n  fix: diff two runs of the same suites"
        )
    scores_a, scores_b = (store.table("scores", r) for r in (run_a, run_b))
    scores_a, scores_b = (
        scores_a[scores_a["suite"].isin(same)],
        scores_b[scores_b["suite"].isin(same)],
    )
    config = b["config"]
    stats = StatsConfig.model_validate(config.get("stats", {}))
    candidates = [c["name"] for c in config["candidates"]]
    rows = comparisons(
        scores_b,
        candidates,
        config["baseline"],
        stats,
        config["seed"],
        pinned=scores_a,
        directions=suite_directions(b["meta"] or {}),
    )
    summary = summarize(scores_b, stats, config["seed"]).to_dict("records")
    return Diff(a, b, rows, summary, skipped)


def _finished(store: Store, run_id: str) -> dict[str, Any]:
    record = store.run(run_id)
    if record is None:
        known = ", ".join(store.runs()["run_id"].tolist()[-5:]) or "(none)"
        raise HarnessError(f"no run {run_id!r} in {store.where}\n  fix: one of: {known}")
    if record["status"] != "finished":
        raise HarnessError(
            f"run {run_id} is {record['status']}: its scores are partial\n"
            "  fix: diff finished runs (see `harness runs`)"
        )
    return record


def render_diff_html(diff: Diff) -> str:
    """The report's candidates x suites table, each delta against the same candidate in run A."""
    b = diff.b
    results = {
        "run": {**(b["meta"] or {}), "suites": (b["meta"] or {}).get("suites", {})},
        "summary": diff.summary,
        "comparisons": diff.rows,
    }
    candidates = [c["name"] for c in b["config"]["candidates"]]
    return (
        environment()
        .get_template("diff.html.j2")
        .render(
            a=diff.a,
            b=b,
            table=metric_table(results),
            candidates=candidates,
            baseline=None,
            skipped=diff.skipped,
            stats=StatsConfig.model_validate(b["config"].get("stats", {})),
            nonce=secrets.token_urlsafe(16),
        )
    )
