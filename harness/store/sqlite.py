"""The embedded store: one SQLite file beside the run folders, in WAL mode so that a reader (a report, another
run) looks while a run writes."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from harness.core.errors import HarnessError
from harness.store.backends import TIMEOUT_ENV, Backend, backend
from harness.store.location import Location

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


def _connect(location: Location, timeout: float) -> Engine:
    engine = create_engine(location.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                           connect_args={"timeout": timeout})

    @event.listens_for(engine, "connect")
    def _wal(dbapi: sqlite3.Connection, record: Any) -> None:
        dbapi.execute("PRAGMA journal_mode=WAL")
        dbapi.execute("PRAGMA synchronous=NORMAL")

    return engine


def _explain(exc: Exception, location: Location, timeout: float) -> HarnessError:
    """One line naming the store, what is wrong with it and SQLite's own words, then the fix."""
    code = "_".join((getattr(exc, "sqlite_errorname", None) or "").split("_")[:2])
    problem, fix = _PROBLEMS.get(code, ("failed", "check {path}, or move it away to start a new store"))
    return HarnessError(f"run store {location.shown} {problem.format(timeout=timeout)} (SQLite: {exc})\n"
                        f"  fix: {fix.format(path=location.shown)}")


def _nothing(conn: Connection) -> None:
    """BEGIN IMMEDIATE already holds the file's write lock."""


@backend("sqlite")
def _sqlite() -> Backend:
    return Backend(connect=_connect, begin="BEGIN IMMEDIATE", snapshot="BEGIN", serialise=_nothing, insert=insert,
                   explain=_explain)
