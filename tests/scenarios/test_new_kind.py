"""A plugin adds a candidate kind, an engine and a scorer without forking:
tests/fixtures/harness_relay is a real package (pyproject.toml, entry points in harness.kinds,
harness.engines and harness.scorers), installed by pip into a scratch environment, and a whole
comparison runs with it there (planned, checked, generated, scored, gated, reported) with no harness
file edited. Offline: the scratch environment sees this one's packages through a .pth file, and pip
builds the plugin with the setuptools installed here."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from support.paths import FIXTURES
from support.scenarios import PROMPT, TICKET, Project, answer, tickets

PLUGIN = FIXTURES / "harness_relay"
RELAY = {"name": "relayed", "kind": "relay", "address": "relay://tickets", "model": "ticket-bot"}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh environment with the plugin installed (and this environment's packages
    visible)."""
    root = tmp_path_factory.mktemp("scratch")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120
    )
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # `import` lines of a .pth run at start-up: addsitedir reads this environment's own .pth files
    # (harness's too)
    here = sysconfig.get_path("purelib")
    (Path(purelib) / "outer.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    plugin = shutil.copytree(
        PLUGIN, root / "plugin"
    )  # setuptools builds in the package's folder: not in tests/
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-index",
            "--no-build-isolation",
            "--no-deps",
            str(plugin),
        ],
        check=True,
        timeout=300,
    )
    return python


def harness(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "harness.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_a_plugin_kind_engine_and_scorer_run_through_the_pipeline(
    project: Project, scratch: Path
) -> None:
    project.suite(
        "tickets",
        ["json_valid", {"type": "json_fields", "name": "exact_fields"}, "shouts"],
        tickets(12),
    )
    config = project.config(
        [PROMPT, RELAY],
        [
            {
                "candidate": "relayed",
                "suite": "tickets",
                "metric": "json_valid",
                "min_delta": 0.5,
                "significant": True,
            },
            {"candidate": "relayed", "suite": "tickets", "metric": "exact_fields", "min": 0.9},
            {"candidate": "relayed", "suite": "tickets", "metric": "shouts", "max": 0},
        ],
        [answer(TICKET, model="ticket-bot"), answer("Sure! The category is billing.")],
    )
    checked = harness(scratch, "check", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    done = harness(scratch, "compare", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(next((project.root / "reports").glob("*/results.json")).read_text())
    assert results["verdict"]["decision"] == "ship"
    with sqlite3.connect(project.store) as db:
        answers = db.execute("SELECT candidate, output FROM responses").fetchall()
        meta = json.loads(db.execute("SELECT meta_json FROM runs").fetchone()[0])
        shouts = db.execute("SELECT COUNT(*) FROM scores WHERE metric = 'shouts'").fetchone()[0]
    assert sorted({text for who, text in answers if who == "relayed"}) == [TICKET]
    assert shouts == 24  # the plugin's scorer, on each case of both candidates
    assert meta["endpoints"] == {
        "relayed": {"protocol": "relay", "base_url": "relay://tickets", "model": "ticket-bot"}
    }


def test_a_log_likelihood_gate_on_the_plugin_kind_is_refused_at_plan_time(
    project: Project, scratch: Path
) -> None:
    """What the kind declares it cannot do (log-likelihood probes) is checked before any model
    starts."""
    project.suite("facts", ["perplexity"], [{"id": "f1", "text": "The sky is blue."}])
    relay = {**RELAY, "address": "relay://facts", "model": "fact-bot"}
    config = project.config(
        [PROMPT, relay],
        [{"candidate": "relayed", "suite": "facts", "metric": "perplexity", "max": 50}],
        [answer("x")],
    )
    done = harness(scratch, "check", str(config))
    assert done.returncode == 2 and "impossible gate" in done.stderr + done.stdout, (
        done.stdout + done.stderr
    )


def test_without_the_plugin_its_kind_is_unknown_and_the_error_lists_the_kinds(
    project: Project, scratch: Path
) -> None:
    """Where the plugin is not installed, `kind: relay` is refused with the kinds there are; where
    it is, the list an unknown kind gets names the plugin's too."""
    project.suite("tickets", ["json_valid"], tickets(2))
    config = project.config(
        [PROMPT, {**RELAY, "kind": "relai"}],
        [{"candidate": "relayed", "suite": "tickets", "metric": "json_valid", "min": 0}],
        [answer(TICKET)],
    )
    there = harness(scratch, "check", str(config))
    assert there.returncode == 2 and "'relay'" in there.stdout + there.stderr, (
        there.stdout + there.stderr
    )
    here = harness(Path(sys.executable), "check", str(config))
    assert here.returncode == 2 and "'prompt'" in here.stdout + here.stderr
    assert "'relay'" not in here.stdout + here.stderr
