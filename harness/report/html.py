"""report.html: self-contained (inline CSS, SVG and one nonce'd script; nothing fetched),
autoescaped.

Model outputs are untrusted: jinja2's autoescape renders them inert, no template marks anything
`|safe`, and the Content-Security-Policy lets only the script carrying this render's nonce run.
Python prepares numbers and geometry; the template only places escaped text and shapes.

Texts are untrusted in size too: every text the template places is cut to SHOWN_CHARS with its whole
length stated (a 10 MB answer made a 10 MB cell, three of them a 61 MB run folder); results.json and
the store keep every text whole.
"""

from __future__ import annotations

import secrets
from typing import Any, Callable

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from harness.planning.config import StatsConfig, is_relative
from harness.report.breakdown import suite_directions
from harness.report.ci import saved, settled_line
from harness.scoring.calibration import reading
from harness.verdict.comparisons import better
from harness.verdict.gate import LABELS, regressions_heading, ungated, unvalidated_judge
from harness.verdict.sequential import TESTS

SHOWN_CHARS = 4000  # of one text, in a report cell: a long answer's start, enough to see what it is


def clipped(value: Any) -> Any:
    """What a cell shows of a value: a text past SHOWN_CHARS is cut there, and says how long it is.
    Markup (what a macro rendered, already escaped) passes whole: its texts were cut as they were
    placed."""
    if isinstance(value, str) and not isinstance(value, Markup) and len(value) > SHOWN_CHARS:
        return (
            f"{value[:SHOWN_CHARS]}… ({len(value):,} characters; the whole text is in results.json)"
        )
    return value


_env = Environment(
    loader=PackageLoader("harness.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=clipped,  # every {{ value }} the templates place, in text and in attributes alike
)
_env.filters["clipped"] = clipped
_env.filters["reading"] = reading
# (+ 0.0 turns a -0.0 into 0.0: a difference of exactly nothing is not shown as a negative one)
_env.filters["num"] = lambda v, digits=3: "—" if v is None else f"{v + 0.0:.{digits}f}"
_env.filters["signed"] = lambda v, digits=3: "—" if v is None else f"{v + 0.0:+.{digits}f}"
_env.filters["pval"] = lambda v: "—" if v is None else ("< 0.001" if v < 0.001 else f"{v:.3f}")
_env.filters["share"] = lambda v: f"{v:.0%}"


def environment() -> Environment:
    """The report's jinja2 environment (autoescaped, strict), for pages that share its templates."""
    return _env


def _order(suites: dict[str, dict]) -> Any:
    names = list(suites)

    def key(suite: str, metric: str) -> tuple[int, int, str]:
        metrics = suites.get(suite, {}).get("metrics", [])
        return (
            names.index(suite) if suite in names else len(names),
            metrics.index(metric) if metric in metrics else len(metrics),
            metric,
        )

    return key


def metric_table(results: dict[str, Any]) -> list[dict]:
    """Rows of (suite, metric): each candidate's mean [CI], and vs the baseline: Δ [CI], p, MDE."""
    directions = suite_directions(results["run"])
    rows: dict[tuple[str, str], dict] = {}
    for item in results["summary"]:
        row = rows.setdefault(
            (item["suite"], item["metric"]),
            {
                "suite": item["suite"],
                "metric": item["metric"],
                "means": {},
                "vs": {},
                "judge": None,
                "higher": directions.get((item["suite"], item["metric"]), True),
            },
        )
        row["means"][item["candidate"]] = item
    for comp in results["comparisons"]:
        if (comp["suite"], comp["metric"]) in rows:
            rows[(comp["suite"], comp["metric"])]["vs"][comp["candidate"]] = comp
    for judge in results.get("judges", []):
        if (judge["suite"], judge["metric"]) in rows:
            check = judge["check"]
            why = unvalidated_judge(judge["rubric"], judge["calibrated"], check)
            rows[(judge["suite"], judge["metric"])]["judge"] = {
                "validated": why is None,
                "why": why or "",
            }
    key = _order(results["run"].get("suites", {}))
    return [rows[k] for k in sorted(rows, key=lambda k: key(*k))]


def _bar_y(value: float, top: float, height: float) -> float:
    """The SVG y of a value on a chart of `height` whose top is `top` (values clip to the chart)."""
    return height - max(0.0, min(value / top, 1.0)) * height


def bar_charts(results: dict[str, Any], candidates: list[str]) -> list[dict]:
    """One small SVG per suite: a bar per (metric, candidate) with its CI as a whisker, on 0..1
    (other scales are drawn against their own maximum)."""
    charts = []
    table = metric_table(results)
    for suite in dict.fromkeys(r["suite"] for r in table):
        rows = [r for r in table if r["suite"] == suite]
        top = max(
            [1.0] + [m["ci_high"] or m["mean"] or 0 for r in rows for m in r["means"].values()]
        )
        bar, gap, group_gap, height, left = 14, 2, 18, 140, 64
        groups, x = [], left
        for r in rows:
            bars = []
            for i, name in enumerate(candidates):
                m = r["means"].get(name)
                if m is None or m["mean"] is None:
                    continue
                y = _bar_y(m["mean"], top, height)
                bars.append(
                    {
                        "x": x + i * (bar + gap),
                        "y": y,
                        "h": height - y,
                        "lo": _bar_y(m["ci_low"], top, height) if m["ci_low"] is not None else None,
                        "hi": (
                            _bar_y(m["ci_high"], top, height) if m["ci_high"] is not None else None
                        ),
                        "color": i,
                        "label": f"{name}: {m['mean']:.3f}",
                    }
                )
            width = len(candidates) * (bar + gap)
            groups.append({"metric": r["metric"], "x": x, "mid": x + width / 2, "bars": bars})
            x += width + group_gap
        charts.append(
            {
                "suite": suite,
                "groups": groups,
                "width": x + 10,
                "height": height,
                "top": top,
                "ticks": [(height - f * height, f * top) for f in (0, 0.5, 1)],
            }
        )
    return charts


def usage_chart(usage: list[dict]) -> dict:
    """Horizontal bars of mean latency per candidate (completion tokens as a label)."""
    top = max([u["mean_latency_s"] or 0 for u in usage] + [1e-9])
    rows = [
        {
            "name": u["candidate"],
            "y": i * 22,
            "w": 320 * (u["mean_latency_s"] or 0) / top,
            "latency": u["mean_latency_s"],
            "tokens": u["completion_tokens"],
        }
        for i, u in enumerate(usage)
    ]
    return {"rows": rows, "height": len(rows) * 22}


def _polyline(
    values: list[float | None], width: float, height: float, top: float, bottom: float
) -> str:
    """SVG points for a series on [bottom, top], spread evenly across the width; gaps are skipped."""
    span = (top - bottom) or 1.0
    step = width / max(len(values) - 1, 1)
    return " ".join(
        f"{i * step:.1f},{height - (v - bottom) / span * height:.1f}"
        for i, v in enumerate(values)
        if v is not None
    )


def history_charts(history: list[dict]) -> list[dict]:
    """Drift: one trend line per (candidate, suite, metric) over runs, the pinned run marked."""
    runs = sorted({(h["created_at"], h["run_id"]) for h in history})
    order = [run_id for _, run_id in runs]
    pinned = {h["run_id"] for h in history if h["pinned"]}
    series: dict[tuple[str, str, str], dict[str, float]] = {}
    for h in history:
        series.setdefault((h["candidate"], h["suite"], h["metric"]), {})[h["run_id"]] = h["mean"]
    charts = []
    for (candidate, suite, metric), by_run in series.items():
        values = [by_run.get(r) for r in order]
        known = [v for v in values if v is not None]
        top, bottom = max(known + [1.0]), min(known + [0.0])
        step = 260 / max(len(order) - 1, 1)
        charts.append(
            {
                "title": f"{candidate} / {suite} / {metric}",
                "points": _polyline(values, 260, 80, top, bottom),
                "dots": [
                    {
                        "x": i * step,
                        "y": 80 - (v - bottom) / ((top - bottom) or 1) * 80,
                        "pinned": r in pinned,
                        "label": f"{r}: {v:.3f}",
                    }
                    for i, (r, v) in enumerate(zip(order, values))
                    if v is not None
                ],
                "top": top,
                "bottom": bottom,
            }
        )
    return charts


def training_charts(artifacts: list[dict]) -> list[dict]:
    """LoRA: train and validation loss per step, on one scale."""
    charts = []
    for art in artifacts:
        if art["kind"] != "training" or not art.get("metrics"):
            continue
        steps = [m["step"] for m in art["metrics"]]
        train = [m.get("train_loss") for m in art["metrics"]]
        val = [m.get("val_loss") for m in art["metrics"]]
        known = [v for v in train + val if v is not None]
        top, bottom = max(known), min(known + [0.0])
        charts.append(
            {
                "candidate": art["candidate"],
                "art": art,
                "steps": steps,
                "train": _polyline(train, 420, 140, top, bottom),
                "val": _polyline(val, 420, 140, top, bottom),
                "top": top,
                "bottom": bottom,
            }
        )
    return charts


SETTLED_COLOURS = {
    "pass": "#1a7f37",
    "fail": "#cf222e",
    None: "#57606a",
}  # the style's --ok, --bad, --muted
FIXED_RULE = "the fixed-size rule at the last case (the metric has no known range)"
_SEQUENCE = {
    "width": 320,
    "height": 80,
    "pad": 6,
}  # the plot's area in px; `pad` keeps the band off its edges


def _number(value: float, relative: bool) -> str:
    return f"{value + 0.0:+.3f}" if relative else f"{value + 0.0:.3f}"


def _band(
    looks: list[list[float]], x: Callable[[float], float], y: Callable[[float], float]
) -> str:
    """SVG polygon points of the band: each look's interval held until the next look, then back
    along the low side."""
    upper, lower = [], []
    for i, (cases, low, high) in enumerate(looks):
        if i:  # the previous look's band, held up to this look
            upper.append((x(cases), y(looks[i - 1][2])))
            lower.append((x(cases), y(looks[i - 1][1])))
        upper.append((x(cases), y(high)))
        lower.append((x(cases), y(low)))
    return " ".join(f"{a},{b}" for a, b in upper + lower[::-1])


def sequence_chart(check: dict, population: int) -> dict | None:
    """One check's confidence sequence as SVG geometry over the cases (x: 0..population): the band
    after each look held until the next (the sequence is a running intersection, so at every case
    between two looks it lies inside the band drawn), the bound as a line, the last look (where the
    gate was settled) marked, the cases not run shaded. Numbers only: the template places every text
    escaped. None where the fixed rule decided (no sequence).
    """
    looks = check["looks"]
    if not looks:
        return None
    width, height, pad = _SEQUENCE["width"], _SEQUENCE["height"], _SEQUENCE["pad"]
    threshold, relative = check["threshold"], is_relative(check["bound_kind"])
    bottom = min([low for _, low, _ in looks] + [threshold])
    top = max([high for _, _, high in looks] + [threshold])

    def x(cases: float) -> float:
        return round(cases / max(population, 1) * width, 1)

    def y(value: float) -> float:
        return round(pad + (top - value) / ((top - bottom) or 1.0) * (height - 2 * pad), 1)

    seen, low, high = looks[-1]
    end = x(seen)
    side = "wholly above" if low > threshold else "wholly below" if high < threshold else "across"
    return {
        "width": width,
        "height": height,
        "band": _band(looks, x, y),
        "colour": SETTLED_COLOURS[check["decision"]],
        "threshold_y": y(threshold),
        "threshold": _number(threshold, relative),
        "looks": [(x(n), y(lo), y(hi)) for n, lo, hi in looks],
        "last": (end, y(low), y(high)),
        "unrun": (
            (end, round(width - end, 1), round((width + end) / 2, 1) if width - end > 80 else None)
            if end < width
            else None
        ),
        "y_ticks": [(y(top), _number(top, relative)), (y(bottom), _number(bottom, relative))],
        "x_ticks": (
            [(0.0, "0")]
            + ([(end, str(seen))] if 24 < end < width - 32 else [])
            + [(float(width), str(population))]
        ),
        "summary": (
            f"after {seen} cases the sequence is [{_number(low, relative)},"
            f" {_number(high, relative)}], {side} the bound {_number(threshold, relative)}"
        ),
    }


def _scale(gate: dict, check: dict, higher: bool) -> str:
    """What a check's sequence is of: the candidate's mean, or its gain over the baseline (which, on
    a lower-is-better metric, is baseline - candidate)."""
    if not is_relative(check["bound_kind"]):
        return f"the mean {gate['metric']}"
    how = "candidate - baseline" if higher else "baseline - candidate: lower is better"
    return f"the gain in {gate['metric']} over {gate['baseline']} ({how})"


def settled_view(gate: dict, higher: bool) -> dict | None:
    """A settled gate for the report: its line, and per check the sequence that watched it and its
    chart."""
    settled = gate.get("settled")
    if not settled:
        return None
    return {
        "line": settled_line(settled),
        "decision": settled["decision"],
        "checks": [
            {
                **check,
                "name": TESTS.get(check["test"], FIXED_RULE),
                "scale": _scale(gate, check, higher),
                "chart": sequence_chart(check, settled["population"]),
            }
            for check in settled["checks"]
        ],
    }


def settled_run(verdict: dict) -> dict | None:
    """A settled run's cost against the full run, and which kinds of rule its gates had (for the
    guarantee)."""
    savings = verdict.get("settle")
    if not savings:
        return None
    checks = [c for g in verdict["gates"] if g.get("settled") for c in g["settled"]["checks"]]
    return {
        **savings,
        "requests_saved": saved(savings["requests"], savings["requests_full"]),
        "tokens_saved": saved(savings["tokens"], savings["tokens_full"]),
        "on_the_mean": any(not c["significant"] and c["test"] != "fixed" for c in checks),
        "significant": any(c["significant"] for c in checks),
        "fixed": any(c["test"] == "fixed" for c in checks),
    }


def explorer(results: dict[str, Any], candidates: list[str], baseline: str) -> list[dict]:
    """One row per (suite, case), outputs side by side; regressions against the baseline first (in
    each metric's own direction: a rise in TER or attack success is a regression)."""
    directions = suite_directions(results["run"])
    grouped: dict[tuple[str, str], dict] = {}
    for rec in results["cases"]:
        row = grouped.setdefault(
            (rec["suite"], rec["case_id"]),
            {
                "suite": rec["suite"],
                "case_id": rec["case_id"],
                "input": rec["input"],
                "reference": rec["reference"],
                "tags": rec["tags"],
                "by_candidate": {},
            },
        )
        passed = rec.get("passed", {})
        rec = {
            **rec,
            "badges": [
                (
                    metric,
                    value,
                    badge(value, passed.get(metric), directions.get((rec["suite"], metric), True)),
                )
                for metric, value in rec["metrics"].items()
            ],
        }
        row["by_candidate"][rec["candidate"]] = rec
    for row in grouped.values():
        base = row["by_candidate"].get(baseline, {}).get("metrics", {})
        deltas = [
            better(directions.get((row["suite"], metric), True), value - base[metric])
            for name, rec in row["by_candidate"].items()
            if name != baseline
            for metric, value in rec["metrics"].items()
            if metric in base and value is not None and base[metric] is not None
        ]
        errors = any(rec["error"] for rec in row["by_candidate"].values())
        row["status"] = (
            "error"
            if errors
            else (
                "regressed"
                if any(d < 0 for d in deltas)
                else "improved"
                if any(d > 0 for d in deltas)
                else "same"
            )
        )
    rank = {"regressed": 0, "error": 1, "improved": 2, "same": 3}
    return sorted(grouped.values(), key=lambda r: (rank[r["status"]], r["suite"], r["case_id"]))


def tag_tables(results: dict[str, Any], candidates: list[str]) -> list[dict]:
    """Per (suite, metric) with two or more tags: a row per tag, each candidate's mean and Δ vs the
    baseline; `regressed` when some candidate is worse than the baseline on some tag (the report
    opens those).
    """
    directions = suite_directions(results["run"])
    tables: dict[tuple[str, str], dict] = {}
    for item in results["by_tag"]:
        key = (item["suite"], item["metric"])
        table = tables.setdefault(
            key,
            {"suite": key[0], "metric": key[1], "higher": directions.get(key, True), "rows": {}},
        )
        table["rows"].setdefault(item["tag"], {})[item["candidate"]] = item
    out = []
    for t in tables.values():
        if len(t["rows"]) > 1:
            deltas = [
                better(t["higher"], x["delta"])
                for cells in t["rows"].values()
                for x in cells.values()
                if x["delta"] is not None
            ]
            out.append(
                {**t, "rows": sorted(t["rows"].items()), "regressed": any(d < 0 for d in deltas)}
            )
    return out


def badge(value: float | None, passed: bool | None, higher: bool) -> str:
    """A score's colour: its own pass/fail where the scorer says; for a 0/1 value, whether it is the
    good end in the metric's direction (refusal 1 is good on a safety suite, attack success 1 is
    bad); none for a continuous value (ROUGE 0.99 and perplexity 20 claim neither)."""
    if value is None:
        return "fail"
    if passed is not None:
        return "pass" if passed else "fail"
    if value in (0, 1):
        return "pass" if (value == 1) == higher else "fail"
    return ""


def redacted(text: str | None) -> str | None:
    return None if text is None else f"[redacted: {len(text)} characters]"


def redact(records: list[dict], suites: set[str]) -> list[dict]:
    """Cases of redacted suites with every text replaced by its length; the scores stay."""
    out = []
    for rec in records:
        if rec["suite"] in suites:
            rec = {
                **rec,
                "input": [{**m, "content": redacted(m["content"])} for m in rec["input"]],
                "reference": redacted(rec["reference"]),
                "output": redacted(rec["output"]),
                "details": {k: redacted(v) for k, v in rec["details"].items()},
            }
        out.append(rec)
    return out


def fleet_view(artifact: dict[str, Any]) -> dict[str, Any]:
    """A `serving` record as the report shows it (a record stored before timeouts were counted shows
    none)."""
    return {
        **artifact,
        "replicas": [{"timed_out": 0, **replica} for replica in artifact["replicas"]],
    }


def render_html(results: dict[str, Any]) -> str:
    run = results["run"]
    candidates = [c["name"] for c in run["config"]["candidates"]]
    baseline = run["config"]["baseline"]
    verdict = results["verdict"] or {
        "decision": "error",
        "reason": "the run did not finish",
        "gates": [],
        "errors": 0,
    }
    hidden = set(run["config"].get("report", {}).get("redact_suites", []))
    cases = explorer({**results, "cases": redact(results["cases"], hidden)}, candidates, baseline)
    regressions = ungated(verdict)
    directions = suite_directions(run)
    settled = [
        settled_view(g, directions.get((g["suite"], g["metric"]), True)) for g in verdict["gates"]
    ]
    return _env.get_template("report.html.j2").render(
        run=run,
        verdict=verdict,
        decision_label=LABELS[verdict["decision"]],
        nonce=secrets.token_urlsafe(16),
        settled_run=settled_run(verdict),
        settled=settled,
        ungated=regressions,
        ungated_heading=regressions_heading(regressions) if regressions else "",
        candidates=candidates,
        baseline=baseline,
        table=metric_table(results),
        charts=bar_charts(results, candidates),
        usage=results["usage"],
        usage_chart=usage_chart(results["usage"]),
        timings=results["timings"],
        cases=cases,
        history=history_charts(results["history"]),
        training=training_charts(results["artifacts"]),
        artifacts=[a for a in results["artifacts"] if a["kind"] not in ("training", "serving")],
        fleets=[fleet_view(a) for a in results["artifacts"] if a["kind"] == "serving"],
        suites=sorted({c["suite"] for c in cases}),
        tags=sorted({t for c in cases for t in c["tags"]}),
        stats=StatsConfig.model_validate(run["config"].get("stats", {})),
        tag_tables=tag_tables(results, candidates),
        corpus=results["corpus"],
        agreement=results["agreement"],
        judges=results.get("judges", []),
        redacted_suites=sorted(hidden),
    )
