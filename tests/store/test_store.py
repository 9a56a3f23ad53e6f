"""The run store and the response cache, on both engines (SQLite, and a real PostgreSQL server:
`where`)."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from harness.cli import main
from harness.core.errors import HarnessError
from harness.core.request import Completion, Request
from harness.store.copy import counts
from harness.store.location import Location, locate, parse, sqlite_file
from harness.store.schema import SCHEMA_VERSION, store_info
from harness.store.store import Store
from support.paths import FIXTURES
from support.postgres import Cluster
from support.scenarios import PROMPT, Project, answer

REQUEST = Request(
    model="m", messages=(("user", "hi"),), max_tokens=8, temperature=0.0, top_p=1.0, stop=(), seed=0
)
FIXTURE = FIXTURES / "store-v1.sqlite"  # written by harness at b0f581a (pre-versions)
FIXTURE_RUN = "20261203-182640-scenario-a847"


def sample_run(store: Store, run_id: str = "r1") -> None:
    store.begin_run(run_id, "demo", "abc", {"name": "demo"}, {"seed": 0})
    store.put_case(run_id, "suite", "c1", [{"role": "user", "content": "hi"}], "ref", ["t"])
    store.put_response(
        run_id,
        "cand",
        "suite",
        "c1",
        REQUEST.as_json(),
        Completion("out", 3, 2, 0.5, "stop"),
        cached=False,
    )
    store.put_score(run_id, "cand", "suite", "c1", "json_valid", 0.0, False, "not JSON")


def test_rows_land_as_written_and_another_connection_sees_them_at_once(where: Location) -> None:
    store = Store(where)
    sample_run(store)
    other = Store(where)  # another process's view, before the run finishes
    assert other.table("responses", "r1")[
        ["output", "latency_s", "prompt_tokens", "completion_tokens"]
    ].values.tolist() == [["out", 0.5, 3, 2]]
    assert other.table("scores", "r1")[["metric", "value", "passed", "detail"]].values.tolist() == [
        ["json_valid", 0.0, 0, "not JSON"]
    ]
    assert other.run("r1")["status"] == "running"
    store.finish_run("r1", "finished", {"decision": "ship"})
    run = other.run("r1")
    assert (
        run["status"] == "finished"
        and run["verdict"] == {"decision": "ship"}
        and run["meta"] == {"seed": 0}
    )
    assert other.runs()[["run_id", "status", "decision"]].values.tolist() == [
        ["r1", "finished", "ship"]
    ]
    assert store.run("nope") is None
    store.close()
    other.close()


def test_a_meta_key_is_set_alone_and_the_rest_reads_back_as_written(where: Location) -> None:
    """Each key set after a run began is one JSON update in the database: writers of different keys
    never undo each other (no read-modify-write), and the rest reads back as written, numbers digit
    for digit.
    """
    judges = [{"suite": "s", "metric": "m", "rubric": "r", "calibrated": False, "check": None}]
    with Store(where) as store, Store(where) as other:
        store.begin_run(
            "r1", "demo", "abc", {"name": "demo"}, {"seed": 0, "x": 0.1234567890123456789}
        )
        store.set_meta_key("r1", "built", {"adapters": {"ft": "f1"}})
        other.set_meta_key("r1", "judges", judges)
        store.set_meta_key("r1", "built", {"adapters": {"ft": "f2"}})
        assert store.run("r1")["meta"] == {
            "seed": 0,
            "x": 0.1234567890123456789,
            "built": {"adapters": {"ft": "f2"}},
            "judges": judges,
        }


def test_the_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    Store(tmp_path / "s.sqlite").close()
    assert (
        sqlite3.connect(tmp_path / "s.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    )


def test_a_row_put_twice_is_stored_once_as_last_put(where: Location) -> None:
    with Store(where) as store:
        sample_run(store)
        store.put_score(
            "r1", "cand", "suite", "c1", "json_valid", 1.0, True, "valid", {"fallback": True}
        )
        store.pin("prod", "r1")
        store.pin("prod", "r2")
        scores = store.table("scores", "r1")
        assert scores[["value", "passed", "detail", "meta_json"]].values.tolist() == [
            [1.0, 1, "valid", '{"fallback": true}']
        ]
        assert store.pinned("prod") == "r2" and store.pinned("none") is None


def test_a_transaction_lands_whole_or_not_at_all(where: Location) -> None:
    with Store(where) as store:
        store.begin_run("r1", "demo", "abc", {}, {})
        with pytest.raises(RuntimeError), store.transaction():
            store.put_response("r1", "cand", "suite", "c1", "{}", Completion("out"), cached=False)
            store.put_score("r1", "cand", "suite", "c1", "m", 1.0, True, "")
            raise RuntimeError("crash between the rows")
        assert store.answered("r1") == {}
        with store.transaction():
            store.put_response("r1", "cand", "suite", "c1", "{}", Completion("out"), cached=False)
            store.put_score("r1", "cand", "suite", "c1", "m", 1.0, True, "")
        assert store.answered("r1") == {("cand", "suite", "c1"): {"m"}}


@pytest.mark.parametrize(
    "output",
    [
        "nul \x00 inside",
        "\x01harness-json:looks encoded",
        "ünïcödé ✓ \U0001f600",
        "",
        "a\r\nb\tc\\d'e\"f",
    ],
)
def test_any_text_reads_back_as_written(where: Location, output: str) -> None:
    """Model outputs are untrusted: a NUL (PostgreSQL's text refuses it) or the encoding's own
    marker included."""
    with Store(where) as store:
        store.begin_run("r1", "demo", "abc", {}, {})
        store.put_response("r1", "cand", "suite", "c1", "{}", Completion(output), cached=False)
        store.put_score("r1", "cand", "suite", "c1", "m", None, None, output)
        assert store.table("responses", "r1")["output"].tolist() == [output]
        assert store.table("scores", "r1")["detail"].tolist() == [output]


def test_cache_roundtrip_and_errors_not_cached(where: Location) -> None:
    store = Store(where)
    key = REQUEST.cache_key("fp1")
    assert store.cache_get(key) is None
    done = Completion(
        "answer", 3, 1, 0.2, "stop", logliks=((-0.5, True),), top_logprobs=(("a", -0.1),)
    )
    store.cache_put(key, "fp1", done)
    assert Store(where).cache_get(key) == done  # shared: another runner reads it
    failed = REQUEST.cache_key("fp2")
    store.cache_put(failed, "fp2", Completion("", error="APITimeoutError: timed out"))
    assert store.cache_get(failed) is None
    store.put_judge_calibration("k", {"rubric": "r", "judge": "j", "value": 0.9})
    assert Store(where).judge_calibration("k") == {"rubric": "r", "judge": "j", "value": 0.9}
    store.close()


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


def test_a_store_written_before_versions_is_upgraded_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The committed fixture was written by harness before stores had a schema version (one finished
    run, pinned as prod, its cache and a judge check): opened now, it gets version 2 and keeps every
    row.
    """
    path = tmp_path / "harness.sqlite"
    shutil.copy(FIXTURE, path)
    with Store(path) as store:
        assert store.upgraded_from == 1
        assert counts(store) == {
            "runs": 1,
            "pins": 1,
            "artifacts": 1,
            "cases": 4,
            "responses": 8,
            "scores": 16,
            "timings": 5,
            "cache": 8,
            "judge_checks": 1,
        }
        assert (
            store.pinned("prod") == FIXTURE_RUN
            and store.run(FIXTURE_RUN)["verdict"]["decision"] == "ship"
        )
        version = store.conn.execute(select(store_info.c.value)).scalar()
    assert version == str(SCHEMA_VERSION)
    with Store(path) as store:
        assert store.upgraded_from == SCHEMA_VERSION
    assert main(["report", FIXTURE_RUN, "--store", str(path)]) == 0
    assert (
        json.loads((tmp_path / FIXTURE_RUN / "results.json").read_text())["verdict"]["decision"]
        == "ship"
    )


def test_a_store_from_before_the_reason_column_gets_it(tmp_path: Path) -> None:
    """The oldest store an upgrade takes: the fixture as a harness before `reason` and judge_checks
    wrote it."""
    path = tmp_path / "harness.sqlite"
    shutil.copy(FIXTURE, path)
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE runs DROP COLUMN reason")
        db.execute("DROP TABLE judge_checks")
        db.execute("INSERT INTO runs (run_id, status) VALUES ('old', 'running')")
    with Store(path) as store:
        assert store.upgraded_from == 1 and store.run("old")["reason"] is None
        store.finish_run("old", "interrupted", None, "KeyboardInterrupt")
        listed = store.runs().set_index("run_id")
        assert listed.loc["old", ["status", "reason"]].tolist() == [
            "interrupted",
            "KeyboardInterrupt",
        ]


def test_a_store_from_a_newer_harness_is_refused_and_left_alone(where: Location) -> None:
    with Store(where) as store:
        sample_run(store)
        store.conn.execute(store_info.update().values(value="99"))
    with pytest.raises(HarnessError) as refused:
        Store(where)
    message = str(refused.value)
    assert (
        f"run store {where.shown} was written by a newer harness (store schema 99; this harness"
        f" reads up to {SCHEMA_VERSION})"
        in message
        and "\n  fix: upgrade harness" in message
        and "pw-" not in message
    )
    with create_engine(where.url).connect() as raw:  # left as it was
        assert raw.execute(select(store_info.c.value)).scalar() == "99"


def _open(url: str) -> int:
    with Store(parse(url, "test")) as store:
        return store.upgraded_from


def test_runners_opening_a_new_shared_store_at_once_make_it_once(postgres: Cluster) -> None:
    url = postgres.create_database("fresh_at_once")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        had = pool.map(_open, [url] * 4)
    assert sorted(had) == [
        0,
        2,
        2,
        2,
    ]  # one made it; the others found it made (no duplicate-table error)
    with Store(parse(url, "test")) as store:
        assert store.conn.execute(text("SELECT count(*) FROM store_info")).scalar() == 1


@pytest.mark.parametrize("problem", ["password", "port", "database"])
def test_a_server_store_that_cannot_be_opened_says_why_without_the_password(
    postgres: Cluster, problem: str
) -> None:
    url = {
        "password": postgres.url("postgres", password="wrong-secret-pw"),
        "port": postgres.url("postgres").replace(f":{postgres.port}/", ":1/"),
        "database": postgres.url("no_such_db"),
    }[problem]
    with pytest.raises(HarnessError) as failed:
        Store(parse(url, "test"))
    message = str(failed.value)
    assert postgres.password not in message and "wrong-secret-pw" not in message
    assert "harness:***@127.0.0.1" in message
    assert {
        "password": "refused the login",
        "port": "cannot be reached",
        "database": "names a database that does not exist",
    }[problem] in message
    assert "\n  fix: " in message


def test_where_a_store_is_comes_from_the_flag_the_environment_the_config_then_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default, configured = tmp_path / "default.sqlite", sqlite_file(tmp_path / "configured.sqlite")
    monkeypatch.delenv("HARNESS_STORE", raising=False)
    assert locate(None, default).path == default
    assert locate(None, default, configured) == configured
    monkeypatch.setenv("HARNESS_STORE", "postgresql://u:s3cret-pw@db.example:5433/runs")
    from_env = locate(None, default, configured)
    assert from_env.shown == "postgresql://u:***@db.example:5433/runs" and from_env.secrets == (
        "s3cret-pw",
    )
    assert from_env.url.drivername == "postgresql+psycopg"
    assert (
        locate(str(tmp_path / "flag.sqlite"), default, configured).path == tmp_path / "flag.sqlite"
    )
    monkeypatch.setenv("DB_URL", "postgres://u@db/runs?password=q-pw&sslmode=require")
    named = parse("env:DB_URL", "--store")
    assert (
        named.secrets == ("q-pw",)
        and "q-pw" not in named.shown
        and "sslmode=require" in named.shown
    )
    assert parse("sqlite:///" + str(tmp_path / "x.sqlite"), "--store").path == tmp_path / "x.sqlite"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("env:NOT_SET_ANYWHERE", "names the variable NOT_SET_ANYWHERE, which is not set"),
        ("mysql://u:hidden-pw@h/db", "a store on 'mysql' is not supported"),
        ("postgresql://u:hidden-pw@h:notaport/db", "is not a store URL"),
        ("postgresql://u:hidden-pw@h:5432", "names no database"),
    ],
)
def test_a_store_value_that_names_no_store_says_so_without_its_password(
    value: str, says: str
) -> None:
    with pytest.raises(HarnessError) as refused:
        parse(value, "--store")
    assert says in str(refused.value) and "hidden-pw" not in str(refused.value)


def test_a_copy_moves_everything_either_way_and_twice_changes_nothing(
    tmp_path: Path, postgres: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres.create_database("copy_both_ways")
    source = tmp_path / "v1.sqlite"
    shutil.copy(FIXTURE, source)
    assert main(["store", "copy", str(source), url]) == 0
    assert main(["store", "copy", str(source), url]) == 0
    back = tmp_path / "back.sqlite"
    assert main(["store", "copy", url, str(back)]) == 0
    shown = capsys.readouterr()
    assert postgres.password not in shown.out + shown.err and "copied 45 rows" in shown.out
    with Store(source) as a, Store(parse(url, "test")) as b, Store(back) as c:
        assert counts(a) == counts(b) == counts(c)
        for table in ("cases", "responses", "scores", "timings"):
            assert (
                a.table(table, FIXTURE_RUN)
                .sort_values(list(a.table(table, FIXTURE_RUN).columns[:4]))
                .reset_index(drop=True)
                .equals(
                    c.table(table, FIXTURE_RUN)
                    .sort_values(list(c.table(table, FIXTURE_RUN).columns[:4]))
                    .reset_index(drop=True)
                )
            )
        assert a.run(FIXTURE_RUN) == b.run(FIXTURE_RUN) == c.run(FIXTURE_RUN)
        assert b.pinned("prod") == FIXTURE_RUN and c.judge_calibration(
            "jk1"
        ) == a.judge_calibration("jk1")


def test_the_config_names_its_store_without_a_password(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`store:` in the config: a path starts at the config's folder; a URL holding a password is
    refused (the config is committed and stored with the run), and so is a variable that is not set,
    by `harness check` too.
    """
    monkeypatch.delenv("HARNESS_STORE", raising=False)
    project.suite(
        "qa", ["contains"], [{"id": "a", "prompt": "Capital of France?", "reference": "Paris"}]
    )
    gates, script = (
        [{"candidate": "bare", "suite": "qa", "metric": "contains", "min": 0.5}],
        [answer("Paris")],
    )
    project.config([PROMPT], gates, script, store="team/runs.sqlite")
    assert project.run()[0] == 0
    assert (project.root / "team" / "runs.sqlite").is_file() and not project.store.exists()
    config = str(project.root / "config.yaml")
    for store, says in (
        (
            {"url_env": "HARNESS_TEST_UNSET_URL"},
            "names the variable HARNESS_TEST_UNSET_URL, which is not set",
        ),
        ("postgresql://ci:hunter2-pw@db:5432/runs", "the store's url holds a password"),
    ):
        project.config([PROMPT], gates, script, store=store)
        capsys.readouterr()
        assert main(["check", config]) == 2
        err = capsys.readouterr().err
        assert says in " ".join(err.split()) and "hunter2-pw" not in err and "config.yaml:" in err
        assert project.run()[0] == 2


def test_a_run_s_rows_read_back_in_key_order_however_they_landed(where: Location) -> None:
    """A bootstrap resamples rows by position: the order must not be the order answers completed in,
    nor the plan the engine picks, nor the database's collation (byte order: "B" before "a")."""
    ids = ["c10", "B", "a", "c2", "é", "c1"]
    with Store(where) as store:
        store.begin_run("r1", "demo", "abc", {}, {})
        for case_id in ids:
            store.put_score("r1", "cand", "suite", case_id, "m", 1.0, True, "")
        assert (
            store.table("scores", "r1")["case_id"].tolist()
            == sorted(ids)
            == ["B", "a", "c1", "c10", "c2", "é"]
        )
