"""Formats CI systems read: JUnit XML (one test per gate) and a Markdown summary (PR comment, step summary)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Callable, Mapping

from harness.gate import LABELS


def junit_xml(results: dict[str, Any]) -> str:
    verdict = results["verdict"] or {"decision": "error", "reason": "the run did not finish", "gates": []}
    gates = verdict["gates"]
    failed = sum(not g["passed"] for g in gates)
    errored = 1 if verdict["decision"] == "error" else 0
    suite = ET.Element("testsuite", name=f"harness gates: {results['run']['name']}", tests=str(len(gates) + errored),
                       failures=str(failed), errors=str(errored), timestamp=results["run"]["created_at"] or "")
    props = ET.SubElement(suite, "properties")
    for name, value in (("verdict", verdict["decision"]), ("run_id", results["run"]["id"]),
                        ("config_hash", results["run"]["config_hash"])):
        ET.SubElement(props, "property", name=name, value=str(value))
    for gate in gates:
        case = ET.SubElement(suite, "testcase", classname=f"harness.{gate['suite']}", name=gate["rule"])
        if not gate["passed"]:
            ET.SubElement(case, "failure", message=gate["reason"]).text = _evidence(gate)
        else:
            ET.SubElement(case, "system-out").text = _evidence(gate)
    if errored:
        case = ET.SubElement(suite, "testcase", classname="harness.run", name="run completed")
        ET.SubElement(case, "error", message=verdict["reason"])
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _evidence(gate: dict) -> str:
    parts = [gate["reason"]]
    if gate.get("delta") is not None:
        parts.append(f"delta {gate['delta']:+.4f} CI [{gate['ci_low']:+.4f}, {gate['ci_high']:+.4f}] "
                     f"p={gate['p_value']:.4g} ({gate['test']}) vs {gate['baseline']}")
    if gate.get("mde_note"):
        parts.append(gate["mde_note"])
    if gate.get("worst_regressions"):
        parts.append("regressed most: " + ", ".join(map(str, gate["worst_regressions"])))
    return "\n".join(parts)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_md(results: dict[str, Any]) -> str:
    verdict = results["verdict"] or {"decision": "error", "reason": "the run did not finish", "gates": []}
    icon = {"ship": "✅", "do_not_ship": "❌", "error": "⚠️"}[verdict["decision"]]
    lines = [f"## {icon} {LABELS[verdict['decision']]}: {_cell(results['run']['name'])}", "",
             _cell(verdict["reason"]), "", "| gate | result | mean | Δ vs baseline [CI] | p |", "|---|---|---|---|---|"]
    for g in verdict["gates"]:
        mean = "—" if g["value"] is None else f"{g['value']:.3f}"
        delta = "—" if g.get("delta") is None else f"{g['delta']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]"
        p = "—" if g.get("p_value") is None else f"{g['p_value']:.3g} ({g.get('test') or 'test'})"
        lines.append(f"| {_cell(g['rule'])} | {'pass' if g['passed'] else '**FAIL**'} | {mean} | {delta} | {p} |")
    lines += ["", f"run `{results['run']['id']}` · config `{results['run']['config_hash'][:12]}`"]
    return "\n".join(lines) + "\n"


def _escape(text: str, prop: bool = False) -> str:
    """GitHub's workflow-command escaping (its toolkit's escapeData / escapeProperty)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def github_annotations(results: dict[str, Any]) -> list[str]:
    """GitHub Actions workflow commands: `::error` per failed gate, `::notice` per passed one, and an `::error` for
    a run that reached no verdict; each shows up on the run's summary page and in the log."""
    verdict = results["verdict"] or {"decision": "error", "reason": "the run did not finish", "gates": []}
    lines = [f"::{'notice' if g['passed'] else 'error'} title={_escape('harness gate ' + g['rule'], True)}::"
             f"{_escape(('pass: ' if g['passed'] else 'FAIL: ') + g['reason'])}" for g in verdict["gates"]]
    if verdict["decision"] == "error":
        lines.append(f"::error title={_escape(LABELS['error'] + ' ' + results['run']['name'], True)}::"
                     f"{_escape(verdict['reason'])}")
    return lines


def publish_to_github(results: dict[str, Any], summary: str, env: Mapping[str, str],
                      out: Callable[[str], None] = print) -> None:
    """Under GitHub Actions: the summary appended to the job's step summary (`GITHUB_STEP_SUMMARY`), and the
    gates printed as annotations. Elsewhere nothing (GitLab and Jenkins read junit.xml)."""
    target = env.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(summary + "\n")
    if env.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(results):
            out(line)
