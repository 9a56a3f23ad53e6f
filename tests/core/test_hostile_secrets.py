"""Credentials in URLs and passwords in messages (issue 33, items 1, 6 and 10's fleet half).

A URL in a config names no user or password (the config is committed, and every run stores and shows
it): a server that needs them reads its URL from a variable (`env:NAME`), and whatever the run
sends, a key, a password, base64 of `user:password` in `Authorization: Basic`, is redacted from
every file the run writes, also when a server echoes it. A store URL is read with the database
library's parser, and every message names a store without its password; one that does not parse is
shown by its scheme alone. One server spelt two ways is one server. The servers are real loopback
processes (tests/support/chat_server.py), the store a real throwaway PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import subprocess
import sys
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, quote_plus

import psycopg
import pytest

from harness.cli import main
from harness.core.credentials import redact, url_secrets
from harness.serving.endpoint_spec import EndpointSpec
from harness.store.location import parse
from harness.store.store import Store
from support.paths import SUPPORT
from support.postgres import USER, Cluster
from support.scenarios import Project, answer

SERVER = SUPPORT / "chat_server.py"
# A password of pieces none of which may show, joined by what a URL holds only percent-encoded.
PIECES = ("Xq7kLv", "Zr8mPw", "Wt9pQs", "Yu6qRt")
PASSWORD = f"{PIECES[0]}@{PIECES[1]} {PIECES[2]}#{PIECES[3]}"
KEY = "sk-hostile-secret-91c4e7"


def forms(user: str, password: str) -> list[str]:
    """What of a credential must show nowhere: the password, each piece of it, its percent-encoding,
    and base64 of `user:password` (what `Authorization: Basic` carries)."""
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [
        password,
        *[piece for piece in PIECES if piece in password],
        quote(password, safe=""),
        basic,
    ]


def leaks(secrets: list[str], outputs: list[str], folder: Path) -> list[str]:
    """Where any of `secrets` shows: an output, any file under `folder` (a run folder, results.json,
    report.html, the store), or any row of the SQLite stores there."""
    found = [f"output {i}: {s}" for i, text in enumerate(outputs) for s in secrets if s in text]
    for path in (p for p in folder.rglob("*") if p.is_file()):
        found += [f"{path}: {s}" for s in secrets if s.encode() in path.read_bytes()]
        if path.suffix == ".sqlite":
            with sqlite3.connect(path) as db:
                dump = "\n".join(db.iterdump())
            found += [f"{path} (rows): {s}" for s in secrets if s in dump]
    return found


@contextmanager
def chat_servers(*options: list[str]) -> Iterator[list[str]]:
    """One chat server per options list, each a base URL; killed at the end."""
    with ExitStack() as stack:
        urls = []
        for argv in options:
            proc = subprocess.Popen(
                [sys.executable, str(SERVER), *argv], stdout=subprocess.PIPE, text=True
            )
            stack.callback(proc.kill)
            urls.append(f"http://127.0.0.1:{int(proc.stdout.readline())}/v1")
        yield urls


def endpoints_project(
    project: Project, prod: dict, nxt: dict | None = None, **extra: object
) -> Path:
    """Two endpoint candidates, prod (the baseline) and next, gated on next's `equals`."""
    project.suite(
        "tickets",
        ["equals"],
        [{"id": f"c{i}", "prompt": f"case {i}", "reference": f"echo: case {i}"} for i in range(4)],
    )
    endpoint = {
        "kind": "endpoint",
        "model": "fleet-model",
        "max_retries": 0,
    }  # what chat_server serves
    nxt = nxt or {"base_url": "http://127.0.0.1:9/v1"}
    return project.config(
        [{**endpoint, "name": "prod", **prod}, {**endpoint, "name": "next", **nxt}],
        [{"candidate": "next", "suite": "tickets", "metric": "equals", "min": 0.5}],
        [answer("unused")],
        **extra,
    )


# --- item 1: credentials in endpoint URLs --------------------------------------------------------------------

IN_URLS = {
    "user and password": f"http://alice:{quote(PASSWORD, safe='')}@127.0.0.1:9/v1",
    "a token as the user": f"http://{PIECES[0]}{PIECES[1]}@127.0.0.1:9/v1",
    "an unencoded #, where an HTTP parser sees no password": (
        f"http://alice:{PIECES[0]}#{PIECES[1]}@127.0.0.1:9/v1"
    ),
    "an unencoded /": f"http://alice:{PIECES[0]}/{PIECES[1]}@127.0.0.1:9/v1",
    "an unencoded space": f"http://alice:{PIECES[0]} {PIECES[1]}@127.0.0.1:9/v1",
    "an unencoded @": f"http://alice:{PIECES[0]}@{PIECES[1]}@127.0.0.1:9/v1",
    "a password parameter": f"http://127.0.0.1:9/v1?password={PIECES[0]}",
}
WHERE = {  # (prod's keys, more top-level keys, the key named) of a config holding URL at that key
    "base_url": (lambda url: ({"base_url": url}, {}), "candidates[0].base_url"),
    "base_urls": (
        lambda url: ({"base_urls": ["http://127.0.0.1:7/v1", url]}, {}),
        "candidates[0].base_urls[1]",
    ),
    "judge.endpoint": (
        lambda url: (
            {"base_url": "http://127.0.0.1:7/v1"},
            {"judge": {"endpoint": {"base_url": url, "model": "judge"}}},
        ),
        "judge.endpoint.base_url",
    ),
    "report.mlflow.tracking_uri": (
        lambda url: (
            {"base_url": "http://127.0.0.1:7/v1"},
            {"report": {"mlflow": {"tracking_uri": url}}},
        ),
        "report.mlflow.tracking_uri",
    ),
}


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("url", IN_URLS.values(), ids=IN_URLS.keys())
def test_a_url_with_a_user_or_password_is_refused_at_plan_time(
    project: Project, where: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`harness check` and `compare` exit 2 naming file:line, the key and the fix, before anything
    is written; no piece of the password shows."""
    config, key = WHERE[where]
    prod, extra = config(url)
    path = endpoints_project(project, prod, **extra)
    line = next(
        i for i, text in enumerate(path.read_text().splitlines(), start=1) if PIECES[0] in text
    )
    assert project.run(command="check")[0] == 2
    checked = capsys.readouterr()
    assert project.run()[0] == 2
    compared = capsys.readouterr()
    for out in (checked.err, compared.err):
        assert f"{path}:{line}: {key}: " in out, out
        fixes = ("env:NAME", "percent-encode", "MLFLOW_TRACKING_PASSWORD")
        assert "fix: " in out and any(fix in out for fix in fixes), out
    assert (
        leaks(
            forms("alice", PASSWORD),
            [checked.out + checked.err, compared.out + compared.err],
            project.root / "reports",
        )
        == []
    )
    assert not (project.root / "reports").exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/v1",
        "http://127.0.0.1:0/v1",
        "http://127.0.0.1]/v1",
        "http://[::1/v1",
        "not a url",
    ],
)
def test_a_url_that_does_not_parse_is_refused_at_plan_time(
    project: Project, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not left to fail at run time, nor to crash the cache identity (which reads the port)."""
    endpoints_project(project, {"base_url": url})
    assert project.run(command="check")[0] == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "candidates[0].base_url: " in err
        and "does not parse as a URL" in err
        and "fix: write scheme://" in err
    )


def test_every_form_of_every_credential_a_run_sends_is_redacted(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """prod's URL, user and password percent-encoded, is read from a variable; its server answers
    every request with a reply that is no answer, echoing the `Authorization: Basic
    base64(user:password)` it was sent. next's server echoes `Bearer KEY` in each answer. No form of
    either shows in any output, any file the run writes (run folder, results.json, report.html, the
    store's file) or any row of any table; the error rows name prod's server without its
    credentials; the run records the variable's name, not the URL."""
    with chat_servers(["--echo-auth", "malformed"], ["--echo-auth", "answer"]) as (
        prod_url,
        next_url,
    ):
        monkeypatch.setenv(
            "PROD_URL", prod_url.replace("http://", f"http://alice:{quote(PASSWORD, safe='')}@")
        )
        monkeypatch.setenv("NEXT_KEY", KEY)
        endpoints_project(
            project, {"base_url": "env:PROD_URL"}, {"base_url": next_url, "api_key_env": "NEXT_KEY"}
        )
        code, results = project.run("--no-cache")
    logs = capsys.readouterr()
    assert code == 2 and results is not None and results["verdict"]["decision"] == "error"
    assert leaks([*forms("alice", PASSWORD), KEY], [logs.out + logs.err], project.root) == []
    with sqlite3.connect(project.store) as db:
        rows = db.execute("SELECT candidate, error, output FROM responses").fetchall()
        meta = db.execute("SELECT meta_json FROM runs").fetchone()[0]
    errors = [error for candidate, error, _ in rows if candidate == "prod"]
    assert len(errors) == 4 and all(
        prod_url in e and "alice" not in e and '"Basic ***"' in e for e in errors
    )
    assert all(
        output.endswith("(Bearer ***)") for candidate, _, output in rows if candidate == "next"
    )
    assert '"env:PROD_URL"' in meta


def test_a_url_variable_that_is_not_set_is_named(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoints_project(project, {"base_url": "env:HARNESS_TEST_UNSET_URL"})
    assert project.run(command="check")[0] == 0  # read when the run calls it, as an API key is
    code, _ = project.run("--no-cache")
    err = capsys.readouterr().err
    assert (
        code == 2 and "base_url names the variable HARNESS_TEST_UNSET_URL, which is not set" in err
    )


def test_every_form_of_a_secret_is_redacted() -> None:
    """As sent and as echoed: percent-encoded, JSON-escaped (with and without ASCII escapes), and
    base64 of a URL's `user:password`; a value padded in the environment is redacted as sent and as
    meant."""
    secret = 'pä"ss w/rd+1'
    echoed = [
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        'pä\\"ss w/rd+1',
        'p\\u00e4\\"ss w/rd+1',
    ]
    for text in echoed:
        assert redact(f"<{text}>", [f" {secret}\n"]) == "<***>", text
    url = f"http://bob:{quote(secret, safe='')}@h/v1"
    basic = base64.b64encode(f"bob:{secret}".encode()).decode()
    assert redact(f"Authorization: Basic {basic}", url_secrets(url)) == "Authorization: Basic ***"
    assert url_secrets("http://h/v1") == set() and url_secrets(None) == set()


# --- item 6: passwords in messages ---------------------------------------------------------------------------


@pytest.fixture
def odd_login(postgres: Cluster) -> tuple[str, str]:
    """A role whose password holds `@`, a space and `#`, owning a new store: (user, its URL,
    percent-encoded)."""
    user, database = f"odd{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f'CREATE DATABASE "{database}" OWNER {user}')
    url = f"postgresql://{user}:{quote(PASSWORD, safe='')}@127.0.0.1:{postgres.port}/{database}"
    Store(parse(url, "the test")).close()
    return user, url


@pytest.mark.parametrize("given", ["--store", "HARNESS_STORE"])
def test_a_missing_run_names_the_store_without_its_password(
    postgres: Cluster,
    odd_login: tuple[str, str],
    given: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`harness report MISSING` names the store as every message does: its URL with the password as ***, from
    --store and from HARNESS_STORE alike (which said "in None"); the percent-encoded password is the one the
    server takes."""
    user, url = odd_login
    monkeypatch.chdir(tmp_path)
    if given == "HARNESS_STORE":
        monkeypatch.setenv("HARNESS_STORE", url)
    assert main(["report", "MISSING", *(["--store", url] if given == "--store" else [])]) == 2
    err = capsys.readouterr().err
    assert f"no run 'MISSING' in postgresql://{user}:***@127.0.0.1:{postgres.port}/" in " ".join(
        err.split()
    )
    assert leaks(forms(user, PASSWORD), [err], tmp_path) == []


UNENCODED = {
    "@": f"{PIECES[0]}@{PIECES[1]}",
    "@, space and #": PASSWORD,
    "a space, in a URL that does not parse": f"{PIECES[0]} {PIECES[1]}",
    "#, in a URL that does not parse": f"{PIECES[0]}#{PIECES[1]}",
}


@pytest.mark.parametrize("given", ["--store", "HARNESS_STORE"])
@pytest.mark.parametrize("password", UNENCODED.values(), ids=UNENCODED.keys())
def test_a_store_url_that_does_not_parse_is_shown_by_its_scheme(
    password: str,
    given: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unencoded `@` leaves the rest of the password where the host belongs, and a URL that does
    not parse may hold a password anywhere: refused before any connection, shown as
    `postgresql://...`, with the fix.
    """
    port = "5432" if "@" in password else "notaport"
    url = f"postgresql://{USER}:{password}@127.0.0.1:{port}/db"
    monkeypatch.chdir(tmp_path)
    if given == "HARNESS_STORE":
        monkeypatch.setenv("HARNESS_STORE", url)
    assert main(["report", "MISSING", *(["--store", url] if given == "--store" else [])]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "postgresql://... does not parse as a URL" in err and "percent-encode" in err
    assert leaks(forms(USER, password), [err], tmp_path) == []


@pytest.mark.parametrize(
    "password", [f"{PIECES[0]} {PIECES[1]}", f"{PIECES[0]}#{PIECES[1]}", PASSWORD]
)
def test_a_password_in_the_configs_store_url_is_refused(
    project: Project, password: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """However it is written (a space slipped past the old rule), and also when --store overrides
    the config's store, which then wrote the config, password and all, to results.json and the
    store."""
    path = endpoints_project(
        project,
        {"base_url": "http://127.0.0.1:9/v1"},
        store={"url": f"postgresql://u:{password}@127.0.0.1:9/db"},
    )
    code, results = project.run("--store", str(project.root / "other.sqlite"))
    err = capsys.readouterr().err
    assert code == 2 and results is None and f"{path}:" in err and "store" in err
    assert "url_env" in err or "percent-encode" in err
    assert leaks(forms("u", password), [err], project.root / "reports") == []
    assert not (project.root / "other.sqlite").exists()


# --- item 10, the fleet half: one server spelt two ways ------------------------------------------------------

SPELLINGS = [
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/"),
    ("http://127.0.0.1:8000/v1", "HTTP://127.0.0.1:8000/v1"),
    ("https://api.example.com/v1", "https://API.Example.COM/v1/"),
    ("http://api.example.com/v1", "http://api.example.com:80/v1"),
    ("https://api.example.com/v1", "https://api.example.com:443/v1"),
]


@pytest.mark.parametrize(("first", "again"), SPELLINGS)
def test_one_server_spelt_two_ways_is_listed_once(
    project: Project, first: str, again: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Listed twice, one server would take twice its max_concurrency."""
    endpoints_project(project, {"base_urls": [first, "http://127.0.0.1:7/v1", again]})
    assert project.run(command="check")[0] == 2
    assert f"{first} listed more than once: each server once" in " ".join(
        capsys.readouterr().err.split()
    )
    assert (
        EndpointSpec(model="m", base_url=first).identity
        == EndpointSpec(model="m", base_url=again).identity
    )


@pytest.mark.parametrize(
    "urls",
    [
        ["http://127.0.0.1:8000/v1"],
        ["https://b.example/v1", "http://127.0.0.1:8000/v1"],
        ["https://api.example.com:8443/v1?api-version=2024-06-01"],
    ],
)
def test_the_cache_identity_of_a_url_already_written_one_way_is_unchanged(urls: list[str]) -> None:
    """The identity keys cached answers: what was already normal keys them as before."""
    spec = (
        EndpointSpec(model="m", base_urls=urls)
        if len(urls) > 1
        else EndpointSpec(model="m", base_url=urls[0])
    )
    before = hashlib.sha256(f"openai|{','.join(sorted(urls))}|m".encode()).hexdigest()
    assert spec.identity == before
