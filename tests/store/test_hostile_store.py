"""Hostile stores (#33): a database that is not a harness store, commands that only read, run ids
that are paths, a store that goes away mid-run, a damaged copy source, schema versions no harness
writes, and a store copied onto itself under another spelling. Each through the command line, on
SQLite and a real PostgreSQL server where it applies, asserting the exit code, the message and that
nothing was changed (every table's columns and rows, and a SQLite file's bytes and the files beside
it)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

from harness.cli import main
from harness.core.errors import HarnessError
from harness.store.location import Location, parse, sqlite_file
from harness.store.schema import DATA, store_info
from harness.store.store import Store
from support.paths import FIXTURES
from support.postgres import Cluster
from support.scenarios import LORA, PROMPT, Project, answer

FIXTURE = FIXTURES / "store-v1.sqlite"  # written by harness before stores had versions
FIXTURE_RUN = "20261203-182640-scenario-a847"
HARNESS = [sys.executable, "-m", "harness.cli"]
# Another program's database that happens to use a table name a store uses.
FOREIGN = {
    "its own runs table": [
        "CREATE TABLE runs (id INTEGER PRIMARY KEY, athlete TEXT, km REAL)",
        "CREATE TABLE laps (run INTEGER, seconds REAL)",
        "INSERT INTO runs VALUES (1, 'ada', 5.0), (2, 'bo', 10.5)",
        "INSERT INTO laps VALUES (1, 301.5)",
    ],
    "its own store_info table": [
        "CREATE TABLE store_info (key TEXT PRIMARY KEY, value TEXT)",
        "CREATE TABLE laps (run INTEGER, seconds REAL)",
        "INSERT INTO store_info VALUES ('owner', 'the running club')",
    ],
    "none of a store's tables": [
        "CREATE TABLE laps (run INTEGER, seconds REAL)",
        "INSERT INTO laps VALUES (1, 301.5)",
    ],
}


def files_under(folder: Path) -> set[Path]:
    """Every file, but a SQLite store's -wal and -shm: SQLite's own, which a reader of a store in
    WAL mode makes (a change of journal mode shows in the file's bytes)."""
    return {p for p in folder.rglob("*") if not p.name.endswith(("-wal", "-shm"))}


def reader(where: Location) -> Engine:
    """An engine that reads `where` without touching it (a SQLite file opened read-only)."""
    if where.path is None:
        return create_engine(where.url)
    uri = f"{where.path.absolute().as_uri()}?mode=ro"
    return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))


def state(where: Location) -> dict[str, Any]:
    """What `left as it is` compares: every table's columns and rows, and a SQLite file's bytes and
    its folder."""
    found: dict[str, Any] = {}
    if where.path is not None:
        found["files"] = sorted(p.name for p in files_under(where.path.parent))
        if not where.path.exists():
            return found
        found["bytes"] = hashlib.sha256(where.path.read_bytes()).hexdigest()
    engine = reader(where)
    with engine.connect() as conn:
        tables = inspect(conn).get_table_names()
        found["tables"] = {
            t: (
                [c["name"] for c in inspect(conn).get_columns(t)],
                sorted(map(repr, conn.execute(text(f'SELECT * FROM "{t}"')).all())),
            )
            for t in tables
        }
    engine.dispose()
    return found


def run_sql(where: Location, *statements: str) -> None:
    engine = create_engine(where.url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def url(where: Location, postgres: Cluster | None) -> str:
    """`where` as a command line names it (the PostgreSQL URL with its password)."""
    return str(where.path) if where.path is not None else postgres.url(where.url.database)  # type: ignore[union-attr]


def cluster_of(where: Location, request: pytest.FixtureRequest) -> Cluster | None:
    return None if where.path is not None else request.getfixturevalue("postgres")


def refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], *says: str, secret: str = ""
) -> str:
    """Runs the command: exit 2, one error line and its fix, saying each of `says`; the error's
    text."""
    code = main(argv)
    err = capsys.readouterr().err
    flat = " ".join(err.split())
    assert code == 2, err
    assert [
        line for line in err.splitlines() if line.startswith("error: ")
    ] and "\n  fix: " in err, err
    assert all(" ".join(s.split()) in flat for s in says), err
    assert "Traceback" not in err and (not secret or secret not in err)
    return err


def scenario(project: Project) -> Path:
    project.suite(
        "qa", ["contains"], [{"id": "a", "prompt": "Capital of France?", "reference": "Paris"}]
    )
    return project.config(
        [PROMPT],
        [{"candidate": "bare", "suite": "qa", "metric": "contains", "min": 0.5}],
        [answer("Paris")],
    )


# ---- 3. a database that is not a harness store ------------------------------------------------------------

COMMANDS = [
    "store info",
    "runs",
    "report",
    "diff",
    "store copy FROM",
    "store copy TO",
    "store upgrade",
    "pin",
    "compare",
]


def command(name: str, store: str, project: Project) -> list[str]:
    other = str(project.root / "other.sqlite")
    source = project.root / "v1.sqlite"
    shutil.copy(FIXTURE, source)
    return {
        "store info": ["store", "info", "--store", store],
        "runs": ["runs", "--store", store],
        "report": ["report", "1", "--store", store, "--out", str(project.root / "out")],
        "diff": ["diff", "1", "2", "--store", store, "--out", str(project.root / "diff.html")],
        "store copy FROM": ["store", "copy", store, other],
        "store copy TO": ["store", "copy", str(source), store],
        "store upgrade": ["store", "upgrade", "--store", store],
        "pin": ["pin", "1", "--as", "x", "--store", store],
        "compare": ["compare", str(scenario(project)), "--store", store],
    }[name]


@pytest.mark.parametrize("foreign", list(FOREIGN))
@pytest.mark.parametrize("name", COMMANDS)
def test_a_database_that_is_not_a_store_is_refused_and_left_as_it_is(
    where: Location,
    foreign: str,
    name: str,
    project: Project,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Any command, reading or writing: refused with what was found and the fix; nothing altered (no
    column added, no table made, no version recorded, a SQLite file's bytes and journal mode as they
    were). A new store is made only in an empty database."""
    postgres = cluster_of(where, request)
    run_sql(where, *FOREIGN[foreign])
    argv = command(name, url(where, postgres), project)
    before = state(where)
    says = {
        "its own runs table": [
            (
                f"{where.shown} is not a harness run store (no table artifacts, cache, cases, "
                "pins, responses, scores, timings; table runs lacks against, "
            ),
            "and has athlete, id, km; tables found: laps, runs)",
        ],
        "its own store_info table": [
            f"run store {where.shown} has a store_info table that records no schema_version"
        ],
        "none of a store's tables": [
            f"{where.shown} is not a harness run store (none of a run store's tables; "
            "tables found: laps)"
        ],
    }[foreign]
    says += ["and is left as it is", "fix: "]
    refused(capsys, argv, *says, secret=postgres.password if postgres else "")
    assert state(where) == before
    assert not (project.root / "other.sqlite").exists() and not (project.root / "out").exists()


# ---- 3. commands that only read never write ---------------------------------------------------------------

READING = ["store info", "runs", "report", "diff", "store copy FROM"]


@pytest.mark.parametrize("name", READING)
def test_a_command_that_only_reads_makes_no_store(
    where: Location,
    name: str,
    project: Project,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An absent SQLite file is not made, an empty database gets no tables: there is no store there."""
    postgres = cluster_of(where, request)
    argv = command(name, url(where, postgres), project)
    before = state(where)
    why = "no such file" if where.path is not None else "the database holds no tables"
    refused(capsys, argv, f"no run store in {where.shown} ({why})", "this command makes none")
    assert state(where) == before
    assert where.path is None or not where.path.exists()


def test_a_store_opened_to_read_refuses_every_write_at_the_database(where: Location) -> None:
    """Not a promise of the code above it: the database itself refuses (SQLite opened mode=ro,
    PostgreSQL's default_transaction_read_only)."""
    Store(where).close()
    before = state(where)
    with pytest.raises(HarnessError) as failed, Store(where, read_only=True) as store:
        store.pin("prod", "r1")
    assert "run store" in str(failed.value) and "\n  fix: " in str(failed.value)
    assert state(where) == before


def test_an_older_store_is_read_as_it_is_by_a_command_that_only_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fixture (schema 1, every column this harness reads): shown, listed, re-rendered and
    copied from as it is, its file byte for byte as it was, and no file left beside it."""
    path = tmp_path / "store" / "harness.sqlite"
    path.parent.mkdir()
    shutil.copy(FIXTURE, path)
    before = state(sqlite_file(path))
    assert main(["store", "info", "--store", str(path)]) == 0
    assert "schema 1; this harness writes 2: `harness store upgrade` brings it there" in " ".join(
        capsys.readouterr().out.split()
    )
    assert main(["runs", "--store", str(path)]) == 0
    assert FIXTURE_RUN in capsys.readouterr().out
    assert (
        main(["report", FIXTURE_RUN, "--store", str(path), "--out", str(tmp_path / "again")]) == 0
    )
    assert (
        main(
            [
                "diff",
                FIXTURE_RUN,
                FIXTURE_RUN,
                "--store",
                str(path),
                "--out",
                str(tmp_path / "d.html"),
            ]
        )
        == 0
    )
    assert main(["store", "copy", str(path), str(tmp_path / "copy.sqlite")]) == 0
    assert state(sqlite_file(path)) == before
    assert (tmp_path / "again" / "report.html").is_file() and (tmp_path / "d.html").is_file()
    with Store(tmp_path / "copy.sqlite", read_only=True) as copy:
        assert copy.run(FIXTURE_RUN)["verdict"]["decision"] == "ship" and copy.version == 2


def test_an_older_store_lacking_a_column_is_refused_to_read_until_upgraded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "harness.sqlite"
    shutil.copy(FIXTURE, path)
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE runs DROP COLUMN reason")
    before = state(sqlite_file(path))
    for argv in (["store", "info"], ["runs"], ["report", FIXTURE_RUN]):
        refused(
            capsys,
            [*argv, "--store", str(path)],
            f"run store {path} was written by an older harness (store "
            "schema 1) and lacks runs.reason, which this one reads",
            "harness store upgrade --store STORE",
        )
        assert state(sqlite_file(path)) == before
    assert main(["store", "upgrade", "--store", str(path)]) == 0
    assert "schema 2, upgraded from 1" in capsys.readouterr().out
    assert main(["store", "info", "--store", str(path)]) == 0
    assert f"{path} (sqlite, schema 2)" in " ".join(capsys.readouterr().out.split())


# ---- 8. a schema version no harness writes ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["two", "-1", "0", "1", "2.5", " ", None])
@pytest.mark.parametrize("name", ["store info", "runs", "store upgrade", "pin"])
def test_a_schema_version_no_harness_writes_is_refused_and_left_as_it_is(
    where: Location,
    value: str | None,
    name: str,
    project: Project,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    postgres = cluster_of(where, request)
    Store(where).close()
    with create_engine(where.url).begin() as conn:
        if value is None:
            conn.execute(store_info.delete())
        else:
            conn.execute(store_info.update().values(value=value))
    argv = command(name, url(where, postgres), project)
    before = state(where)
    recorded = "no schema_version" if value is None else f"schema_version {value!r}"
    refused(
        capsys,
        argv,
        f"run store {where.shown} has a store_info table that records {recorded}, which no "
        "harness writes",
        "and is left as it is",
        secret=postgres.password if postgres else "",
    )
    assert state(where) == before


# ---- 7. run ids are names, not paths ----------------------------------------------------------------------


def plant(store: Store, good: str, bad: str) -> None:
    """Every row of run `good` again under the id `bad`, as a hostile or careless writer would put
    them."""
    for table in DATA:
        if "run_id" in table.c:
            rows = [
                {**row, "run_id": bad}
                for row in store.conn.execute(
                    table.select().where(table.c.run_id == good)
                ).mappings()
            ]
            if rows:
                store.conn.execute(store.upsert[table.name], rows)


@pytest.mark.parametrize("bad", ["../../escape", "ABSOLUTE", "..", "a/b", "-rf", "x" * 129])
def test_a_stored_run_id_that_is_a_path_is_refused_and_nothing_is_written_outside(
    where: Location,
    bad: str,
    project: Project,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """From a shared or copied store: `report` and `diff` refuse it (they wrote to the store's
    folder joined with it), and `store copy` leaves that run behind, saying so, and copies the
    others."""
    postgres = cluster_of(where, request)
    bad = str(tmp_path / "absolute-escape") if bad == "ABSOLUTE" else bad
    deep = (
        tmp_path / "a" / "b"
    )  # the store's folder, deep enough that ../../ is still under tmp_path
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)  # a server store's reports go to ./reports
    where = sqlite_file(deep / "harness.sqlite") if where.path is not None else where
    scenario(project)
    store = url(where, postgres)
    code, results = project.run("--store", store)
    assert code == 0 and results is not None
    good = results["run"]["id"]
    with Store(where) as opened:
        plant(opened, good, bad)
    capsys.readouterr()
    before = files_under(tmp_path)
    shown = repr(bad[:128])
    refused(
        capsys,
        ["report", "--store", store, "--", bad],
        f"run id {shown} in {where.shown} is not a plain name",
    )
    refused(
        capsys,
        ["diff", "--store", store, "--", good, bad],
        f"run id {shown} in {where.shown} is not a plain name",
    )
    assert files_under(tmp_path) == before
    target = tmp_path / "copied.sqlite"
    assert main(["store", "copy", store, str(target)]) == 0
    warned = capsys.readouterr().err
    assert (
        "1 run(s) not copied, their ids not plain names" in " ".join(warned.split())
        and shown in warned
    )
    with Store(target, read_only=True) as copied:
        assert copied.runs()["run_id"].tolist() == [good]
        for table in DATA:
            if "run_id" in table.c:
                assert (
                    copied.conn.execute(table.select().where(table.c.run_id == bad)).first() is None
                )
    assert main(["report", good, "--store", store]) == 0  # the plain one is still read


def test_a_run_folder_that_links_out_of_the_store_s_folder_is_written_to_by_no_report(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A link planted where a run's report folder goes (a shared reports folder): the report is
    refused, not written through it."""
    scenario(project)
    code, results = project.run()
    assert code == 0 and results is not None
    run_dir = project.store.parent / results["run"]["id"]
    shutil.rmtree(run_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_dir.symlink_to(elsewhere)
    refused(
        capsys,
        ["report", results["run"]["id"], "--store", str(project.store)],
        f"would put a file outside {project.store.parent}",
        "fix: pass --out",
    )
    assert list(elsewhere.iterdir()) == []


# ---- 8. messages that name the cause ----------------------------------------------------------------------


def test_a_server_store_stopped_mid_run_names_the_store_the_run_and_how_to_resume(
    tmp_path: Path,
) -> None:
    """Its own server (stopping the session's would stop the other tests'): shut down while the run
    writes, the run fails naming the store (no password), the run and the resume command; started
    again, the resume finishes the run."""
    cluster = Cluster().start()
    try:
        store = cluster.create_database("stopped")
        made = Project(tmp_path / "project")
        made.root.mkdir()
        made.suite(
            "qa",
            ["contains"],
            [{"id": f"c{i}", "prompt": f"Capital {i}?", "reference": "Paris"} for i in range(12)],
        )
        config = made.config(
            [PROMPT, LORA],
            [{"candidate": "lora", "suite": "qa", "metric": "contains", "min": 0.5}],
            [answer("Paris", delay_s=0.5)],
        )
        env = {**os.environ, "HARNESS_STORE": store}
        victim = subprocess.Popen(
            [*HARNESS, "compare", str(config)],
            cwd=made.root,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        run_id = wait_for_answers(parse(store, "test"), 4, victim)
        cluster.halt()
        out, err = victim.communicate(timeout=120)
        flat = " ".join(err.split())
        shown = f"postgresql://harness:***@127.0.0.1:{cluster.port}/stopped"
        assert victim.returncode == 2, out + err
        assert (
            f"error: run store {shown} was shut down while in use (PostgreSQL: terminating"
            f" connection due to administrator command), during run {run_id}" in flat
        ), err
        assert (
            f"fix: start the server again; then resume the run: harness compare {config} --resume"
            f" {run_id}" in flat
        ), err
        assert "PendingRollbackError" not in err and cluster.password not in out + err
        cluster.serve()
        resumed = subprocess.run(
            [*HARNESS, "compare", str(config), "--resume", run_id],
            cwd=made.root,
            env=env,
            text=True,
            capture_output=True,
            timeout=300,
        )
        assert resumed.returncode == 0, resumed.stderr
        with Store(parse(store, "test")) as opened:
            assert opened.run(run_id)["status"] == "finished"
    finally:
        cluster.stop()


def wait_for_answers(where: Location, answers: int, process: subprocess.Popen[str]) -> str:
    """The id of the run `process` is making, once it has stored `answers` answers."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        try:
            store = Store(where, read_only=True)
        except HarnessError:  # not made yet
            continue
        with store:
            listed = store.runs()
            if len(listed) and len(store.table("responses", listed["run_id"].iloc[0])) >= answers:
                return str(listed["run_id"].iloc[0])
    raise AssertionError(f"no run stored {answers} answers: {process.communicate(timeout=10)}")


def test_a_damaged_copy_source_is_named_not_the_server_it_is_copied_to(
    tmp_path: Path, postgres: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pages in the middle of the source are garbage: the copy reads the first tables, has opened
    the target, and fails reading the cache, which is the source's fault."""
    source = tmp_path / "damaged.sqlite"
    with Store(source) as store, store.transaction():
        for i in range(3000):
            store.conn.execute(
                store.upsert["cache"],
                {
                    "key": f"k{i:05d}",
                    "model_fingerprint": "fp",
                    "completion_json": "x" * 300,
                    "created_at": "now",
                },
            )
    data = bytearray(source.read_bytes())
    pages = len(data) // 4096
    data[pages // 2 * 4096 : (pages // 2 + 20) * 4096] = b"\xff" * 20 * 4096
    source.write_bytes(bytes(data))
    target = postgres.create_database(f"t{uuid.uuid4().hex[:12]}")
    err = refused(
        capsys,
        ["store", "copy", str(source), target],
        f"run store {source} is damaged (SQLite: database disk image is malformed)",
        f"fix: restore {source} from a backup",
        secret=postgres.password,
    )
    assert "PostgreSQL" not in err


# ---- 10. a store copied onto itself under another spelling -----------------------------------------------


@pytest.mark.parametrize("spelling", ["relative", "symlink", "hard link"])
def test_a_sqlite_store_copied_onto_itself_under_another_name_is_refused(
    spelling: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "harness.sqlite"
    shutil.copy(FIXTURE, path)
    Store(path).close()
    monkeypatch.chdir(tmp_path)
    other = {"relative": "harness.sqlite", "symlink": "link.sqlite", "hard link": "hard.sqlite"}[
        spelling
    ]
    if spelling == "symlink":
        (tmp_path / other).symlink_to(path)
    if spelling == "hard link":
        os.link(path, tmp_path / other)
    before = state(sqlite_file(path))
    refused(
        capsys,
        ["store", "copy", str(path), other],
        "the store copy's source and target are one store",
        "fix: name two different stores",
    )
    assert state(sqlite_file(path)) == before


@pytest.mark.parametrize("spelling", ["localhost", "a query"])
def test_a_server_store_copied_onto_itself_under_another_name_is_refused(
    spelling: str, postgres: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    store = postgres.create_database(f"t{uuid.uuid4().hex[:12]}")
    Store(parse(store, "test")).close()
    other = (
        store.replace("127.0.0.1", "localhost")
        if spelling == "localhost"
        else f"{store}?connect_timeout=5"
    )
    before = state(parse(store, "test"))
    refused(
        capsys,
        ["store", "copy", store, other],
        "the store copy's source and target are one store",
        secret=postgres.password,
    )
    assert state(parse(store, "test")) == before
