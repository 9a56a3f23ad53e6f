"""A refactor or a speed-up changes no score: the demo, replayed on the answers it gave before, must
build the same requests and give exactly the same scores and verdict.

tests/golden/demo.json holds every answer `harness compare configs/demo.yaml` cached on the
reference revision (named in the file), with its scores and verdict. Here those answers are put in a
fresh store's cache and the demo runs again on the scripted engine, whose only rule fails every
request: any request that is built differently misses the cache and shows up as a failed row, and
any scoring, statistics or gate change shows up as a different number. Regenerate the file only for
a change that is meant to move scores (and say so in the change).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from harness.cli import main
from harness.store.store import Store
from support.paths import TESTS

GOLDEN = TESTS / "golden" / "demo.json"
MISS = "not among the golden answers: this request is built differently than before"


@pytest.mark.slow
@pytest.mark.timeout(1200)  # trains the demo adapter (about 150 s) when the adapter cache is cold
def test_the_demo_gives_the_same_scores_and_verdict_on_the_same_answers(demo_copy: Path) -> None:
    golden = json.loads(GOLDEN.read_text())
    config = demo_copy / "configs" / "demo.yaml"
    text = config.read_text()
    assert "\nengine: vllm\n" in text
    replay = f"\nengine: {{kind: scripted, script: [{{error: '{MISS}'}}]}}\n"
    config.write_text(text.replace("\nengine: vllm\n", replay))
    store_path = demo_copy / "reports" / "harness.sqlite"
    Store(store_path).close()
    with sqlite3.connect(store_path) as db:
        db.executemany(
            "INSERT INTO cache VALUES (?, ?, ?, '')",
            [(e["key"], e["fingerprint"], json.dumps(e["completion"])) for e in golden["cache"]],
        )

    code = main(["compare", str(config)])

    with sqlite3.connect(store_path) as db:
        run_id, verdict = db.execute("SELECT run_id, verdict_json FROM runs").fetchone()
        missed = db.execute(
            "SELECT candidate, suite, case_id FROM responses WHERE error IS NOT NULL"
        ).fetchall()
        scores = {
            f"{c}|{s}|{i}|{m}": [v, p]
            for c, s, i, m, v, p in db.execute(
                "SELECT candidate, suite, case_id, metric, value, passed FROM scores WHERE"
                " run_id = ?",
                (run_id,),
            )
        }
    assert not missed, (
        f"{len(missed)} requests are built differently than before, e.g. {missed[:5]}"
    )
    changed = sorted(
        k
        for k in golden["scores"].keys() | scores.keys()
        if golden["scores"].get(k) != scores.get(k)
    )
    assert not changed, f"{len(changed)} scores changed, e.g. " + "; ".join(
        f"{k}: {golden['scores'].get(k)} -> {scores.get(k)}" for k in changed[:5]
    )
    verdict = json.loads(verdict)
    assert code == {"ship": 0, "do_not_ship": 1}[golden["verdict"]["decision"]]
    assert (
        verdict["decision"] == golden["verdict"]["decision"]
        and verdict["reason"] == golden["verdict"]["reason"]
    )
    keys = golden["verdict"]["gates"][0].keys()
    assert [{k: g[k] for k in keys} for g in verdict["gates"]] == golden["verdict"]["gates"]
    settled_on_the_same_answers(config, store_path, golden)


def settled_on_the_same_answers(config: Path, store_path: Path, golden: dict) -> None:
    """The demo settled (--stop-when-settled) on the same answers: every case it runs is among them,
    its scores are theirs, and its verdict the full run's, on fewer requests."""
    code = main(["compare", str(config), "--stop-when-settled"])
    with sqlite3.connect(store_path) as db:
        run_id, verdict = db.execute(
            "SELECT run_id, verdict_json FROM runs ORDER BY created_at DESC"
        ).fetchone()
        missed = db.execute(
            "SELECT COUNT(*) FROM responses WHERE run_id = ? AND error IS NOT NULL", (run_id,)
        ).fetchone()[0]
        scores = {
            f"{c}|{s}|{i}|{m}": [v, p]
            for c, s, i, m, v, p in db.execute(
                "SELECT candidate, suite, case_id, metric, value, passed FROM scores WHERE"
                " run_id = ?",
                (run_id,),
            )
        }
    verdict = json.loads(verdict)
    assert not missed and all(golden["scores"].get(k) == v for k, v in scores.items())
    assert verdict["decision"] == golden["verdict"]["decision"]
    assert code == {"ship": 0, "do_not_ship": 1}[golden["verdict"]["decision"]]
    assert verdict["settle"]["requests"] < verdict["settle"]["requests_full"]
