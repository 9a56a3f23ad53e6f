"""The SQLite store and the response cache."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from harness.core.request import Completion, Request
from harness.store.store import Store

REQUEST = Request(model="m", messages=(("user", "hi"),), max_tokens=8, temperature=0.0, top_p=1.0, stop=(), seed=0)


def test_rows_land_as_written(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.begin_run("r1", "demo", "abc", {"name": "demo"}, {"seed": 0})
    store.put_case("r1", "suite", "c1", [{"role": "user", "content": "hi"}], "ref", ["t"])
    store.put_response("r1", "cand", "suite", "c1", REQUEST.as_json(), Completion("out", 3, 2, 0.5, "stop"),
                       cached=False)
    store.put_score("r1", "cand", "suite", "c1", "json_valid", 0.0, False, "not JSON")
    # a second connection (another process) sees every row before the run finishes
    other = sqlite3.connect(tmp_path / "s.sqlite")
    assert (other.execute("SELECT output, latency_s, prompt_tokens, completion_tokens FROM responses").fetchall()
            == [("out", 0.5, 3, 2)])
    assert (other.execute("SELECT metric, value, passed, detail FROM scores").fetchall()
            == [("json_valid", 0.0, 0, "not JSON")])
    assert store.run("r1")["status"] == "running"
    store.finish_run("r1", "finished", {"decision": "ship"})
    run = store.run("r1")
    assert run["status"] == "finished" and run["verdict"] == {"decision": "ship"} and run["meta"] == {"seed": 0}
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.run("nope") is None


def test_cache_roundtrip_and_errors_not_cached(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    key = REQUEST.cache_key("fp1")
    assert store.cache_get(key) is None
    done = Completion("answer", 3, 1, 0.2, "stop")
    store.cache_put(key, "fp1", done)
    assert store.cache_get(key) == done
    failed = REQUEST.cache_key("fp2")
    store.cache_put(failed, "fp2", Completion("", error="APITimeoutError: timed out"))
    assert store.cache_get(failed) is None


def test_cache_key_covers_weights_and_settings() -> None:
    key = REQUEST.cache_key("fp")
    assert key == REQUEST.cache_key("fp")
    assert key != REQUEST.cache_key("other-weights")
    assert key != replace(REQUEST, temperature=0.7).cache_key("fp")
    assert key != replace(REQUEST, max_tokens=9).cache_key("fp")
    assert key != replace(REQUEST, seed=1).cache_key("fp")
    assert key != replace(REQUEST, messages=(("user", "hi!"),)).cache_key("fp")
    # the served name is not part of it: the fingerprint says which weights answered
    assert key == replace(REQUEST, model="alias").cache_key("fp")
