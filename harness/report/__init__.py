"""Reports are rendered from the store alone: results.json for tools, report.html for people.

Every file is rendered before any is written, and each is written to a temporary file in its folder
and then renamed over the old one: a reader (a CI step, a browser, a re-render running beside) sees
the whole old file or the whole new one, never half of either, and a failure while rendering leaves
the folder as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.core.textfiles import write_atomic
from harness.report.ci import junit_xml, summary_md
from harness.report.html import render_html
from harness.report.results import build_results
from harness.store.store import Store

FILES = {
    "results": "results.json",
    "html": "report.html",
    "junit": "junit.xml",
    "summary": "summary.md",
}


def report_paths(run_dir: Path) -> dict[str, Path]:
    return {kind: run_dir / name for kind, name in FILES.items()}


def render_reports(store: Store, run_id: str, finished_at: str | None = None) -> dict[str, str]:
    """Every report's text, keyed as FILES. `finished_at`: for a run that is finishing, the time the
    store will record once these files are all written (see runs.finish): the files say `finished`
    then, as the store will, and not `running`."""
    results = build_results(store, run_id)
    if finished_at is not None:
        results["run"].update(status="finished", finished_at=finished_at)
    return {
        "results": json.dumps(results, indent=2, ensure_ascii=False),
        "html": render_html(results),
        "junit": junit_xml(results),
        "summary": summary_md(results),
    }


def write_rendered(texts: dict[str, str], run_dir: Path) -> dict[str, Path]:
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = report_paths(run_dir)
    for kind, text in texts.items():
        write_atomic(paths[kind], text)
    return paths


def write_reports(
    store: Store, run_id: str, run_dir: Path, finished_at: str | None = None
) -> dict[str, Path]:
    return write_rendered(render_reports(store, run_id, finished_at), run_dir)
