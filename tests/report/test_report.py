"""report.html and results.json, rendered from a real store; model output must stay inert."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.core.request import Completion, Request
from harness.report import write_reports
from harness.report.results import build_results
from harness.store.store import Store
from harness.verdict.gate import Verdict
from support.helpers import watched_page
from support.scenarios import Project

EVIL = '<script>alert(1)</script><img src=x onerror="alert(2)">'
REQUEST = Request(
    model="m", messages=(("user", "hi"),), max_tokens=8, temperature=0.0, top_p=1.0, stop=(), seed=0
)
CONFIG = {
    "name": "demo <b>",
    "seed": 0,
    "baseline": "a",
    "engine": {"kind": "vllm"},
    "candidates": [{"name": "a", "kind": "prompt"}, {"name": "b", "kind": "prompt"}],
}
META = {
    "seed": 0,
    "models": {"a": {"path": "/m", "fingerprint": "f" * 64}},
    "suites": {"s": {"cases": 1, "content_hash": "h"}},
    "packages": {"harness": "0.1.0"},
    "environment": {"python": "3.11"},
}


def make_run(tmp_path: Path) -> tuple[Store, Path]:
    store = Store(tmp_path / "s.sqlite")
    store.begin_run("r1", "demo", "hash", CONFIG, META)
    store.put_case("r1", "s", "c1", [{"role": "user", "content": EVIL}], EVIL, ["tag"])
    store.put_response(
        "r1", "a", "s", "c1", REQUEST.as_json(), Completion(EVIL, 5, 7, 0.25, "stop"), cached=False
    )
    store.put_response(
        "r1", "b", "s", "c1", REQUEST.as_json(), Completion("", error=EVIL), cached=False
    )
    store.put_score("r1", "a", "s", "c1", "json_valid", 0.0, False, EVIL)
    store.finish_run("r1", "finished", Verdict("error", EVIL).as_dict())
    return store, tmp_path / "run"


def test_html_escapes_model_output(tmp_path: Path) -> None:
    store, run_dir = make_run(tmp_path)
    html = write_reports(store, "r1", run_dir)["html"].read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "onerror=&#34;alert(2)&#34;" in html
    # the only script is ours, and the CSP lets only its nonce run
    assert html.count("<script") == 1
    nonce = html.split('<script nonce="', 1)[1].split('"', 1)[0]
    assert f"script-src 'nonce-{nonce}'" in html and len(nonce) >= 16
    assert "ERROR: NO VERDICT" in html
    assert "http://" not in html and "https://" not in html  # self-contained: nothing to fetch


def test_results_json_records(tmp_path: Path) -> None:
    store, run_dir = make_run(tmp_path)
    results = json.loads(write_reports(store, "r1", run_dir)["results"].read_text())
    assert results["schema_version"] == 6 and results["judges"] == []
    assert (
        results["run"]["config_hash"] == "hash"
        and results["run"]["models"]["a"]["fingerprint"] == "f" * 64
    )
    assert results["run"]["packages"] == {"harness": "0.1.0"} and results["run"]["seed"] == 0
    by_candidate = {r["candidate"]: r for r in results["cases"]}
    a, b = by_candidate["a"], by_candidate["b"]
    assert (
        a["input"] == [{"role": "user", "content": EVIL}]
        and a["reference"] == EVIL
        and a["output"] == EVIL
    )
    assert a["metrics"] == {"json_valid": 0.0} and a["details"] == {"json_valid": EVIL}
    assert (a["latency_s"], a["prompt_tokens"], a["completion_tokens"], a["cached"]) == (
        0.25,
        5,
        7,
        False,
    )
    assert a["request"]["max_tokens"] == 8 and a["error"] is None
    assert b["error"] == EVIL and b["metrics"] == {}
    assert results["verdict"]["decision"] == "error"
    assert {u["candidate"]: u["errors"] for u in results["usage"]} == {"a": 0, "b": 1}


def regression(blocks: bool) -> dict:
    """An ungated regression as a verdict stores it, with a hostile candidate, suite and metric
    name."""
    return {
        "candidate": EVIL,
        "baseline": "a",
        "suite": "s*[x](y)",
        "metric": "m|<b>",
        "higher_is_better": False,
        "n": 40,
        "candidate_mean": 21.25,
        "baseline_mean": 18.86,
        "delta": 2.39,
        "ci_low": 1.76,
        "ci_high": 3.08,
        "test": "paired_bootstrap",
        "p_value": 0.0002,
        "p_adjusted": 0.0034,
        "blocks": blocks,
    }


@pytest.mark.parametrize("blocks", [False, True])
def test_ungated_regressions_are_in_every_report_and_inert(tmp_path: Path, blocks: bool) -> None:
    from harness.report.ci import github_annotations

    store, run_dir = make_run(tmp_path)
    decision = "do_not_ship" if blocks else "ship"
    store.finish_run(
        "r1",
        "finished",
        {
            **Verdict(decision, "all 0 gates pass").as_dict(),
            "ungated_regressions": [regression(blocks)],
        },
    )
    files = write_reports(store, "r1", run_dir)
    results = json.loads(files["results"].read_text())
    assert results["verdict"]["ungated_regressions"] == [regression(blocks)]
    html = files["html"].read_text()
    assert (
        'id="ungated-regressions"' in html and "<script>alert" not in html and "m|&lt;b&gt;" in html
    )
    assert (
        "18.860 → 21.250" in html
        and "+2.390 [+1.760, +3.080]" in html
        and "paired_bootstrap · Holm 0.003" in html
    )
    assert "lower is better" in html
    assert ("each is DO NOT SHIP (gate_policy.ungated_regressions: fail)" in html) == blocks
    summary = files["summary"].read_text()
    assert "1 significant regression no gate covers" in summary and "<script>" not in summary
    assert (
        "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in summary
        and "s\\*\\[x\\]\\(y\\) / m\\|&lt;b&gt;" in summary
    )
    assert "18\\.860 → 21\\.250 \\(lower is better\\), Δ \\+2\\.390" in summary
    junit = files["junit"].read_text()
    assert ('failures="1"' in junit and "no ungated regression: " in junit) == blocks
    assert ("<system-err>1 significant regression" in junit) == (not blocks)
    [line] = github_annotations(results)
    assert line.startswith(
        f"::{'error' if blocks else 'warning'} title=harness ungated regression <script>"
    )
    assert "s*[x](y) / m|<b>: 18.860 → 21.250" in line


def test_a_verdict_stored_before_ungated_regressions_were_checked_still_renders(
    tmp_path: Path,
) -> None:
    store, run_dir = make_run(tmp_path)
    old = Verdict("ship", "all 1 gates pass").as_dict()
    del old["ungated_regressions"]
    store.finish_run("r1", "finished", old)
    files = write_reports(store, "r1", run_dir)
    assert "ungated" not in json.loads(files["results"].read_text())["verdict"]
    assert 'id="ungated-regressions"' not in files["html"].read_text()
    assert "no gate covers" not in files["summary"].read_text() + files["junit"].read_text()


def breakdown_run(tmp_path: Path, redact: list[str]) -> dict:
    """Two candidates on a tagged BLEU suite and a perplexity suite, written as a run would write
    them."""
    from sacrebleu.metrics import BLEU

    config = {**CONFIG, "report": {"redact_suites": redact}}
    meta = {
        **META,
        "suites": {
            "mt": {
                "cases": 4,
                "content_hash": "h",
                "metrics": ["bleu"],
                "directions": {"bleu": True},
                "scorers": {
                    "bleu": {
                        "type": "bleu",
                        "name": None,
                        "higher_is_better": None,
                        "tokenize": "13a",
                        "lowercase": False,
                        "smooth_method": "exp",
                        "smooth_value": None,
                    }
                },
            },
            "ppl": {
                "cases": 2,
                "content_hash": "h",
                "metrics": ["perplexity"],
                "directions": {"perplexity": False},
                "scorers": {
                    "perplexity": {"type": "perplexity", "name": None, "higher_is_better": None}
                },
            },
        },
    }
    store = Store(tmp_path / "s.sqlite")
    store.begin_run("r1", "demo", "hash", config, meta)
    refs = [
        "the cat sat on the mat",
        "a dog ran in the park",
        "birds fly south in winter",
        "rain falls on the hills",
    ]
    outputs = {
        "a": ["the cat sat on a mat", "a dog ran in a park", "birds fly south", "rain on hills"],
        "b": ["cat mat", "dog park", "birds fly south in winter", "rain falls on the hills"],
    }
    for i, ref in enumerate(refs):
        store.put_case(
            "r1",
            "mt",
            f"c{i}",
            [{"role": "user", "content": f"secret prompt {i}"}],
            ref,
            ["short" if i < 2 else "long", "all"],
        )
        for candidate, outs in outputs.items():
            store.put_response(
                "r1", candidate, "mt", f"c{i}", REQUEST.as_json(), Completion(outs[i]), cached=False
            )
            value = BLEU(effective_order=True).sentence_score(outs[i], [ref]).score
            store.put_score("r1", candidate, "mt", f"c{i}", "bleu", value, None, "")
    for i, (lp, n) in enumerate([(-20.0, 10), (-45.0, 15)]):
        store.put_case("r1", "ppl", f"t{i}", [{"role": "user", "content": "text"}], None, [])
        for candidate, shift in (("a", 0.0), ("b", 5.0)):
            store.put_response(
                "r1",
                candidate,
                "ppl",
                f"t{i}",
                REQUEST.as_json(),
                Completion("", logliks=((lp + shift, n),)),
                cached=False,
            )
            store.put_score(
                "r1", candidate, "ppl", f"t{i}", "perplexity", math.exp(-(lp + shift) / n), None, ""
            )
    store.finish_run("r1", "finished", Verdict("ship", "ok").as_dict())
    files = write_reports(store, "r1", tmp_path / "run")
    return {
        "results": json.loads(files["results"].read_text()),
        "html": files["html"].read_text(),
        "refs": refs,
        "outputs": outputs,
    }


def test_breakdowns_by_tag_and_corpus_scores_as_the_libraries_define_them(tmp_path: Path) -> None:
    from sacrebleu.metrics import BLEU

    run = breakdown_run(tmp_path, [])
    results = run["results"]
    corpus = {(r["candidate"], r["suite"]): r for r in results["corpus"]}
    for candidate, outs in run["outputs"].items():
        direct = BLEU().corpus_score(outs, [run["refs"]])
        assert corpus[(candidate, "mt")]["value"] == pytest.approx(direct.score, abs=1e-9)
        assert (
            "tok:13a" in corpus[(candidate, "mt")]["signature"]
            and "eff:no" in corpus[(candidate, "mt")]["signature"]
        )
    assert corpus[("a", "ppl")]["value"] == pytest.approx(
        math.exp(65 / 25)
    )  # pooled over 25 tokens
    tags = {(r["candidate"], r["tag"]): r for r in results["by_tag"] if r["suite"] == "mt"}
    means = {
        c: {
            r["case_id"]: r["metrics"]["bleu"]
            for r in results["cases"]
            if r["candidate"] == c and r["suite"] == "mt"
        }
        for c in ("a", "b")
    }
    assert tags[("a", "short")]["n"] == 2 and tags[("a", "short")]["delta"] is None
    assert tags[("b", "short")]["mean"] == pytest.approx((means["b"]["c0"] + means["b"]["c1"]) / 2)
    assert tags[("b", "long")]["delta"] == pytest.approx(
        (means["b"]["c2"] + means["b"]["c3"] - means["a"]["c2"] - means["a"]["c3"]) / 2
    )
    # perplexity fell for b: lower is better, so that comparison reads as better
    ppl = next(c for c in results["comparisons"] if c["metric"] == "perplexity")
    assert ppl["delta"] < 0 and not ppl["higher_is_better"] and ppl["outcome"] == "better"
    html = run["html"]
    assert "By tag" in html and "Corpus-level scores" in html and "lower is better" in html
    assert "secret prompt 1" in html


def test_redacted_suites_keep_scores_but_hide_texts(tmp_path: Path) -> None:
    run = breakdown_run(tmp_path, ["mt"])
    html = run["html"]
    assert (
        "secret prompt" not in html
        and "the cat sat on a mat" not in html
        and "the cat sat on the mat" not in html
    )
    assert "[redacted: 15 characters]" in html and "report.redact_suites" in html
    assert "bleu" in html  # the scores stay
    assert run["results"]["cases"][0]["input"][0]["content"].startswith(
        "secret prompt"
    )  # the record keeps them


HOSTILE = '<script>alert(1)</script><img src=x onerror="window.__pwned = 1">'


def settled_run(project: Project, *args: str) -> tuple[int, Path]:
    """lora, named with markup, breaks the JSON of 2 tickets in 5 of 300 against a `max_drop: 0.05`
    gate on a metric named with markup: run with --stop-when-settled, it is settled after 40 cases
    (waves of 20)."""
    from support.scenarios import LORA, PROMPT, TICKET, answer

    lora, metric = f"lora{HOSTILE}", f"valid{HOSTILE}"
    project.suite(
        "tickets",
        [{"type": "json_valid", "name": metric}],
        [
            {
                "id": f"t{i:03d}",
                "prompt": f"Ticket {i:03d}: I was charged twice.",
                "reference": TICKET,
            }
            for i in range(300)
        ],
    )
    project.config(
        [PROMPT, {**LORA, "name": lora}],
        [{"candidate": lora, "suite": "tickets", "metric": metric, "max_drop": 0.05}],
        [
            answer('{"category": ', model=lora, contains=f"Ticket {i:03d}:")
            for i in range(300)
            if i % 5 < 2
        ]
        + [answer(TICKET)],
    )
    code, results = project.run(*args)
    return code, project.root / "reports" / results["run"]["id"]


class Shapes(HTMLParser):
    """The attributes of every SVG shape in the settled gates' rows, by its class or tag."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.shapes = 0, {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.inside += tag == "tr" and found.get("class") == "settled"
        if self.inside and tag in ("svg", "polygon", "line", "title"):
            self.shapes.setdefault(found.get("class") or tag, []).append(found)

    def handle_endtag(self, tag: str) -> None:
        self.inside -= tag == "tr" and self.inside > 0


def test_a_settled_run_shows_when_each_gate_was_decided_and_what_it_saved(project: Project) -> None:
    code, run_dir = settled_run(project, "--stop-when-settled")
    assert code == 1
    html = (run_dir / "report.html").read_text()
    assert "decided after 40 of 300 cases (wave 2, 87% saved)" in html
    assert (
        "<strong>80 of 600 requests</strong>" in html and "746 tokens of an estimated 5,595" in html
    )
    assert "2 waves of 20 cases per suite · alpha_split 0.2" in html
    assert "bare / tickets: 40 of 300 cases · lora&lt;script&gt;" in html
    assert "differs from the decision on the whole suite with probability at most α" in html
    assert "without-replacement betting confidence sequence" in html
    shapes = Shapes()
    shapes.feed(html)
    [svg], [band], [threshold], [decision] = (
        shapes.shapes[k] for k in ("svg", "band", "threshold", "decision")
    )
    assert svg["role"] == "img" and svg["aria-label"].startswith(
        f"lora{HOSTILE} / tickets / valid{HOSTILE}"
    )
    points = [tuple(map(float, p.split(","))) for p in band["points"].split()]
    assert len(points) == 6 and max(x for x, _ in points) == pytest.approx(320 * 40 / 300, abs=0.1)
    # the band at the decision is wholly below the bound (SVG y grows downwards): max_drop 0.05
    # failed
    assert (
        min(float(decision["y1"]), float(decision["y2"]))
        > float(threshold["y1"])
        == float(threshold["y2"])
    )
    assert decision["stroke"] == "#cf222e"
    # every name stays text: the only script is the report's own, no handler comes out of a name
    assert (
        html.count("<script") == 1 and "<img src=x" not in html and "&lt;script&gt;alert(1)" in html
    )
    summary = (run_dir / "summary.md").read_text()
    assert (
        "**Stopped when settled**: 80 of 600 requests (87% saved), 746 tokens of an estimated 5,595"
        in summary
    )
    assert "drop &lt;= 0\\.05: decided after 40 of 300 cases (wave 2, 87% saved)" in summary
    assert "- lora&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in summary and "<script" not in summary


def test_a_fixed_size_run_has_no_settled_parts(project: Project) -> None:
    code, run_dir = settled_run(project)
    html, summary = (run_dir / "report.html").read_text(), (run_dir / "summary.md").read_text()
    assert (
        code == 1
        and 'id="settled"' not in html
        and 'class="settled"' not in html
        and "<polygon" not in html
    )
    assert "settled" not in summary and "decided after" not in summary


def test_the_comparisons_are_those_decided_with_the_verdict_and_an_older_run_s_are_computed_alike(
    project: Project,
) -> None:
    code, run_dir = settled_run(project)
    run_id = run_dir.name
    with Store(project.store) as store:
        results = build_results(store, run_id)
        stored = store.run(run_id)["verdict"]
        assert results["comparisons"] and len(stored["comparisons"]) == len(results["comparisons"])
        assert "comparisons" not in results["verdict"]  # results.json lists them once, at the top
        store.set_verdict(
            run_id, {k: v for k, v in stored.items() if k != "comparisons"}
        )  # as an older harness did
        assert build_results(store, run_id) == results


@pytest.mark.slow
def test_a_settled_report_in_a_real_browser(project: Project) -> None:
    """Chromium draws each settled gate's sequence (the band, the bound, the decision) with no
    console errors and no request, and the names carrying a script or an onerror handler stay text
    in the chart's title.
    """
    run_dir = settled_run(project, "--stop-when-settled")[1]
    with watched_page(run_dir / "report.html") as (page, problems):
        assert (
            page.locator("#settled").is_visible()
            and "80 of 600 requests" in page.locator("#settled").inner_text()
        )
        row = page.locator("tr.settled")
        assert "decided after 40 of 300 cases" in row.inner_text()
        band, bound, decision = (
            row.locator(s).bounding_box()
            for s in ("polygon.band", "line.threshold", "line.decision")
        )
        assert (
            band["width"] > 10
            and band["height"] > 10
            and bound["width"] == pytest.approx(320, abs=2)
        )
        assert decision["y"] > bound["y"]  # drawn wholly below the bound: the gate failed
        assert HOSTILE in row.locator("svg title").text_content()
        assert page.evaluate("window.__pwned") is None
        row.screenshot(path=str(run_dir / "settled.png"))
    assert problems == []
