"""The run store (SQLite): every row lands as it is made, and the response cache lives beside it.

Reports are rendered from here alone, so any stored run can be re-rendered or compared later.
WAL mode lets a reader (a report, another run) look while a run writes.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from harness.core.errors import HarnessError
from harness.core.request import Completion

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, name TEXT, kind TEXT, created_at TEXT, finished_at TEXT, status TEXT,
    config_hash TEXT, config_json TEXT, meta_json TEXT, verdict_json TEXT, against TEXT, reason TEXT
);
CREATE TABLE IF NOT EXISTS pins (
    name TEXT PRIMARY KEY, run_id TEXT NOT NULL, created_at TEXT
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT, candidate TEXT, kind TEXT, json TEXT, PRIMARY KEY (run_id, candidate, kind)
);
CREATE TABLE IF NOT EXISTS cases (
    run_id TEXT, suite TEXT, case_id TEXT, input_json TEXT, reference TEXT, tags_json TEXT, metadata_json TEXT,
    PRIMARY KEY (run_id, suite, case_id)
);
CREATE TABLE IF NOT EXISTS responses (
    run_id TEXT, candidate TEXT, suite TEXT, case_id TEXT, request_json TEXT, output TEXT, error TEXT,
    latency_s REAL, prompt_tokens INTEGER, completion_tokens INTEGER, finish_reason TEXT,
    cached INTEGER, created_at TEXT, context_json TEXT, logliks_json TEXT,
    PRIMARY KEY (run_id, candidate, suite, case_id)
);
CREATE TABLE IF NOT EXISTS scores (
    run_id TEXT, candidate TEXT, suite TEXT, case_id TEXT, metric TEXT, value REAL, passed INTEGER, detail TEXT,
    meta_json TEXT, PRIMARY KEY (run_id, candidate, suite, case_id, metric)
);
CREATE TABLE IF NOT EXISTS timings (
    run_id TEXT, stage TEXT, subject TEXT, seconds REAL, PRIMARY KEY (run_id, stage, subject)
);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY, model_fingerprint TEXT, completion_json TEXT, created_at TEXT
);
CREATE TABLE IF NOT EXISTS judge_checks (
    key TEXT PRIMARY KEY, rubric TEXT, judge TEXT, result_json TEXT, created_at TEXT
);
"""


TIMEOUT_ENV = "HARNESS_STORE_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
_WRITABLE = ("make {path} and its folder writable by this user (SQLite writes {path}-wal and {path}-shm beside "
             "it), or pass --store (or output_dir) a path this user can write")
# SQLite's primary result code -> (what is wrong with the store, the fix), so an error names the store and
# what to do rather than only SQLite's words.
_PROBLEMS = {
    "SQLITE_BUSY": ("is locked by another process (a run still writing?) and stayed locked for {timeout:g}s",
                    f"wait for that process to end, or set {TIMEOUT_ENV}=SECONDS to wait longer"),
    "SQLITE_NOTADB": ("is not a run store (not an SQLite database)",
                      "pass --store a harness.sqlite file, or move {path} away: a new store is made in its place"),
    "SQLITE_CORRUPT": ("is damaged", "restore {path} from a backup, or move it away to start a new store "
                                     "(`sqlite3 {path} .recover` saves what it can)"),
    "SQLITE_READONLY": ("cannot be written", _WRITABLE),
    "SQLITE_CANTOPEN": ("cannot be opened", "check that {path} is a file, not a folder; " + _WRITABLE),
    "SQLITE_PERM": ("cannot be opened", _WRITABLE),
    "SQLITE_FULL": ("cannot grow: the disk is full", "free space on that disk, or pass --store a path on another"),
    "SQLITE_IOERR": ("cannot be read or written (an I/O error)", "check the disk, or pass --store another path"),
}
_PROBLEMS["SQLITE_LOCKED"] = _PROBLEMS["SQLITE_BUSY"]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def lock_timeout() -> float:
    """Seconds to wait for a store another process holds locked: HARNESS_STORE_TIMEOUT, else 30."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise HarnessError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds\n  fix: set it to how long to wait "
                           f"for a locked store (e.g. {DEFAULT_TIMEOUT_S:g}), or unset it")
    return value


def store_error(path: Path, exc: sqlite3.Error, timeout: float) -> HarnessError:
    """One line naming the store, what is wrong with it and SQLite's own words, then the fix."""
    code = "_".join((getattr(exc, "sqlite_errorname", None) or "").split("_")[:2])
    problem, fix = _PROBLEMS.get(code, ("failed", "check {path}, or move it away to start a new store"))
    return HarnessError(f"run store {path} {problem.format(timeout=timeout)} (SQLite: {exc})\n"
                        f"  fix: {fix.format(path=path)}")


class Store:
    def __init__(self, path: Path, timeout: float | None = None) -> None:
        """`timeout`: seconds to wait for a store another process holds locked (default: lock_timeout()). Any
        SQLite error, here or inside `with Store(...)`, is a HarnessError naming the store and the fix."""
        self.path = path
        self.timeout = lock_timeout() if timeout is None else timeout
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"run store {path} cannot be made in {path.parent} ({exc.strerror or exc})\n"
                               f"  fix: pass --store (or output_dir) a path in a folder this user can write "
                               f"({path.parent} must be a folder, or be one that can be made)") from None
        with self._explained():
            self.db = sqlite3.connect(path, timeout=self.timeout, isolation_level=None)
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(SCHEMA)
                self._migrate()
            except sqlite3.Error:
                self.db.close()
                raise

    @contextmanager
    def _explained(self) -> Iterator[None]:
        """SQLite errors inside become store_error: the store's path and a fix."""
        try:
            yield
        except sqlite3.Error as exc:
            raise store_error(self.path, exc, self.timeout) from exc

    def _migrate(self) -> None:
        """Columns added since a store was made; old rows read as NULL there."""
        for table, column in (("responses", "logliks_json"), ("scores", "meta_json"), ("runs", "reason")):
            have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Rows written inside land together or not at all (an answer and its scores, say)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        self.close()
        if isinstance(exc, sqlite3.Error):
            raise store_error(self.path, exc, self.timeout) from exc

    def begin_run(self, run_id: str, name: str, config_hash: str, config: dict, meta: dict, kind: str = "compare",
                  against: str | None = None) -> None:
        self.db.execute("INSERT INTO runs (run_id, name, kind, created_at, status, config_hash, config_json, "
                        "meta_json, "
                        "against) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                        (run_id, name, kind, now(), config_hash, json.dumps(config), json.dumps(meta), against))

    def resume_run(self, run_id: str) -> None:
        self.db.execute("UPDATE runs SET status = 'running', finished_at = NULL, verdict_json = NULL, reason = NULL "
                        "WHERE run_id = ?", (run_id,))

    def answered(self, run_id: str) -> dict[tuple[str, str, str], set[str]]:
        """(candidate, suite, case) answered without error -> the metrics scored for it; a resumed run
        skips the ones whose inline scores are all there."""
        answered: dict[tuple[str, str, str], set[str]] = {
            tuple(r): set() for r in self.db.execute(
                "SELECT candidate, suite, case_id FROM responses WHERE run_id = ? AND error IS NULL", (run_id,))}
        for candidate, suite, case_id, metric in self.db.execute(
                "SELECT candidate, suite, case_id, metric FROM scores WHERE run_id = ?", (run_id,)):
            answered.get((candidate, suite, case_id), set()).add(metric)
        return answered

    def pin(self, name: str, run_id: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO pins VALUES (?, ?, ?)", (name, run_id, now()))

    def pinned(self, name: str) -> str | None:
        row = self.db.execute("SELECT run_id FROM pins WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def put_artifact(self, run_id: str, candidate: str, kind: str, payload: dict) -> None:
        """Per-candidate records beside the scores: training metrics, retrieval settings, ..."""
        self.db.execute("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?)",
                        (run_id, candidate, kind, json.dumps(payload)))

    def artifacts(self, run_id: str) -> list[dict]:
        rows = self.db.execute("SELECT candidate, kind, json FROM artifacts WHERE run_id = ?", (run_id,))
        return [{"candidate": c, "kind": k, **json.loads(j)} for c, k, j in rows]

    def set_meta(self, run_id: str, meta: dict) -> None:
        self.db.execute("UPDATE runs SET meta_json = ? WHERE run_id = ?", (json.dumps(meta), run_id))

    def set_verdict(self, run_id: str, verdict: dict) -> None:
        """The gates' verdict, stored for the reports to be rendered from; the run stays `running` until
        they are written (see finish_run), so no reader takes a verdict without its reports for a finished run."""
        self.db.execute("UPDATE runs SET verdict_json = ? WHERE run_id = ?", (json.dumps(verdict), run_id))

    def finish_run(self, run_id: str, status: str, verdict: dict | None, reason: str | None = None,
                   at: str | None = None) -> None:
        """The run's end: `finished` with its verdict once every report file is written, else `failed` or
        `interrupted` with no verdict and the `reason`. `at`: the time the reports already state."""
        self.db.execute("UPDATE runs SET finished_at = ?, status = ?, verdict_json = ?, reason = ? WHERE run_id = ?",
                        (at or now(), status, json.dumps(verdict) if verdict is not None else None, reason, run_id))

    def put_case(self, run_id: str, suite: str, case_id: str, messages: list[dict], reference: str | None,
                 tags: list[str], metadata: dict | None = None) -> None:
        self.db.execute("INSERT OR REPLACE INTO cases VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (run_id, suite, case_id, json.dumps(messages), reference, json.dumps(tags),
                         json.dumps(metadata or {})))

    def put_response(self, run_id: str, candidate: str, suite: str, case_id: str, request_json: str,
                     completion: Completion, cached: bool, context: list[dict] | None = None) -> None:
        self.db.execute("INSERT OR REPLACE INTO responses (run_id, candidate, suite, case_id, request_json, output, "
                        "error, latency_s, prompt_tokens, completion_tokens, finish_reason, cached, created_at, "
                        "context_json, logliks_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, candidate, suite, case_id, request_json, completion.text, completion.error,
                         completion.latency_s, completion.prompt_tokens, completion.completion_tokens,
                         completion.finish_reason, int(cached), now(),
                         json.dumps(context) if context is not None else None,
                         json.dumps(completion.logliks) if completion.logliks else None))

    def put_score(self, run_id: str, candidate: str, suite: str, case_id: str, metric: str, value: float | None,
                  passed: bool | None, detail: str, meta: dict | None = None) -> None:
        """`meta`: data about the score beside the prose (e.g. {"fallback": true}: not the judge's answer)."""
        self.db.execute("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, candidate, suite, case_id, metric, value, None if passed is None else int(passed),
                         detail, json.dumps(meta) if meta else None))

    def put_timing(self, run_id: str, stage: str, subject: str, seconds: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO timings VALUES (?, ?, ?, ?)", (run_id, stage, subject, seconds))

    def cache_get(self, key: str) -> Completion | None:
        row = self.db.execute("SELECT completion_json FROM cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        fields = json.loads(row[0])
        for name in ("logliks", "top_logprobs"):
            fields[name] = tuple(tuple(pair) for pair in fields.get(name, ()))
        return Completion(**fields)

    def cache_put(self, key: str, model_fingerprint: str, completion: Completion) -> None:
        """Only successful answers are cached: an error must be retried next time, not replayed."""
        if completion.error is None:
            self.db.execute("INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?)",
                        (key, model_fingerprint, json.dumps(asdict(completion)), now()))

    def judge_calibration(self, key: str) -> dict[str, Any] | None:
        """A judge's agreement with a calibration set, as computed before (see judging.calibrate)."""
        row = self.db.execute("SELECT result_json FROM judge_checks WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_judge_calibration(self, key: str, result: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO judge_checks VALUES (?, ?, ?, ?, ?)",
                        (key, result["rubric"], result["judge"], json.dumps(result), now()))

    def run(self, run_id: str) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cur.fetchone()
        if row is None:
            return None
        record = dict(zip([c[0] for c in cur.description], row))
        for key in ("config_json", "meta_json", "verdict_json"):
            record[key.removesuffix("_json")] = json.loads(record.pop(key)) if record[key] else None
        return record

    def runs(self) -> pd.DataFrame:
        """Every run, oldest first; missing values are None (not NaN) so callers can test them plainly."""
        runs = pd.read_sql_query(
            "SELECT run_id, name, kind, created_at, finished_at, status, reason, config_hash, against, "
            "json_extract(verdict_json, '$.decision') AS decision FROM runs ORDER BY created_at, run_id", self.db)
        return runs.astype(object).where(runs.notna(), None)

    def table(self, name: str, run_id: str) -> pd.DataFrame:
        if name not in {"cases", "responses", "scores", "timings"}:
            raise ValueError(name)
        return pd.read_sql_query(f"SELECT * FROM {name} WHERE run_id = ?", self.db, params=(run_id,))
