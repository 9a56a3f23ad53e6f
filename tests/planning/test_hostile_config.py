"""Hostile values in a config are config errors at plan time: `harness check` names each at its
file:line and key with a fix, all at once, and a run refuses them before any model starts (issue 21,
items 9-12). What the report shows of huge or odd texts, and that results.json is always JSON, are
checked on the written files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.cli import main
from harness.core.request import Completion, Request
from harness.planning.config import Config
from harness.report import write_reports
from harness.store.store import Store
from harness.verdict.evidence import Evidence
from harness.verdict.gate import BoundResult, GateResult, Verdict, decide
from support.scenarios import BASE, PROMPT, TICKET, Project, answer, tickets

ENDPOINT = {"name": "prod", "kind": "endpoint", "base_url": "http://127.0.0.1:9/v1", "model": "m"}


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the one line of `text` that holds `fragment`."""
    [number] = [i for i, line in enumerate(text.splitlines(), start=1) if fragment in line]
    return number


def checked(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["check", str(path)]) == 2
    return capsys.readouterr().err


def project_config(project: Project, **extra: object) -> Path:
    project.suite("tickets", ["json_valid", {"type": "bleu"}], tickets(4))
    gates = extra.pop(
        "gates", [{"candidate": "bare", "suite": "tickets", "metric": "json_valid", "min": 0.5}]
    )
    return project.config([PROMPT], gates, [answer(TICKET)], **extra)  # type: ignore[arg-type]


HOSTILE = """\
name: hostile
model: ./model
seed: -5
engine:
  kind: scripted
  request_timeout_s: .inf
  max_retries: 1000000000
  max_concurrency: 100000000
  script:
    - {answer: x, delay_s: .nan}
generation: {max_tokens: 1000000000000}
candidates:
  - {name: bare, kind: prompt}
  - name: prod
    kind: endpoint
    base_url: http://127.0.0.1:9/v1
    model: m
    requests_per_minute: 0.000000001
    request_timeout_s: 1e400
suites: [suites/tickets]
gates:
  - {candidate: bare, suite: tickets, metric: json_valid, min: .nan}
  - {candidate: bare, suite: tickets, metric: json_valid, max: .inf}
  - candidate: bare
    suite: tickets
    metric: json_valid
    min: 0.9
    max: 0.5
stats:
  resamples: 1000000000
  alpha: .nan
  confidence: -.inf
judge: {max_tokens: 1000000000, endpoint: {model: j, requests_per_minute: .inf}}
"""
EXPECTED = [  # (the line's fragment, key, what the message says), in file order
    (
        "model: ./model",
        "model",
        "'./model' is neither a known alias",
    ),  # what validates is checked too
    ("seed: -5", "seed", "-5 is below the limit of 0"),
    ("request_timeout_s: .inf", "engine.request_timeout_s", "finite"),
    ("max_retries:", "engine.max_retries", "past the limit of 100"),
    ("max_concurrency:", "engine.max_concurrency", "past the limit of 1,024"),
    ("delay_s: .nan", "engine.script[0].delay_s", "finite"),
    ("generation:", "generation.max_tokens", "past the limit of 1,048,576"),
    (
        "requests_per_minute: 0.000000001",
        "candidates[1].requests_per_minute",
        "below the limit of 0.01",
    ),
    ("1e400", "candidates[1].request_timeout_s", "finite"),
    ("suites: [suites/tickets]", "suites[0]", "suite 'suites/tickets' not found"),
    ("min: .nan", "gates[0].min", "finite"),
    ("max: .inf", "gates[1].max", "finite"),
    ("max: 0.5", "gates[2].max", "`min` 0.9 is above `max` 0.5"),
    ("resamples:", "stats.resamples", "past the limit of 1,000,000"),
    ("alpha: .nan", "stats.alpha", "finite"),
    ("confidence: -.inf", "stats.confidence", "finite"),
    ("judge:", "judge.max_tokens", "past the limit"),
    ("judge:", "judge.endpoint.requests_per_minute", "finite"),
]


def test_check_names_every_hostile_value_at_its_line_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HOSTILE)
    err = checked(path, capsys)
    problems = err.split("error: ")[1:]
    for fragment, key, says in EXPECTED:
        where = f"{path}:{line_of(HOSTILE, fragment)}: {key}: "
        found = [p for p in problems if p.startswith(where)]
        assert found, f"{where!r} not reported:\n{err}"
        assert says in found[0] and "\n  fix: " in found[0], found[0]
    assert len(problems) == len(EXPECTED), err
    lines = [int(p.removeprefix(f"{path}:").split(":")[0]) for p in problems]
    assert lines == sorted(lines), err


def test_a_seed_past_numpys_range_is_refused(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project_config(project, seed=2**32)  # np.random.seed takes 0..2**32-1
    assert "seed: 4,294,967,296 is past the limit of 4,294,967,295" in checked(path, capsys)
    assert main(["check", str(project_config(project, seed=2**32 - 1))]) == 0


def test_plan_problems_are_listed_at_once(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounds outside a metric's range, API keys missing from the environment, an output_dir that is
    a file."""
    monkeypatch.delenv("HARNESS_TEST_UNSET_KEY", raising=False)
    monkeypatch.setenv("HARNESS_TEST_EMPTY_KEY", "  ")
    (project.root / "a-file").write_text("not a folder")
    project.suite(
        "safety",
        [{"type": "judge", "rubric": "harmbench", "name": "attack_success"}],
        [{"id": "h0", "prompt": "Harmful?"}],
    )
    gate = {"candidate": "bare", "suite": "tickets"}
    path = project_config(
        project,
        output_dir="a-file",
        gates=[
            {**gate, "metric": "json_valid", "min": 1.5},
            {**gate, "metric": "json_valid", "max": -0.1},
            {**gate, "metric": "bleu", "min": 101},
            {**gate, "metric": "bleu", "min": 40},
            {**gate, "candidate": "prod", "metric": "json_valid", "min_delta": 1.5},
            {**gate, "candidate": "prod", "metric": "bleu", "max_drop": 100.5},
            {**gate, "candidate": "prod", "metric": "json_valid", "max_drop": 1},
        ],
    )
    data = yaml.safe_load(path.read_text())
    data["candidates"].append({**ENDPOINT, "api_key_env": "HARNESS_TEST_UNSET_KEY"})
    data["judge"] = {
        "endpoint": {
            "base_url": "http://127.0.0.1:9/v1",
            "model": "j",
            "api_key_env": "HARNESS_TEST_EMPTY_KEY",
        }
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    text = path.read_text()
    err = checked(path, capsys)
    expected = [
        (
            "gates[0].min",
            (
                "min 1.5 is outside the values `json_valid` takes (between 0 and 1), so the gate"
                " can never pass"
            ),
        ),
        (
            "gates[1].max",
            (
                "max -0.1 is outside the values `json_valid` takes (between 0 and 1), so the gate"
                " can never pass"
            ),
        ),
        ("gates[2].min", "min 101 is outside the values `bleu` takes (between 0 and 100)"),
        (
            "gates[4].min_delta",
            (
                "min_delta +1.5 is more than `json_valid` can change (at most 1 either way), so the"
                " gate can never pass"
            ),
        ),
        (
            "gates[5].max_drop",
            (
                "max_drop 100.5 is more than `bleu` can change (at most 100 either way), so the"
                " gate always passes"
            ),
        ),
        ("candidates[1].api_key_env", "the environment variable HARNESS_TEST_UNSET_KEY is not set"),
        (
            "judge.endpoint.api_key_env",
            "the environment variable HARNESS_TEST_EMPTY_KEY is not set",
        ),
        ("output_dir", f"run folders cannot be written to {project.root / 'a-file'}: it is a file"),
    ]
    lines = {
        "gates[0].min": line_of(text, "min: 1.5"),
        "gates[1].max": line_of(text, "max: -0.1"),
        "gates[2].min": line_of(text, "min: 101"),
        "gates[4].min_delta": line_of(text, "min_delta: 1.5"),
        "gates[5].max_drop": line_of(text, "max_drop: 100.5"),
        "candidates[1].api_key_env": line_of(text, "HARNESS_TEST_UNSET_KEY"),
        "judge.endpoint.api_key_env": line_of(text, "HARNESS_TEST_EMPTY_KEY"),
        "output_dir": line_of(text, "output_dir:"),
    }
    for key, says in expected:
        assert f"{path}:{lines[key]}: {key}: {says}" in err, (
            f"{key} not reported as expected:\n{err}"
        )
    assert err.count("error: ") == len(expected), err  # the bounds inside the range pass
    assert err.count("fix: ") == len(expected)


@pytest.mark.parametrize("where", ["a file", "under a file", "unwritable"])
def test_an_output_dir_that_cannot_be_written_is_named(
    project: Project, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Permission bits say nothing to root, so the harness probes: a file there, a file in the way,
    or a folder it cannot create a file in (/proc refuses root too)."""
    (project.root / "taken").write_text("a file")
    (project.root / "locked").mkdir(mode=0o500)
    unwritable = (
        "/proc/harness-reports" if os.geteuid() == 0 else str(project.root / "locked" / "reports")
    )
    if where == "unwritable" and os.geteuid() == 0 and not Path("/proc").is_dir():
        pytest.skip("no /proc here to stand for a folder root cannot write")
    output = {"a file": "taken", "under a file": "taken/reports", "unwritable": unwritable}[where]
    path = project_config(project, output_dir=output)
    err = checked(path, capsys)
    assert (
        f"{path}:{line_of(path.read_text(), 'output_dir:')}: output_dir: run folders cannot be"
        " written to " in err
    )
    assert str(project.root / output) in err and "fix: point output_dir at a folder" in err
    assert main(["compare", str(path)]) == 2 and not (project.root / "reports").exists()


def test_the_api_key_message_names_the_variable_never_its_value(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-hostile-0f-the-env-9e2"
    path = project_config(project)
    data = yaml.safe_load(path.read_text())
    data["candidates"].append({**ENDPOINT, "api_key_env": "HARNESS_TEST_KEY_SET"})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("HARNESS_TEST_KEY_SET", secret)
    capsys.readouterr()
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr()
    assert secret not in out.out + out.err
    monkeypatch.setenv("HARNESS_TEST_KEY_SET", "")
    err = checked(path, capsys)
    assert "HARNESS_TEST_KEY_SET is not set" in err and "export HARNESS_TEST_KEY_SET=" in err


def gate_reasons(**rule: float) -> list[str]:
    config = Config.model_validate(
        {
            "name": "t",
            "suites": ["s"],
            "stats": {"resamples": 200},
            "candidates": [{"name": "base", "kind": "prompt"}, {"name": "new", "kind": "prompt"}],
            "gates": [
                {"candidate": "new", "suite": "s", "metric": "m", **rule},
                {"candidate": "new", "suite": "s", "metric": "m", "significant": True, **rule},
            ],
        }
    )
    rows = [
        {"candidate": c, "suite": "s", "case_id": f"c{i}", "metric": "m", "value": v}
        for c, values in (("base", [1.0] * 6), ("new", [0.0] * 6))
        for i, v in enumerate(values)
    ]
    out = []
    for higher in (True, False):
        verdict = decide(
            config, Evidence(pd.DataFrame(rows), 0, 12, directions={("s", "m"): higher})
        )
        out += [verdict.reason] + [f"{g.rule}: {g.reason}" for g in verdict.gates]
    return out


@pytest.mark.parametrize(
    "rule",
    [{"max_drop": 0.0}, {"min_delta": 0.0}, {"min_delta": -0.0}, {"min": -0.0}, {"max": -0.0}],
)
def test_no_gate_sentence_shows_a_signed_zero(rule: dict[str, float]) -> None:
    reasons = gate_reasons(**rule)
    for reason in reasons:
        assert "-0 " not in f"{reason} " and "+0 " not in f"{reason} " and "-0)" not in reason, (
            reason
        )
        assert "-0.000" not in reason, reason
    if "max_drop" in rule:
        assert "Δ -1.000 is below 0" in reasons[0] and "drop <= 0" in reasons[0]


def write_run(
    tmp_path: Path, cases: list[tuple[list[str], float | None]], verdict: dict
) -> dict[str, Path]:
    """A one-candidate run written as a run writes it: case i carries tags cases[i][0] and score
    cases[i][1]."""
    store = Store(tmp_path / "s.sqlite")
    request = Request(
        model="m",
        messages=(("user", "hi"),),
        max_tokens=8,
        temperature=0.0,
        top_p=1.0,
        stop=(),
        seed=0,
    )
    config = {
        "name": "r",
        "seed": 0,
        "baseline": "a",
        "engine": {"kind": "vllm"},
        "candidates": [{"name": "a", "kind": "prompt"}],
    }
    store.begin_run(
        "r1", "r", "hash", config, {"suites": {"s": {"cases": len(cases), "content_hash": "h"}}}
    )
    for i, (tags, value) in enumerate(cases):
        store.put_case("r1", "s", f"c{i}", [{"role": "user", "content": "q"}], None, tags)
        store.put_response(
            "r1", "a", "s", f"c{i}", request.as_json(), Completion("answer"), cached=False
        )
        if value is not None:
            store.put_score("r1", "a", "s", f"c{i}", "m", value, None, "")
    store.finish_run("r1", "finished", verdict)
    return write_reports(store, "r1", tmp_path / "run")


def test_results_json_is_json_whatever_the_store_holds(tmp_path: Path) -> None:
    """A non-finite number in a stored verdict (as an older harness stored a `.inf` bound) is null
    in results.json, never NaN or Infinity."""
    inf, nan = float("inf"), float("nan")
    gate = GateResult(
        "a / s / m <= inf",
        "a",
        "s",
        "m",
        None,
        0.5,
        2,
        True,
        "r",
        ci_low=-inf,
        p_value=nan,
        checks=[BoundResult("max", inf, 0.5, 0.0, 1.0)],
    )
    text = write_run(tmp_path, [([], 0.0), ([], 1.0)], Verdict("ship", "r", [gate]).as_dict())[
        "results"
    ].read_text()

    def refuse(constant: str) -> None:
        raise AssertionError(f"results.json holds {constant}, which is not JSON")

    results = json.loads(text, parse_constant=refuse)
    [shown] = results["verdict"]["gates"]
    assert (
        shown["ci_low"] is None and shown["p_value"] is None and shown["checks"][0]["bound"] is None
    )
    assert {c["case_id"]: c["metrics"]["m"] for c in results["cases"]} == {"c0": 0.0, "c1": 1.0}


def test_the_report_cuts_huge_texts_and_states_their_length(project: Project) -> None:
    """A 10 MB input, 3 MB answers (a config may not hold more), 1 MB system prompts and references:
    whole in results.json, cut in report.html with their length stated."""
    prompt, long_answer, system, reference = (
        "P" * 10_000_000,
        "A" * 3_000_000,
        "S" * 1_000_000,
        "R" * 1_000_000,
    )
    cases = [
        {
            "id": f"t{i}",
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": prompt if i == 0 else f"Ticket {i}"},
            ],
            "reference": reference,
        }
        for i in range(3)
    ]
    project.suite("tickets", ["json_valid"], cases)
    project.config(
        [PROMPT],
        [{"candidate": "bare", "suite": "tickets", "metric": "json_valid", "min": 0.5}],
        [answer(long_answer, model=BASE)],
    )
    code, results = project.run()
    assert code == 1 and results is not None
    assert {r["output"] for r in results["cases"]} == {
        long_answer
    }  # the record keeps every text whole
    first = next(r for r in results["cases"] if r["case_id"] == "t0")
    assert first["input"] == cases[0]["messages"] and first["reference"] == reference
    html = (project.root / "reports" / results["run"]["id"] / "report.html").read_text()
    assert len(html.encode()) < 2_000_000
    said = "characters; the whole text is in results.json)"
    assert html.count(f"… (10,000,000 {said}") == 1 and html.count(f"… (3,000,000 {said}") == 3
    assert html.count(f"… (1,000,000 {said}") == 6  # the system prompts and the references
    assert "A" * 4000 in html and "A" * 4001 not in html


class Elements(HTMLParser):
    """Attributes of the report's filter selects and case elements, decoded as a browser decodes
    them."""

    def __init__(self) -> None:
        super().__init__()
        self.options: dict[str, list[str]] = {}
        self.cases: list[dict[str, str | None]] = []
        self.script = ""
        self._select: str | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "select":
            self._select = found["data-filter"]
            self.options[self._select] = []  # type: ignore[index]
        elif tag == "option" and self._select:
            self.options[self._select].append(found["value"])  # type: ignore[arg-type]
        elif tag == "details" and "case" in (found.get("class") or ""):
            self.cases.append(found)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._select = None if tag == "select" else self._select
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script += data


# The report's script against a minimal DOM built from the parsed elements: select each tag, count
# what shows.
DOM = """
const [elements, options] = JSON.parse(require("fs").readFileSync(0, "utf8"));
const selects = Object.entries(options).map(([filter, values]) => ({dataset: {filter}, values, selectedIndex: 0,
  get value() { return this.values[this.selectedIndex]; }, addEventListener(_, f) { this.change = f; }}));
const cases = elements.map(a => ({dataset: {suite: a["data-suite"], tags: a["data-tags"], status: a["data-status"]},
  hidden: false, classList: {toggle(_, on) { this.owner.hidden = on; }}}));
cases.forEach(c => { c.classList.owner = c; });
const shown = {textContent: ""};
global.document = {querySelectorAll: q => q.startsWith("#filters") ? selects : cases, getElementById: () => shown};
eval(SCRIPT);
const tags = selects.find(s => s.dataset.filter === "tags");
const out = {};
tags.values.forEach((value, i) => { tags.selectedIndex = i; tags.change();
  out[i === 0 ? "(all)" : value] = cases.filter(c => !c.hidden).length; });
console.log(JSON.stringify(out));
"""


def test_the_tag_filter_matches_tags_with_spaces(tmp_path: Path) -> None:
    tags = ["needs review", "a  b", " padded ", "x&y", 'it\'s "quoted"', "<b>"]
    files = write_run(
        tmp_path,
        [(sorted({tag, "needs review"}), None) for tag in tags],
        Verdict("ship", "ok").as_dict(),
    )
    parsed = Elements()
    parsed.feed(files["html"].read_text())
    assert parsed.options["tags"] == [""] + sorted(tags)  # each option's value is the tag itself
    assert [json.loads(c["data-tags"]) for c in parsed.cases] == [
        sorted({t, "needs review"})
        for t in tags  # type: ignore[arg-type]
    ]
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "node is not installed: the attributes are checked, the script's matching is not"
        )
    program = DOM.replace("SCRIPT", json.dumps(parsed.script))
    done = subprocess.run(
        [node, "-e", program],
        input=json.dumps([parsed.cases, parsed.options]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    counts = json.loads(done.stdout)
    assert counts == {"(all)": 6, "needs review": 6, **{t: 1 for t in tags if t != "needs review"}}
