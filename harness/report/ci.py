"""Formats CI systems read: JUnit XML (one test per gate) and a Markdown summary (PR comment, step
summary).

Every name, id and reason in them is user data: each format gets its own escaping of all of it (XML
1.0's forbidden characters, Markdown and HTML, workflow-command encoding), and control characters
never pass. A gate whose rows are missing was not decided: it reads "no data" everywhere, not FAIL.
The significant regressions no gate covers follow the gates in each (a run stored before they were
checked has none).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any, Callable, Mapping

from harness.core.console import inert
from harness.verdict.gate import LABELS, regression_text, regressions_heading, ungated

PASS, FAIL, NO_DATA = "pass", "FAIL", "no data"


def gate_status(gate: Mapping[str, Any]) -> str:
    """pass, FAIL, or no data: a gate some of whose rows are absent or have no value decided nothing
    (the verdict is ERROR for it), and saying FAIL would claim the candidate was measured and fell
    short.
    """
    if gate.get("missing"):
        return NO_DATA
    return PASS if gate["passed"] else FAIL


def _key(regression: Mapping[str, Any]) -> str:
    return f"{regression['candidate']} / {regression['suite']} / {regression['metric']}"


def _xml(text: object) -> str:
    """Text XML 1.0 can hold: it forbids C0 controls but tab, LF and CR, lone surrogates and
    U+FFFE/U+FFFF, and a parser rejects the whole file for one of them; each is written as its
    escape (`\\x1b`), as are the C1 controls it discourages and the newlines of user text."""
    return inert(text)


def junit_xml(results: dict[str, Any]) -> str:
    """One testcase per gate: a failure when it failed, skipped ("no data") when its rows are
    missing, and an error testcase for a run that reached no verdict. An ungated regression that
    blocks (gate_policy fail) is a failed testcase too, so the failures agree with the exit code;
    one that warns is in the suite's system-err.
    """
    verdict = results["verdict"] or {
        "decision": "error",
        "reason": "the run did not finish",
        "gates": [],
    }
    gates = verdict["gates"]
    statuses = [gate_status(g) for g in gates]
    regressions = ungated(verdict)
    blocking = [r for r in regressions if r.get("blocks")]
    errored = 1 if verdict["decision"] == "error" else 0
    suite = ET.Element(
        "testsuite",
        name=_xml(f"harness gates: {results['run']['name']}"),
        tests=str(len(gates) + len(blocking) + errored),
        failures=str(statuses.count(FAIL) + len(blocking)),
        errors=str(errored),
        skipped=str(statuses.count(NO_DATA)),
        timestamp=_xml(results["run"]["created_at"] or ""),
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", verdict["decision"]),
        ("run_id", results["run"]["id"]),
        ("config_hash", results["run"]["config_hash"]),
    ):
        ET.SubElement(props, "property", name=name, value=_xml(value))
    for gate, status in zip(gates, statuses):
        case = ET.SubElement(
            suite, "testcase", classname=_xml(f"harness.{gate['suite']}"), name=_xml(gate["rule"])
        )
        evidence = _evidence(gate)
        if status == FAIL:
            ET.SubElement(case, "failure", message=_xml(gate["reason"])).text = evidence
        elif status == NO_DATA:
            ET.SubElement(
                case, "skipped", message=_xml(f"{NO_DATA}: {gate['reason']}")
            ).text = evidence
        else:
            ET.SubElement(case, "system-out").text = evidence
    for regression in blocking:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_xml(f"harness.{regression['suite']}"),
            name=_xml(f"no ungated regression: {_key(regression)}"),
        )
        ET.SubElement(case, "failure", message=_xml(regression_text(regression)))
    if errored:
        case = ET.SubElement(suite, "testcase", classname="harness.run", name="run completed")
        ET.SubElement(case, "error", message=_xml(verdict["reason"]))
    if regressions and not blocking:  # after the testcases, where the schema has it
        ET.SubElement(suite, "system-err").text = "\n".join(
            map(
                _xml, [regressions_heading(regressions)] + [regression_text(r) for r in regressions]
            )
        )
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _evidence(gate: dict) -> str:
    parts = [gate["reason"]]
    if gate.get("delta") is not None:
        parts.append(
            f"delta {gate['delta']:+.4f} CI [{gate['ci_low']:+.4f}, {gate['ci_high']:+.4f}] "
            f"p={gate['p_value']:.4g} ({gate['test']}) vs {gate['baseline']}"
        )
    if gate.get("mde_note"):
        parts.append(gate["mde_note"])
    if gate.get("worst_regressions"):
        parts.append("regressed most: " + ", ".join(map(str, gate["worst_regressions"])))
    return "\n".join(map(_xml, parts))


# what CommonMark and GitHub read as markup (emphasis, links, images, code, headings, lists, tables,
# strike, emoji, autolinks, mentions, math); `_` only where it can open or close emphasis, not
# inside a word
_MD_SPECIAL = re.compile(r"[\\`*{}\[\]()#+\-.!|~:@$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SHOWN = {PASS: "pass", FAIL: "**FAIL**", NO_DATA: "_no data_"}


def md_text(value: object) -> str:
    """User text that renders as exactly itself on one line of Markdown: control characters and
    newlines escaped, every Markdown special backslash-escaped, and `&`, `<`, `>` as entities, so no
    tag, link, image or table cell can come out of a name or a reason."""
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(), inert(value))
    return re.sub("[&<>]", lambda m: _HTML[m.group()], text)


def summary_md(results: dict[str, Any]) -> str:
    verdict = results["verdict"] or {
        "decision": "error",
        "reason": "the run did not finish",
        "gates": [],
    }
    icon = {"ship": "✅", "do_not_ship": "❌", "error": "⚠️"}[verdict["decision"]]
    lines = [
        f"## {icon} {LABELS[verdict['decision']]}: {md_text(results['run']['name'])}",
        "",
        md_text(verdict["reason"]),
        "",
        "| gate | result | mean | Δ vs baseline [CI] | p |",
        "|---|---|---|---|---|",
    ]
    for g in verdict["gates"]:
        mean = "—" if g["value"] is None else f"{g['value']:.3f}"
        delta = (
            "—"
            if g.get("delta") is None
            else f"{g['delta']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]"
        )
        p = (
            "—"
            if g.get("p_value") is None
            else f"{g['p_value']:.3g} ({md_text(g.get('test') or 'test')})"
        )
        lines.append(
            f"| {md_text(g['rule'])} | {_SHOWN[gate_status(g)]} | {mean} | {delta} | {p} |"
        )
    lines += _settled_md(verdict)
    regressions = ungated(verdict)
    if regressions:
        lines += ["", f"⚠️ **{md_text(regressions_heading(regressions))}**", ""]
        lines += [f"- {md_text(regression_text(r))}" for r in regressions]
    lines += ["", f"run `{results['run']['id']}` · config `{results['run']['config_hash'][:12]}`"]
    return "\n".join(lines) + "\n"


def saved(made: int, full: int) -> float:
    """The share of a full run's `full` that making `made` saved."""
    return 1 - made / full if full else 0.0


def settled_line(settled: dict) -> str:
    """How many of its cases a gate needed, in the words the report and summary.md use."""
    cases, population = settled["cases"], settled["population"]
    if settled["decision"] is None:
        return (
            f"not settled after {cases} of {population} cases: the run stopped before (fail_fast,"
            " or a row without a value)"
        )
    return (
        f"decided after {cases} of {population} cases (wave {settled['wave']},"
        f" {settled['saved']:.0%} saved)"
    )


def _settled_md(verdict: Mapping[str, Any]) -> list[str]:
    """A settled run (--stop-when-settled): what it cost against the full run, and the cases each
    gate needed."""
    savings = verdict.get("settle")
    if not savings:
        return []
    made, full, waves = savings["requests"], savings["requests_full"], savings["wave"]
    lines = [
        "",
        (
            f"**Stopped when settled**: {made} of {full} requests ({saved(made, full):.0%} saved),"
            f" {savings['tokens']:,} tokens of an estimated {savings['tokens_full']:,} for the full"
            f" run, {waves} wave{'s' * (waves != 1)} of {savings['wave_cases']} cases"
        ),
        "",
    ]
    return lines + [
        f"- {md_text(g['rule'])}: {settled_line(g['settled'])}"
        for g in verdict["gates"]
        if g.get("settled")
    ]


def _escape(text: str, prop: bool = False) -> str:
    """GitHub's workflow-command escaping (its toolkit's escapeData / escapeProperty), then every
    other control character as its escape: an ESC would reach the log viewer and a terminal raw."""
    text = inert(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


_LEVELS = {PASS: "notice", FAIL: "error", NO_DATA: "warning"}


def github_annotations(results: dict[str, Any]) -> list[str]:
    """GitHub Actions workflow commands: `::error` per failed gate, `::notice` per passed one,
    `::warning` per gate with no data and per ungated regression (`::error` where it blocks), and an
    `::error` for a run that reached no verdict; each shows up on the run's summary page and in the
    log."""
    verdict = results["verdict"] or {
        "decision": "error",
        "reason": "the run did not finish",
        "gates": [],
    }
    lines = [
        f"::{_LEVELS[status]} title={_escape('harness gate ' + g['rule'], True)}::"
        f"{_escape(f'{status}: ' + g['reason'])}"
        for g, status in ((g, gate_status(g)) for g in verdict["gates"])
    ]
    lines += [
        f"::{'error' if r.get('blocks') else 'warning'} title="
        f"{_escape('harness ungated regression ' + _key(r), True)}::{_escape(regression_text(r))}"
        for r in ungated(verdict)
    ]
    if verdict["decision"] == "error":
        lines.append(
            f"::error title={_escape(LABELS['error'] + ' ' + results['run']['name'], True)}::"
            f"{_escape(verdict['reason'])}"
        )
    return lines


def publish_to_github(
    results: dict[str, Any],
    summary: str,
    env: Mapping[str, str],
    out: Callable[[str], None] = print,
) -> None:
    """Under GitHub Actions: the summary appended to the job's step summary (`GITHUB_STEP_SUMMARY`),
    and the gates printed as annotations. Elsewhere nothing (GitLab and Jenkins read junit.xml)."""
    target = env.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(summary + "\n")
    if env.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(results):
            out(line)
