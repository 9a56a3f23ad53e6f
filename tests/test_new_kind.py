"""A new candidate kind is one file: tests/relay_kind.py adds a remote kind on a protocol that is neither OpenAI nor
Anthropic, and its engine, and a whole comparison runs with it (planned, checked, generated, scored, gated,
reported) with no harness file edited."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from scenarios import PROMPT, TICKET, Project, answer, tickets

TESTS = Path(__file__).resolve().parent
RUN = "import sys, relay_kind; from harness.cli import main; sys.exit(main(sys.argv[1:]))"


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line, in a process that imported tests/relay_kind.py first."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    return subprocess.run([sys.executable, "-c", RUN, *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_remote_kind_defined_outside_the_harness_runs_through_the_pipeline(project: Project) -> None:
    project.suite("tickets", ["json_valid", {"type": "json_fields", "name": "exact_fields"}], tickets(12))
    relay = {"name": "relayed", "kind": "relay", "address": "relay://tickets", "model": "ticket-bot"}
    config = project.config(
        [PROMPT, relay],
        [{"candidate": "relayed", "suite": "tickets", "metric": "json_valid", "min_delta": 0.5, "significant": True},
         {"candidate": "relayed", "suite": "tickets", "metric": "exact_fields", "min": 0.9}],
        [answer(TICKET, model="ticket-bot"), answer("Sure! The category is billing.")])
    done = harness("compare", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(next((project.root / "reports").glob("*/results.json")).read_text())
    assert results["verdict"]["decision"] == "ship"
    with sqlite3.connect(project.store) as db:
        answers = db.execute("SELECT candidate, output FROM responses").fetchall()
        meta = json.loads(db.execute("SELECT meta_json FROM runs").fetchone()[0])
    assert sorted({text for who, text in answers if who == "relayed"}) == [TICKET]
    assert meta["endpoints"] == {"relayed": {"protocol": "relay", "base_url": "relay://tickets",
                                             "model": "ticket-bot"}}


def test_a_log_likelihood_gate_on_the_remote_kind_is_refused_at_plan_time(project: Project) -> None:
    """What the kind declares it cannot do (log-likelihood probes) is checked before any model starts."""
    project.suite("facts", ["perplexity"], [{"id": "f1", "text": "The sky is blue."}])
    relay = {"name": "relayed", "kind": "relay", "address": "relay://facts", "model": "fact-bot"}
    config = project.config([PROMPT, relay], [{"candidate": "relayed", "suite": "facts", "metric": "perplexity",
                                               "max": 50}], [answer("x")])
    done = harness("check", str(config))
    assert done.returncode == 2 and "impossible gate" in done.stderr + done.stdout, done.stdout + done.stderr
