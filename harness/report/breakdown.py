"""Numbers the report adds beside the per-case statistics: per-tag breakdowns (forgetting per skill,
attack success per HarmBench category), corpus-level scores as each library defines them, and how
far a judge agrees with people."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from harness.judging.agreement import agreement, spearman
from harness.judging.replies import position_bias
from harness.scoring.registry import CorpusItem, scorer_type


def suite_directions(meta: dict[str, Any]) -> dict[tuple[str, str], bool]:
    """(suite, metric) -> higher is better, as recorded when the run started."""
    return {
        (suite, metric): higher
        for suite, info in meta.get("suites", {}).items()
        for metric, higher in info.get("directions", {}).items()
    }


def by_tag(scores: pd.DataFrame, cases: pd.DataFrame, baseline: str) -> list[dict]:
    """Mean per (suite, metric, tag, candidate), and the mean paired difference from the baseline on
    the same cases (candidate minus baseline): 'did the fine-tune lose arithmetic?' in one number.
    """
    if scores.empty or cases.empty:
        return []
    tags = cases.assign(tag=cases["tags_json"].map(lambda t: json.loads(t or "[]"))).explode("tag")
    tags = tags.dropna(subset=["tag"])[["suite", "case_id", "tag"]]
    merged = scores.dropna(subset=["value"]).merge(tags, on=["suite", "case_id"])
    if merged.empty:
        return []
    keys = ["suite", "metric", "tag", "candidate"]
    means = merged.groupby(keys, sort=False)["value"].agg(["mean", "count"]).reset_index()
    base = merged[merged["candidate"] == baseline][["suite", "metric", "tag", "case_id", "value"]]
    paired = merged.merge(
        base.rename(columns={"value": "base"}), on=["suite", "metric", "tag", "case_id"]
    )
    deltas = (paired["value"] - paired["base"]).groupby([paired[k] for k in keys]).mean()
    rows = []
    for r in means.itertuples(index=False):
        delta = (
            deltas.get((r.suite, r.metric, r.tag, r.candidate)) if r.candidate != baseline else None
        )
        rows.append(
            {
                "suite": r.suite,
                "metric": r.metric,
                "tag": r.tag,
                "candidate": r.candidate,
                "mean": float(r.mean),
                "n": int(r.count),
                "delta": None if delta is None else float(delta),
            }
        )
    return rows


def corpus_level(responses: pd.DataFrame, cases: pd.DataFrame, meta: dict[str, Any]) -> list[dict]:
    """Corpus scores per (candidate, suite, metric) for every scorer that declares a corpus
    aggregate (overlap metrics with the library's settings string; perplexity pooled over every
    scored token).
    """
    answered = responses[responses["error"].isna()]
    references = cases.set_index(["suite", "case_id"])["reference"]
    rows = []
    for suite, info in meta.get("suites", {}).items():
        for metric, settings in info.get("scorers", {}).items():
            entry = scorer_type(settings.get("type"))
            if entry is None or entry.corpus is None:
                continue
            params = entry.params.model_validate(settings)
            for candidate, group in answered[answered["suite"] == suite].groupby(
                "candidate", sort=False
            ):
                items = [
                    CorpusItem(
                        r.output,
                        _clean(references.get((suite, r.case_id))),
                        (
                            tuple(tuple(p) for p in json.loads(r.logliks_json))
                            if isinstance(r.logliks_json, str)
                            else ()
                        ),
                    )
                    for r in group.itertuples(index=False)
                ]
                value, setting = entry.corpus(params, items)
                rows.append(
                    {
                        "candidate": candidate,
                        "suite": suite,
                        "metric": metric,
                        "value": float(value),
                        "n": len(group),
                        "signature": setting,
                    }
                )
    return rows


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


# What people said, per case metadata key, and what the judge answered, per key of a score's
# meta["judge"].
HUMAN_KEYS = {"score": "human_score", "label": "human_label"}
KINDS = {"score": "scale", "label": "label"}


def judge_agreement(scores: pd.DataFrame, cases: pd.DataFrame) -> list[dict]:
    """Judge-human agreement per (candidate, suite, judge metric), from cases whose metadata carries
    `human_score` (a number) or `human_label` (a string); either may be a mapping of metric -> value
    when a suite has several judges. Only the judge's own answers count (from the score's meta), not
    errors or refusal fallbacks."""
    if scores.empty or "meta_json" not in scores.columns:
        return []
    metadata = {
        (r.suite, r.case_id): json.loads(r.metadata_json or "{}") for r in cases.itertuples()
    }
    groups: dict[tuple[str, str, str, str], tuple[list, list]] = {}
    for row in scores.itertuples():
        judged = (
            json.loads(row.meta_json).get("judge", {}) if isinstance(row.meta_json, str) else {}
        )
        for key, human_key in HUMAN_KEYS.items():
            human = metadata.get((row.suite, row.case_id), {}).get(human_key)
            human = human.get(row.metric) if isinstance(human, dict) else human
            if key in judged and human is not None:
                judge, people = groups.setdefault(
                    (row.candidate, row.suite, row.metric, KINDS[key]), ([], [])
                )
                judge.append(judged[key])
                people.append(human)
    return [
        {"candidate": c, "suite": s, "metric": m, **agreement(j, h, kind)}  # type: ignore[arg-type]
        for (c, s, m, kind), (j, h) in groups.items()
    ]


REFERENCE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf", "ter")


def judge_reports(
    meta: dict[str, Any], scores: pd.DataFrame, responses: pd.DataFrame
) -> list[dict]:
    """Per judge metric: its judge's calibration check (as the judging stage recorded it) and the
    biases this run's judgements show: for pairwise rubrics the share of verdicts that flip when the
    answers swap places and how often the first position wins; for scales the correlation of the
    score with the answer's length (words); and how the judge's scores correlate with the suite's
    reference metrics (ROUGE, BLEU, chrF...) on the same answers."""
    rows = []
    outputs = {
        (r.candidate, r.suite, r.case_id): r.output for r in responses.itertuples(index=False)
    }
    types = {
        (suite, metric): settings.get("type")
        for suite, info in meta.get("suites", {}).items()
        for metric, settings in info.get("scorers", {}).items()
    }
    for judge in meta.get("judges", []):
        suite, metric = judge["suite"], judge["metric"]
        mine = (
            scores[(scores["suite"] == suite) & (scores["metric"] == metric)]
            if not scores.empty
            else scores
        )
        answers = [
            (r, json.loads(r.meta_json) if isinstance(r.meta_json, str) else {})
            for r in mine.itertuples(index=False)
        ]
        judged = [(r, m["judge"]) for r, m in answers if "judge" in m and not m.get("fallback")]
        row = {**judge, "judged": len(judged)}
        positions = [j["positions"] for _, j in judged if "positions" in j]
        if positions:
            row.update(position_bias(positions))
        elif judged and "score" in judged[0][1]:
            lengths = [
                len((outputs.get((r.candidate, r.suite, r.case_id)) or "").split())
                for r, _ in judged
            ]
            row["length_correlation"] = spearman([float(j["score"]) for _, j in judged], lengths)[0]
        values = (
            mine.dropna(subset=["value"]).set_index(["candidate", "case_id"])["value"]
            if judged
            else None
        )
        row["reference_correlation"] = {}
        for (other_suite, other), kind in types.items():
            if other_suite != suite or kind not in REFERENCE_TYPES or values is None:
                continue
            theirs = scores[(scores["suite"] == suite) & (scores["metric"] == other)].dropna(
                subset=["value"]
            )
            paired = (
                theirs.set_index(["candidate", "case_id"])["value"]
                .to_frame("reference")
                .join(values.to_frame("judge"), how="inner")
            )
            row["reference_correlation"][other] = spearman(
                paired["judge"].tolist(), paired["reference"].tolist()
            )[0]
        rows.append(row)
    return rows
