"""Numbers the report adds beside the per-case statistics: per-tag breakdowns (forgetting per skill,
attack success per HarmBench category), corpus-level scores as each library defines them, and how
far a judge agrees with people."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from harness.judging import agreement_rows
from harness.loglik import perplexity
from harness.scorers.overlap import NEEDS_REFERENCE, corpus_score, params_from, signature


def suite_directions(meta: dict[str, Any]) -> dict[tuple[str, str], bool]:
    """(suite, metric) -> higher is better, as recorded when the run started."""
    return {(suite, metric): higher for suite, info in meta.get("suites", {}).items()
            for metric, higher in info.get("directions", {}).items()}


def by_tag(scores: pd.DataFrame, cases: pd.DataFrame, baseline: str) -> list[dict]:
    """Mean per (suite, metric, tag, candidate), and the mean paired difference from the baseline on the
    same cases (candidate minus baseline): 'did the fine-tune lose arithmetic?' in one number."""
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
    paired = merged.merge(base.rename(columns={"value": "base"}), on=["suite", "metric", "tag", "case_id"])
    deltas = (paired["value"] - paired["base"]).groupby([paired[k] for k in keys]).mean()
    rows = []
    for r in means.itertuples(index=False):
        delta = deltas.get((r.suite, r.metric, r.tag, r.candidate)) if r.candidate != baseline else None
        rows.append({"suite": r.suite, "metric": r.metric, "tag": r.tag, "candidate": r.candidate,
                     "mean": float(r.mean), "n": int(r.count), "delta": None if delta is None else float(delta)})
    return rows


def corpus_level(responses: pd.DataFrame, cases: pd.DataFrame, meta: dict[str, Any]) -> list[dict]:
    """Corpus scores per (candidate, suite, metric) for overlap metrics (with sacrebleu's / rouge-score's
    settings string) and perplexity (pooled over every scored token, not a mean of per-text values)."""
    answered = responses[responses["error"].isna()]
    references = cases.set_index(["suite", "case_id"])["reference"]
    rows = []
    for suite, info in meta.get("suites", {}).items():
        for metric, settings in info.get("scorers", {}).items():
            kind = settings.get("type")
            if kind not in NEEDS_REFERENCE and kind != "perplexity":
                continue
            for candidate, group in answered[answered["suite"] == suite].groupby("candidate", sort=False):
                if kind == "perplexity":
                    pairs = [tuple(p) for text in group["logliks_json"].dropna() for p in json.loads(text)]
                    value, setting = perplexity(pairs), f"exp(-sum log-prob / {sum(n for _, n in pairs)} tokens)"
                else:
                    params = params_from(settings)
                    refs = [references[(suite, case_id)] for case_id in group["case_id"]]
                    value = corpus_score(kind, params, group["output"].tolist(), refs)
                    setting = signature(kind, params, "corpus")
                rows.append({"candidate": candidate, "suite": suite, "metric": metric, "value": float(value),
                             "n": len(group), "signature": setting})
    return rows


def judge_agreement(scores: pd.DataFrame, cases: pd.DataFrame) -> list[dict]:
    return agreement_rows(scores, cases) if not scores.empty else []
