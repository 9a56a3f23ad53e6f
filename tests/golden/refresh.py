"""Write tests/golden/demo.json from a finished `harness compare configs/demo.yaml` run: every
answer its store cached (generation, probes, judge and calibration answers), and the scores and
verdict it gave.

Run the demo into a fresh folder first, so that its store holds this run's answers only:

    .venv/bin/harness compare configs/demo.yaml --out /tmp/golden --no-cache
    .venv/bin/python tests/golden/refresh.py /tmp/golden/harness.sqlite "why the scores moved"

Only for a change that is meant to move scores (say which in the change);
tests/scenarios/test_golden.py then demands that every later change reproduces them exactly.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "demo.json"
GATE_KEYS = ("rule", "passed", "value", "n", "delta", "ci_low", "ci_high", "p_value", "test")


def main(store: str, why: str) -> None:
    with sqlite3.connect(store) as db:
        [(run_id, verdict)] = db.execute(
            "SELECT run_id, verdict_json FROM runs WHERE name = 'demo' AND status = 'finished'"
        ).fetchall()
        cache = [
            {"key": k, "fingerprint": f, "completion": json.loads(c)}
            for k, f, c in db.execute(
                "SELECT key, model_fingerprint, completion_json FROM cache ORDER BY key"
            )
        ]
        scores = {
            f"{c}|{s}|{i}|{m}": [v, p]
            for c, s, i, m, v, p in db.execute(
                "SELECT candidate, suite, case_id, metric, value, passed FROM scores WHERE run_id ="
                " ? ORDER BY candidate, suite, case_id, metric",
                (run_id,),
            )
        }
    verdict = json.loads(verdict)
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    GOLDEN.write_text(
        json.dumps(
            {
                "about": (
                    f"harness compare configs/demo.yaml on top of {revision} ({why}): every answer"
                    " it cached, and the scores and verdict it gave."
                    " tests/scenarios/test_golden.py replays the answers and demands the same."
                ),
                "cache": cache,
                "run_id": run_id,
                "scores": scores,
                "verdict": {
                    "decision": verdict["decision"],
                    "reason": verdict["reason"],
                    "gates": [{k: g[k] for k in GATE_KEYS} for g in verdict["gates"]],
                },
            },
            indent=0,
            sort_keys=True,
        )
        + "\n"
    )
    print(
        f"{GOLDEN}: {len(cache)} cached answers, {len(scores)} scores, verdict"
        f" {verdict['decision']}"
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
