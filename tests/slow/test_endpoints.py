"""Endpoint candidates and drift, with the real local vLLM server playing the production endpoint."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.models import ModelRef
from harness.core.request import Request
from harness.serving.anthropic_client import AnthropicEngine
from harness.serving.openai_client import OpenAIEngine
from harness.serving.settings import VllmConfig
from harness.serving.vllm_server import managed_server
from support.helpers import FaultProxy, responses_stored

pytestmark = pytest.mark.slow
HARNESS = [str(Path(sys.executable).parent / "harness")]
SECRET = "sk-test-d0-not-leak-7c1e"


def endpoint_config(
    folder: Path, base_url: str, model: str, *, extra: str = "", gates: str | None = None
) -> Path:
    gates = gates or "  - {candidate: prod, suite: tickets, metric: json_valid, min: 0.0}\n"
    path = folder / "configs" / "prod.yaml"
    path.write_text(
        "name: prod-drift\n"
        "candidates:\n"
        "  - name: prod\n"
        "    kind: endpoint\n"
        f"    base_url: {base_url}\n"
        f"    model: {model}\n"
        "    api_key_env: HARNESS_TEST_KEY\n"
        "    max_retries: 1\n"
        "    request_timeout_s: 300\n"
        f"{extra}"
        "suites: [../suites/tickets]\n"
        "gates:\n" + gates + "output_dir: ../reports\n"
    )
    return path


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_TEST_KEY": SECRET}
    return subprocess.run(
        [*HARNESS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


def test_pin_then_drift_with_history(demo_copy: Path, vllm_url: str, model: ModelRef) -> None:
    cases = (
        demo_copy / "suites" / "tickets" / "cases.jsonl"
    )  # 8 of its cases: three runs ask them all (no cache)
    cases.write_text("".join(line + "\n" for line in cases.read_text().splitlines()[:8]))
    config = endpoint_config(
        demo_copy,
        vllm_url,
        model.name,
        extra="",
        gates=(
            "  - {candidate: prod, suite: tickets, metric: json_valid, max_drop: 0.05}\n"
            "  - {candidate: prod, suite: tickets, metric: json_valid, min: 0.0}\n"
        ),
    ).read_text()
    first = demo_copy / "configs" / "first.yaml"
    first.write_text(config.replace("max_drop: 0.05", "min: 0.0"))  # the baseline run needs no pin
    store = str(demo_copy / "reports" / "harness.sqlite")
    done = harness("compare", "configs/first.yaml", cwd=demo_copy)
    assert done.returncode == 0, done.stderr
    baseline_run = json.loads(next((demo_copy / "reports").glob("*/results.json")).read_text())[
        "run"
    ]["id"]

    drift = demo_copy / "configs" / "prod.yaml"
    drift.write_text(config + "drift: {baseline: prod-v1}\n")
    missing = harness("drift", "configs/prod.yaml", cwd=demo_copy)
    assert missing.returncode == 2 and "no run or pin named 'prod-v1'" in missing.stderr
    assert (
        harness("pin", baseline_run, "--as", "prod-v1", "--store", store, cwd=demo_copy).returncode
        == 0
    )
    for _ in range(2):
        checked = harness("drift", "configs/prod.yaml", cwd=demo_copy)
        assert checked.returncode == 0, (
            checked.stdout + checked.stderr
        )  # same model, same answers: no drift
    listed = harness("runs", "--store", store, cwd=demo_copy)
    assert listed.returncode == 0 and baseline_run in listed.stdout
    with sqlite3.connect(store) as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM runs ORDER BY created_at")]
    assert kinds == ["compare", "drift", "drift"]
    latest = sorted((demo_copy / "reports").glob("*/results.json"))[-1]
    results = json.loads(latest.read_text())
    gate = results["verdict"]["gates"][0]
    assert gate["baseline"] == "prod (pinned run)" and gate["delta"] == 0.0 and gate["passed"]
    history = results["history"]
    assert {h["run_id"] for h in history} >= {baseline_run} and sum(
        h["pinned"] for h in history
    ) >= 1
    assert len({h["run_id"] for h in history}) == 3
    html = (latest.parent / "report.html").read_text()
    assert "History" in html and "pinned" in html
    # the key is read from the environment, written nowhere
    for path in (demo_copy / "reports").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_retries_429_and_5xx_then_succeeds(vllm_url: str, model: ModelRef) -> None:
    with FaultProxy(vllm_url.removesuffix("/v1"), faults=[429, 503, 502]) as proxy:
        engine = OpenAIEngine(
            proxy.url + "/v1", SECRET, max_concurrency=1, timeout_s=60, max_retries=4
        )
        request = Request(model.name, (("user", "Say hi."),), 8, 0.0, 1.0, (), 0)
        [(_, completion)] = list(engine.run([request]))
    assert completion.error is None and completion.text
    assert proxy.statuses == [429, 503, 502, 200]


def test_final_failure_is_an_error_row_without_the_key(vllm_url: str, model: ModelRef) -> None:
    with FaultProxy(vllm_url.removesuffix("/v1"), faults=[500] * 10) as proxy:
        engine = OpenAIEngine(
            proxy.url + "/v1", SECRET, max_concurrency=1, timeout_s=30, max_retries=1
        )
        [(_, completion)] = list(
            engine.run([Request(model.name, (("user", "hi"),), 4, 0.0, 1.0, (), 0)])
        )
    assert completion.error.startswith("InternalServerError 500") and SECRET not in completion.error
    assert proxy.statuses == [500, 500]


def test_requests_per_minute_paces_request_starts(vllm_url: str, model: ModelRef) -> None:
    with FaultProxy(vllm_url.removesuffix("/v1")) as proxy:
        engine = OpenAIEngine(
            proxy.url + "/v1",
            "x",
            max_concurrency=4,
            timeout_s=60,
            max_retries=0,
            requests_per_minute=240,
        )  # one start every 0.25 s
        requests = [
            Request(model.name, (("user", f"Count to {i}."),), 4, 0.0, 1.0, (), 0) for i in range(5)
        ]
        assert all(c.error is None for _, c in engine.run(requests))
    # starts are paced 0.25 s apart, so five of them span at least 1 s (minus scheduling slack); a
    # lower bound on waiting, never a speed claim
    assert len(proxy.arrivals) == 5 and proxy.arrivals[-1] - proxy.arrivals[0] >= 0.9


def test_anthropic_protocol_against_vllm_messages_api(vllm_url: str, model: ModelRef) -> None:
    engine = AnthropicEngine(
        vllm_url.removesuffix("/v1"), "x", max_concurrency=2, timeout_s=60, max_retries=1
    )
    requests = [
        Request(
            model.name,
            (("system", "Answer in one word."), ("user", "What is the capital of France?")),
            16,
            0.0,
            1.0,
            (),
            0,
        )
    ]
    [(_, completion)] = list(engine.run(requests))
    assert completion.error is None and "paris" in completion.text.lower()
    assert completion.prompt_tokens > 0 and completion.completion_tokens > 0


def test_endpoint_stopped_mid_run_gives_error_rows_not_a_crash(
    demo_copy: Path, model: ModelRef, tmp_path: Path
) -> None:
    with managed_server(model, tmp_path / "prod", VllmConfig(), seed=0) as url:
        config = endpoint_config(demo_copy, url, model.name, extra="    max_concurrency: 1\n")
        proc = subprocess.Popen(
            [*HARNESS, "compare", str(config)],
            cwd=demo_copy,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HARNESS_TEST_KEY": SECRET},
        )
        store = demo_copy / "reports" / "harness.sqlite"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if responses_stored(store) >= 3:
                break
            time.sleep(0.2)
        else:
            proc.kill()
            raise AssertionError("no responses within 300 s")
    # the server is gone now; the run must finish on its own with error rows
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 2, stdout + stderr
    assert "requests failed; no verdict on partial results" in stdout + stderr
    with sqlite3.connect(store) as db:
        answered, failed = db.execute(
            "SELECT sum(error IS NULL), sum(error IS NOT NULL) FROM responses"
        ).fetchone()
        errors = [
            r[0] for r in db.execute("SELECT DISTINCT error FROM responses WHERE error IS NOT NULL")
        ]
    assert answered >= 3 and failed >= 1 and answered + failed == 32
    assert all("APIConnectionError" in e for e in errors), errors
    assert "Traceback" not in stderr


def test_two_runs_write_one_store_at_once(demo_copy: Path, vllm_url: str, model: ModelRef) -> None:
    config = endpoint_config(demo_copy, vllm_url, model.name)
    procs = [
        subprocess.Popen(
            [*HARNESS, "compare", str(config)],
            cwd=demo_copy,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HARNESS_TEST_KEY": SECRET},
        )
        for _ in range(2)
    ]
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0, 0], [p.stderr.read() for p in procs]
    with sqlite3.connect(demo_copy / "reports" / "harness.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_run = db.execute("SELECT run_id, count(*) FROM responses GROUP BY run_id").fetchall()
        statuses = {r[0] for r in db.execute("SELECT status FROM runs")}
    assert [n for _, n in per_run] == [32, 32] and statuses == {"finished"}
