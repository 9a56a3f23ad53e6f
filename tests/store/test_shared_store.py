"""One PostgreSQL store shared by several runners, as a team's CI shares it: concurrent compares, a
run killed with SIGKILL and resumed, the drift routine (pin, drift unchanged, drift degraded), and
the password in no output, report or log. The runners are real `harness` processes on the scripted
engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.store.location import parse
from harness.store.store import Store
from support.postgres import Cluster
from support.scenarios import LORA, PROMPT, TICKET, Project, answer, tickets

HARNESS = [sys.executable, "-m", "harness.cli"]
CASES = 12
METRICS = 2  # json_valid, exact_fields


def project(root: Path, delay_s: float, **extra: object) -> Project:
    made = Project(root)
    made.suite(
        "tickets", ["json_valid", {"type": "json_fields", "name": "exact_fields"}], tickets(CASES)
    )
    made.config(
        [PROMPT, LORA],
        [{"candidate": "lora", "suite": "tickets", "metric": "exact_fields", "max_drop": 0.1}],
        [answer(TICKET, delay_s=delay_s)],
        **extra,
    )
    return made


def harness(*args: str, url: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*HARNESS, *args],
        cwd=cwd,
        env={**os.environ, "HARNESS_STORE": url},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finished(process: subprocess.Popen[str], timeout_s: float = 300) -> tuple[int, str]:
    out, err = process.communicate(timeout=timeout_s)
    return process.returncode, out + err


def leaked(secret: str, outputs: list[str], folder: Path) -> list[str]:
    """Where the password shows: any output, or any file under `folder` (reports, logs, the store
    files)."""
    found = [f"output {i}" for i, text in enumerate(outputs) if secret in text]
    return found + [
        str(p) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()
    ]


@pytest.mark.parametrize("engine", ["postgresql", "sqlite"])
def test_four_runners_at_once_write_every_row_once_and_share_the_cache(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    """On PostgreSQL as several CI runners share it; on SQLite as several runs on one machine share
    the file."""
    postgres: Cluster = request.getfixturevalue("postgres")
    url = (
        postgres.create_database("four_runners")
        if engine == "postgresql"
        else str(tmp_path / "shared.sqlite")
    )
    made = project(tmp_path / "project", delay_s=0.02)
    runners = [
        harness("compare", "config.yaml", "--out", f"runner{i}", url=url, cwd=made.root)
        for i in range(4)
    ]
    results = [finished(r) for r in runners]
    assert [code for code, _ in results] == [0, 0, 0, 0], results
    with Store(parse(url, "test")) as store:
        runs = store.runs()
        assert (
            len(runs) == 4
            and set(runs["status"]) == {"finished"}
            and set(runs["decision"]) == {"ship"}
        )
        for run_id in runs["run_id"]:
            responses, scores = store.table("responses", run_id), store.table("scores", run_id)
            assert len(responses) == 2 * CASES and responses["error"].isna().all()
            assert len(scores) == 2 * CASES * METRICS
            assert not responses.duplicated(["candidate", "suite", "case_id"]).any()
        assert (
            store.conn.exec_driver_sql("SELECT count(*) FROM cache").scalar() == 2 * CASES
        )  # one row per answer
    code, fifth = finished(
        harness("compare", "config.yaml", "--out", "runner5", url=url, cwd=made.root)
    )
    assert code == 0, fifth
    with Store(parse(url, "test")) as store:
        newest = store.runs()["run_id"].iloc[-1]
        assert store.table("responses", newest)["cached"].tolist() == [1] * (2 * CASES)
        assert "engine_start" not in set(
            store.table("timings", newest)["stage"]
        )  # no engine was started
    assert leaked(postgres.password, [text for _, text in results] + [fifth], made.root) == []


def test_a_run_killed_mid_way_resumes_from_the_shared_store(
    tmp_path: Path, postgres: Cluster
) -> None:
    url = postgres.create_database("killed_runner")
    made = project(tmp_path / "project", delay_s=0.25)
    victim = harness("compare", "config.yaml", url=url, cwd=made.root)
    deadline = time.monotonic() + 120
    stored: list[tuple[str, str]] = []
    with Store(parse(url, "test")) as store:
        while time.monotonic() < deadline and len(stored) < 4:
            time.sleep(0.05)
            listed = store.runs()
            if len(listed):
                run_id = listed["run_id"].iloc[0]
                stored = store.table("responses", run_id)[["case_id", "created_at"]].values.tolist()
        os.kill(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=60)
        before = {
            tuple(r)
            for r in store.table("responses", run_id)[["candidate", "case_id", "created_at"]].values
        }
        assert 4 <= len(before) < 2 * CASES and store.run(run_id)["status"] == "running"
    code, output = finished(
        harness("compare", "config.yaml", "--resume", run_id, url=url, cwd=made.root)
    )
    assert code == 0, output
    with Store(parse(url, "test")) as store:
        assert store.run(run_id)["status"] == "finished"
        after = store.table("responses", run_id)
        assert len(after) == 2 * CASES and len(store.table("scores", run_id)) == 2 * CASES * METRICS
        assert before <= {
            tuple(r) for r in after[["candidate", "case_id", "created_at"]].values
        }  # kept, not redone
    assert f"resuming {run_id}: {len(before)} answers already stored" in " ".join(output.split())
    assert leaked(postgres.password, [output], made.root) == []


def test_drift_against_a_pin_in_the_shared_store(
    tmp_path: Path,
    postgres: Cluster,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The config names the store by the variable its URL is in; `pin` and `runs` find it through
    HARNESS_STORE. No SQLite file is made anywhere."""
    url = postgres.create_database("drift_routine")
    monkeypatch.setenv("TEAM_STORE_URL", url)
    monkeypatch.delenv("HARNESS_STORE", raising=False)
    made = project(tmp_path / "project", delay_s=0.0, store={"url_env": "TEAM_STORE_URL"})
    code, first = made.run()
    assert code == 0 and first is not None
    assert main(["pin", first["run"]["id"], "--as", "prod", "--store", "env:TEAM_STORE_URL"]) == 0
    config = yaml.safe_load((made.root / "config.yaml").read_text())
    config["drift"] = {"baseline": "prod"}
    (made.root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert made.run(command="drift")[0] == 0  # unchanged: no drift
    config["engine"]["script"] = [
        answer('{"category": "shipping", "priority": "low"}', model="lora"),
        answer(TICKET),
    ]
    (made.root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    code, degraded = made.run(
        "--no-cache", command="drift"
    )  # the scripted weights did not change: skip the cache
    assert code == 1 and degraded is not None and degraded["run"]["against"] == first["run"]["id"]
    monkeypatch.setenv("HARNESS_STORE", url)
    assert main(["runs"]) == 0
    assert (
        main(
            [
                "diff",
                first["run"]["id"],
                degraded["run"]["id"],
                "--out",
                str(tmp_path / "diff.html"),
            ]
        )
        == 0
    )
    assert main(["report", degraded["run"]["id"], "--out", str(tmp_path / "again")]) == 0
    shown = capsys.readouterr()
    assert (
        shown.out.count("finished") >= 3 and "postgresql://harness:***@127.0.0.1" not in shown.err
    )
    assert (tmp_path / "again" / "report.html").is_file() and not list(tmp_path.rglob("*.sqlite"))
    assert leaked(postgres.password, [shown.out, shown.err], tmp_path) == []
