"""Hostile names through every output: the terminal, the CI log, junit.xml and summary.md.

User data (config, candidate, suite, metric and case names, reasons that quote them) must never
style or crash the console (rich markup), move the terminal (ESC sequences), start a line of its own
(a GitHub workflow command after a newline, or after a wrapped line), break junit.xml (characters
XML 1.0 forbids) or render as HTML, links or images in summary.md. A gate whose rows are missing
reads "no data". Everything runs through the real CLI on planted scenarios (the scripted engine).
"""

from __future__ import annotations

import html
import io
import string
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

from harness.cli import main
from harness.core.console import SafeConsole, SafeTable, inert
from harness.report.ci import github_annotations, junit_xml, md_text, summary_md
from support.scenarios import PROMPT, TICKET, Project, answer, tickets

INJECTED = "a\n::error title=INJECTED::pwned"
# a command after enough text that rich wraps the line before it: a wrapped line starts with it
WRAPPED = "w" * 158 + " ::warning title=WRAPPED::pwned " + "z" * 40
HOSTILE_CASE = "t\x1b[31mRED\x1b[0m\r\n::error::from-a-case\x07\u2028\u202e"
XML_FORBIDDEN = (
    "".join(map(chr, [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])) + "\ufffe\uffff"
)
MARKUP = "[/x]evil[bold red]"
HTML_NAMES = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[link](http://x.example)",
    "![img](http://x.example/i.png)",
    "<details><summary>s</summary>d</details>",
    "*em* _u_ `code` | pipe",
    "# heading",
    "- item",
    "1. item",
    "> quote",
    "&lt;b&gt;",
    "www.example.com",
    "@org/team :+1: $x^2$",
    "<https://x.example>",
    "back\\slash\\",
    "[x]: http://x.example",
]


def hostile_project(
    project: Project,
    candidate: str,
    metric: str,
    case_ids: list[str],
    lora: dict[str, Any],
    name: str = "scenario",
    **rule: Any,
) -> None:
    """One suite of six ticket cases (the first ids replaced by `case_ids`) scored by json_valid
    under the name `metric`, a prompt baseline answering the reference and a lora candidate called
    `candidate` answering by the script rule `lora`, one gate on it (`rule`, default min 0.5)."""
    script = [{**lora, "model": candidate}, answer(TICKET)]
    cases = tickets(6)
    for case, case_id in zip(cases, case_ids):
        case["id"] = case_id
    project.suite("tickets", [{"type": "json_valid", "name": metric}], cases)
    lora = {"name": candidate, "kind": "lora", "adapter": "adapter"}
    gate = {"candidate": candidate, "suite": "tickets", "metric": metric, **(rule or {"min": 0.5})}
    project.config([PROMPT, lora], [gate], script, name=name)


def run_under_actions(
    project: Project, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> tuple[int, dict, str, str]:
    """(exit code, results.json, stdout, stderr) of `harness compare` as GitHub Actions runs it."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project.root / "step-summary.md"))
    code, results = project.run()
    captured = capfd.readouterr()
    assert results is not None
    return code, results, captured.out, captured.err


def assert_inert(out: str, err: str, results: dict | None) -> None:
    """No line of stdout or stderr is a workflow command (after GitHub's trim of leading blanks) but
    the harness's own annotations of `results`, exactly as it formats them; no ESC, CR or bidi
    override reaches either."""
    own = set(github_annotations(results)) if results else set()
    assert own <= set(out.splitlines())
    for stream in (out, err):
        commands = [line for line in stream.splitlines() if line.lstrip().startswith(("::", "##"))]
        assert set(commands) <= own, commands
        for char in "\x1b\r\x07\u2028\u202e":
            assert char not in stream, (char, stream)


def test_a_workflow_command_in_names_and_case_ids_never_starts_a_line(
    project: Project, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Regressed cases are named by the gate; the candidate's name is in the DO NOT SHIP line, the
    gate table, the progress lines and the logs; the wrapped name is longer than a log line."""
    ids = [f"{HOSTILE_CASE}{i}" for i in range(3)]
    hostile_project(project, INJECTED, WRAPPED, ids, answer("no JSON"), name=INJECTED, max_drop=0.1)
    code, results, out, err = run_under_actions(project, monkeypatch, capfd)
    assert code == 1 and results["verdict"]["decision"] == "do_not_ship"
    assert_inert(out, err, results)
    assert (
        "DO NOT SHIP: a\\n::error title=INJECTED::pwned / tickets / " in out
    )  # shown, escaped, on its line
    assert "generate model (bare, a\\n::error title=INJECTED::pwned)" in err
    assert "\\x3a:warning title=WRAPPED::pwned" in out  # the wrapped line, its command disarmed
    assert main(["runs", "--store", str(project.store)]) == 0  # the run's name, from the store
    listed = capfd.readouterr()
    assert "a\\n::error" in listed.out
    assert_inert(listed.out, listed.err, None)


def test_a_case_id_with_escapes_in_a_gate_with_missing_rows_reaches_no_output_raw(
    project: Project, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The ERROR reason lists the missing case ids: in the table, the log, the annotations and the
    files."""
    ids = [f"{HOSTILE_CASE}{i}" for i in range(2)]
    hostile_project(
        project,
        INJECTED,
        "json_valid",
        ids,
        {"contains": "Ticket 00:", "error": "HTTP 500\n::error::from-the-engine"},
    )
    code, results, out, err = run_under_actions(project, monkeypatch, capfd)
    assert code == 2 and "have no value" in results["verdict"]["gates"][0]["reason"]
    assert_inert(out, err, results)
    assert (
        "(t\\x1b[31mRED\\x1b[0m%0D%0A::error::from-a-case\\x07\\u2028\\u202e0)" in out
    )  # its annotation


def test_rich_markup_in_a_name_is_printed_literally_and_the_run_publishes(
    project: Project, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`[/x]` used to raise MarkupError after SHIP (exit 2, nothing published); `[green]` was styled
    away."""
    hostile_project(
        project,
        f"{MARKUP} :smile:",
        "[green]x",
        ["[red]case[/red]"],
        answer(TICKET),
        name="[bold]cfg",
    )
    code, results, out, err = run_under_actions(project, monkeypatch, capfd)
    assert code == 0 and results["verdict"]["decision"] == "ship"
    assert (
        f"{MARKUP} :smile: / tickets / [green]x >= 0.5" in out and "SHIP: all 1 gates pass" in out
    )
    assert ":smile:" in err  # no emoji code either
    assert any(
        line.startswith("::notice title=harness gate [/x]evil[bold red]")
        for line in out.splitlines()
    )
    summary = (project.root / "step-summary.md").read_text()
    assert "SHIP" in summary and "\\[/x\\]evil\\[bold red\\]" in summary


def test_problems_and_errors_on_stderr_are_inert(
    project: Project, capfd: pytest.CaptureFixture[str]
) -> None:
    """`harness check` lists problems quoting user names; a failed command prints its error: neither
    lets a name start a line or send an escape."""
    hostile_project(project, INJECTED, "json_valid", [], answer(TICKET))
    config = yaml.safe_load((project.root / "config.yaml").read_text())
    config["gates"].append(
        {
            "candidate": "nobody\n::error title=X::y\x1b[2J",
            "suite": "tickets\n##vso[task]",
            "metric": "json_valid",
            "min": 0.5,
        }
    )
    (project.root / "config.yaml").write_text(yaml.safe_dump(config))
    for command in ("check", "compare"):
        assert main([command, str(project.root / "config.yaml")]) == 2
        captured = capfd.readouterr()
        assert "nobody" in captured.err and "error:" in captured.err
        assert_inert(captured.out, captured.err, None)


def test_the_console_keeps_the_harness_styling_and_no_line_is_a_command() -> None:
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, force_terminal=True, width=100, highlight=False)
    table = SafeTable("name", "why")
    table.add_row(INJECTED, "[bold]x[/]")
    console.print(table)
    console.print("x" * 95 + " ::error::wrapped", style="bold red")
    console.log(HOSTILE_CASE)
    text = buffer.getvalue()
    assert "\x1b[1;31m" in text  # the harness's own style still reaches a terminal
    assert "[bold]x[/]" in text and "\\x1b[31mRED" in text and "\x1b[31mRED" not in text
    lines = [line for line in text.splitlines() if line]
    for line in lines:
        bare = line.replace("\x1b[0m", "").replace("\x1b[1;31m", "").lstrip()
        assert not bare.startswith("::"), line


def junit_results(text: str) -> dict[str, Any]:
    """A results dict with `text` in every field junit.xml writes."""
    gate = {
        "rule": f"rule {text}",
        "suite": f"suite {text}",
        "passed": False,
        "reason": f"reason {text}",
        "delta": -0.5,
        "ci_low": -0.7,
        "ci_high": -0.3,
        "p_value": 0.01,
        "test": f"test {text}",
        "baseline": f"base {text}",
        "mde_note": f"note {text}",
        "worst_regressions": [f"case {text}"],
        "missing": 0,
        "value": 0.5,
    }
    return {
        "run": {
            "name": f"name {text}",
            "id": f"id {text}",
            "config_hash": f"hash {text}",
            "created_at": f"at {text}",
        },
        "verdict": {
            "decision": "error",
            "reason": f"verdict {text}",
            "gates": [gate, {**gate, "passed": True}, {**gate, "missing": 3}],
        },
    }


def test_junit_is_well_formed_whatever_the_fields_carry() -> None:
    """Every character XML 1.0 forbids, lone surrogates included, in every field: a strict parser
    reads it."""
    text = XML_FORBIDDEN + "\ud800 \udfff \x85\x9b bidi\u202e"
    document = junit_xml(junit_results(text)).encode(
        "utf-8"
    )  # a lone surrogate could not even be encoded
    root = ET.fromstring(document)
    values = [
        root.get("name"),
        *(v for el in root.iter() for v in [*el.attrib.values(), el.text or ""]),
    ]
    assert "name \\x00\\x01" in root.get("name")
    for value in values:
        assert not set(value) & set(XML_FORBIDDEN + "\ud800\udfff\x1b"), value


def test_junit_from_a_run_with_an_escape_in_a_case_id_parses(
    project: Project, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    ids = [f"{HOSTILE_CASE}\x0b\x01{i}" for i in range(3)]
    hostile_project(
        project, "lora\x1b", "json_valid", ids, answer("no JSON"), name="cfg\x1b[2J", max_drop=0.1
    )
    code, results, _, _ = run_under_actions(project, monkeypatch, capfd)
    junit = (project.root / "reports" / results["run"]["id"] / "junit.xml").read_bytes()
    root = ET.fromstring(junit)
    assert code == 1 and root.get("failures") == "1" and "\\x1b" in root.get("name")
    assert "regressed most: t\\x1b[31mRED" in root.find("testcase/failure").text


def rendered(markdown: str) -> str:
    """summary.md as GitHub-flavoured Markdown renders it, raw HTML allowed (as GitHub allows some)."""
    return (
        MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)
    )


@pytest.mark.parametrize(
    "text", HTML_NAMES + [string.punctuation, "a_b __init__ _x_ a*b*c", INJECTED]
)
def test_md_text_renders_as_exactly_the_text(text: str) -> None:
    """In a paragraph and in a table cell, the rendered HTML is the (inert) text and nothing else."""
    shown = html.escape(inert(text), quote=False).replace('"', "&quot;")
    assert rendered(md_text(text)) == f"<p>{shown}</p>\n"
    table = rendered(f"| a | b |\n|---|---|\n| {md_text(text)} | x |\n")
    assert f"<td>{shown}</td>\n<td>x</td>" in table


def test_summary_md_renders_no_html_link_or_image_from_user_names(
    project: Project, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    name = " ".join(HTML_NAMES)
    hostile_project(
        project,
        HTML_NAMES[1] + HTML_NAMES[2],
        HTML_NAMES[3] + HTML_NAMES[4],
        ["c1"],
        answer("no"),
        name=name,
    )
    code, results, _, _ = run_under_actions(project, monkeypatch, capfd)
    assert code == 1
    summary = (project.root / "reports" / results["run"]["id"] / "summary.md").read_text()
    page = rendered(summary)
    for tag in (
        "<script",
        "<img",
        "<a ",
        "<details",
        "<summary",
        "<em",
        "<blockquote",
        "<li",
        "<h1",
    ):
        assert tag not in page, tag
    assert page.count("<code>") == 2  # the run id and the config hash
    assert html.escape(name) in page and page.count("<tr>") == 2  # the header and the one gate row
    assert (project.root / "step-summary.md").read_text().strip() == summary.strip()


def test_summary_md_heading_and_gate_rows_are_escaped_for_every_field() -> None:
    text = "<b>x</b> [l](http://x) ![i](http://y)\n| cell"
    results = junit_results(text)
    results["verdict"]["gates"][0]["rule"] = f"rule {text}"
    page = rendered(summary_md(results))
    assert (
        "<b>" not in page and "<a " not in page and "<img" not in page and page.count("<tr>") == 4
    )


def test_a_gate_with_missing_rows_reads_no_data_everywhere(
    project: Project, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """ERROR for a failed request: its gate was not decided, so it is not a FAIL (nor a junit
    failure)."""
    hostile_project(
        project, "lora", "json_valid", [], {"contains": "Ticket 00:", "error": "HTTP 500"}
    )
    code, results, out, _ = run_under_actions(project, monkeypatch, capfd)
    assert code == 2 and results["verdict"]["decision"] == "error"
    row = next(
        line for line in out.splitlines() if "lora / tickets / json_valid" in line and "│" in line
    )
    assert "no data" in row and "FAIL" not in row
    run_dir = project.root / "reports" / results["run"]["id"]
    assert "| _no data_ |" in (run_dir / "summary.md").read_text()
    assert "FAIL" not in (run_dir / "summary.md").read_text()
    root = ET.fromstring((run_dir / "junit.xml").read_bytes())
    assert root.get("failures") == "0" and root.get("skipped") == "1" and root.get("errors") == "1"
    assert (
        root.find("testcase/skipped").get("message").startswith("no data: incomplete: 1 of 6 rows")
    )
    annotations = [line for line in out.splitlines() if line.startswith("::")]
    assert (
        annotations[0].startswith("::warning title=harness gate lora / tickets / json_valid")
        and "::no data: incomplete" in annotations[0]
    )
    assert annotations[1].startswith("::error title=ERROR%3A NO VERDICT")


def test_results_json_keeps_the_names_as_they_are(
    project: Project, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Escaping is for what is shown: the data a tool reads keeps the exact names."""
    hostile_project(project, INJECTED, "json_valid", [HOSTILE_CASE], answer(TICKET))
    _, results, _, _ = run_under_actions(project, monkeypatch, capfd)
    assert results["verdict"]["gates"][0]["candidate"] == INJECTED
    assert HOSTILE_CASE in {case["case_id"] for case in results["cases"]}
