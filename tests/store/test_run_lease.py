"""One process at a time works on a run (issue 33, item 10): a second `--resume` of a run whose
first command still lives is refused with exit 2, naming the holder, and writes nothing; once the
first has ended, however it ended (SIGKILL too), the run may be resumed. On SQLite and on a shared
PostgreSQL, with real `harness` processes on the scripted engine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.store.lease import held, lock_file
from harness.store.location import Location, parse
from harness.store.store import Store
from support.postgres import Cluster
from support.scenarios import LORA, PROMPT, TICKET, Project, answer, tickets

HARNESS = [sys.executable, "-m", "harness.cli"]
CASES = 8
DELAY_S = 1.5  # per answer, one at a time: the first run lives ~24 s, long past the start of a second command


def test_a_held_run_is_refused_to_another_holder_until_it_is_let_go(where: Location) -> None:
    with Store(where) as first, Store(where) as second:
        with held(first, "run-1"):
            with pytest.raises(HarnessError) as refused, held(second, "run-1"):
                pass
            with held(second, "run-2"):  # another run is free
                pass
        with held(second, "run-1"):
            pass
    said = str(refused.value)
    assert said.startswith(
        f"run run-1 is in use by pid {os.getpid()} on {socket.gethostname()} since "
    ), said
    assert f", in {where.shown}\n  fix: wait for it to end" in said, said
    if where.path is not None:
        assert not lock_file(where.path, "run-1").exists()  # nothing is left beside the store


def _harness(*args: str, url: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*HARNESS, *args],
        cwd=cwd,
        env={**os.environ, "HARNESS_STORE": url},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _ended(process: subprocess.Popen[str], timeout_s: float = 300) -> tuple[int, str]:
    out, err = process.communicate(timeout=timeout_s)
    return process.returncode, " ".join((out + err).split())


def _answering(url: str, process: subprocess.Popen[str]) -> str:
    """The id of the run `process` works on, once it has stored an answer (so its build is
    recorded)."""
    deadline = time.monotonic() + 120
    with Store(parse(url, "test")) as store:
        while time.monotonic() < deadline and process.poll() is None:
            listed = store.runs()
            if len(listed) and len(store.table("responses", listed["run_id"].iloc[-1])):
                return listed["run_id"].iloc[-1]
            time.sleep(0.1)
    raise AssertionError(f"no answer stored: {_ended(process)}")


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_second_resume_waits_for_the_first_to_end_however_it_ends(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    if engine == "postgresql":
        cluster: Cluster = request.getfixturevalue("postgres")
        url = cluster.create_database("leased")
    else:
        url = str(tmp_path / "shared.sqlite")
    made = Project(tmp_path / "project")
    made.suite("tickets", ["json_valid"], tickets(CASES))
    made.config(
        [PROMPT, LORA],
        [{"candidate": "lora", "suite": "tickets", "metric": "json_valid", "min": 0.9}],
        [],
        engine={
            "kind": "scripted",
            "script": [answer(TICKET, delay_s=DELAY_S)],
            "max_concurrency": 1,
        },
    )
    first = _harness("compare", "config.yaml", url=url, cwd=made.root)
    run_id = _answering(url, first)
    with Store(parse(url, "test")) as store:
        before = store.run(run_id), len(store.runs())

    code, said = _ended(
        _harness("compare", "config.yaml", "--resume", run_id, url=url, cwd=made.root)
    )
    assert first.poll() is None, (
        "the first run ended before the second was refused: the test proves nothing"
    )
    assert code == 2, said
    assert f"run {run_id} is in use by pid {first.pid} on {socket.gethostname()} since " in said, (
        said
    )
    assert "fix: wait for it to end" in said and "resuming" not in said, said
    with Store(parse(url, "test")) as store:
        assert (store.run(run_id), len(store.runs())) == before  # the refused one wrote nothing

    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    resumed = _harness("compare", "config.yaml", "--resume", run_id, url=url, cwd=made.root)
    code, said = _ended(resumed)
    assert code == 0 and f"resuming {run_id}" in said, said
    code, said = _ended(
        _harness("compare", "config.yaml", "--resume", run_id, url=url, cwd=made.root)
    )
    assert code == 0 and f"resuming {run_id}: {2 * CASES} answers already stored" in said, said
    with Store(parse(url, "test")) as store:
        assert (
            store.run(run_id)["status"] == "finished"
            and len(store.table("responses", run_id)) == 2 * CASES
        )
