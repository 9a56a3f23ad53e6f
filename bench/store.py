"""The run store on each engine: what a team pays per answer for sharing one PostgreSQL store,
against the embedded SQLite file (the baseline) in the same run, and what `harness store copy` moves
per second.

Per answer, as generation writes it: one transaction with the response, two scores and the cache
row; then a cache hit per answer (a rerun with nothing changed), the per-run tables read back for
the gates, and a copy of the whole store to the other engine. PostgreSQL is a throwaway cluster on
this machine (tests/support/postgres.py), or the server `--url` names: over a network, each round
trip adds its latency.

    .venv/bin/python bench/store.py [--answers 2000] [--url postgresql://...]

`--smoke`: 50 answers, so the fast tests keep it working. Checks that both stores read back the same
rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness.core.request import Completion  # noqa: E402
from harness.store.copy import copy_store, counts  # noqa: E402
from harness.store.location import Location, parse, sqlite_file  # noqa: E402
from harness.store.store import Store  # noqa: E402
from support.postgres import Cluster  # noqa: E402 (tests/ is put on the path above)

ANSWER = Completion("a model's answer, about sixty words long. " * 6, 40, 60, 0.2, "stop")


def timed(store: Store, answers: int) -> dict[str, float]:
    """Seconds per answer written, per cache hit, and for reading the run's tables back."""
    store.begin_run("bench", "bench", "h", {}, {})
    started = time.perf_counter()
    for i in range(answers):
        with store.transaction():
            store.put_response("bench", "cand", "suite", f"c{i}", "{}", ANSWER, cached=False)
            store.put_score("bench", "cand", "suite", f"c{i}", "json_valid", 1.0, True, "valid")
            store.put_score("bench", "cand", "suite", f"c{i}", "rougeL", 0.5, None, "")
            store.cache_put(f"key{i}", "fp", ANSWER)
    write = (time.perf_counter() - started) / answers
    started = time.perf_counter()
    hits = sum(store.cache_get(f"key{i}") == ANSWER for i in range(answers))
    assert hits == answers, f"{hits} of {answers} cached answers read back"
    hit = (time.perf_counter() - started) / answers
    started = time.perf_counter()
    tables = {name: store.table(name, "bench") for name in ("responses", "scores")}
    read = time.perf_counter() - started
    assert len(tables["responses"]) == answers and len(tables["scores"]) == 2 * answers
    return {"write": write, "hit": hit, "read": read}


def measure(answers: int, server: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    engines: dict[str, Location] = {
        "sqlite (baseline)": sqlite_file(folder / "bench.sqlite"),
        "postgresql": parse(server, "--url"),
    }
    results = {}
    for name, where in engines.items():
        with Store(where) as store:
            results[name] = timed(store, answers)
    with (
        Store(engines["sqlite (baseline)"]) as source,
        Store(engines["postgresql"]) as shared,
        Store(sqlite_file(folder / "copy.sqlite")) as blank,
    ):
        started = time.perf_counter()
        copied = sum(
            copy_store(source, shared).rows.values()
        )  # the same keys the server has: every row an upsert
        to_server = time.perf_counter() - started
        started = time.perf_counter()
        copy_store(shared, blank)
        back = time.perf_counter() - started
        assert counts(blank) == counts(shared) == counts(source)
    base = results["sqlite (baseline)"]
    print(
        f"{answers} answers (a response, 2 scores and a cache row each, one transaction per"
        " answer)\n"
    )
    print(
        f"{'store':<20} {'write/answer':>14} {'cache hit':>11} {'read tables':>12}   ratio to the"
        " baseline"
    )
    for name, r in results.items():
        print(
            f"{name:<20} {r['write'] * 1e6:>11.0f} us {r['hit'] * 1e6:>8.0f} us"
            f" {r['read'] * 1e3:>9.1f} ms   write x{r['write'] / base['write']:.2f}, hit"
            f" x{r['hit'] / base['hit']:.2f}, read x{r['read'] / base['read']:.2f}"
        )
    print(
        f"\nstore copy: {copied} rows to PostgreSQL in {to_server:.2f} s ({copied / to_server:,.0f}"
        f" rows/s), back to SQLite in {back:.2f} s ({copied / back:,.0f} rows/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=2000)
    parser.add_argument(
        "--url", help="a PostgreSQL database to use (default: a throwaway cluster on this machine)"
    )
    parser.add_argument("--smoke", action="store_true", help="50 answers")
    args = parser.parse_args()
    answers = 50 if args.smoke else args.answers
    if args.url:
        measure(answers, args.url)
        return
    cluster = Cluster().start()
    try:
        measure(answers, cluster.create_database("bench"))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
