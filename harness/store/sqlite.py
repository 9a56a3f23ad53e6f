"""The embedded store: one SQLite file beside the run folders, in WAL mode so that a reader (a
report, another run) looks while a run writes."""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Hashable

from sqlalchemy import create_engine, event, func
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import ColumnElement

from harness.store.backends import TIMEOUT_ENV, Backend
from harness.store.location import Location

_WRITABLE = (
    "make {path} and its folder writable by this user (SQLite writes {path}-wal and {path}-shm"
    " beside it), or pass --store (or output_dir) a path this user can write"
)
# SQLite's primary result code -> (what is wrong with the store, the fix), so an error names the
# store and what to do rather than only SQLite's words.
_PROBLEMS = {
    "SQLITE_BUSY": (
        "is locked by another process (a run still writing?) and stayed locked for {timeout:g}s",
        f"wait for that process to end, or set {TIMEOUT_ENV}=SECONDS to wait longer",
    ),
    "SQLITE_NOTADB": (
        "is not a run store (not an SQLite database)",
        "pass --store a harness.sqlite file, or move {path} away: a new store is made in its place",
    ),
    "SQLITE_CORRUPT": (
        "is damaged",
        (
            "restore {path} from a backup, or move it away to start a new store "
            "(`sqlite3 {path} .recover` saves what it can)"
        ),
    ),
    "SQLITE_READONLY": ("cannot be written", _WRITABLE),
    "SQLITE_CANTOPEN": (
        "cannot be opened",
        "check that {path} is a file, not a folder; " + _WRITABLE,
    ),
    "SQLITE_PERM": ("cannot be opened", _WRITABLE),
    "SQLITE_FULL": (
        "cannot grow: the disk is full",
        "free space on that disk, or pass --store a path on another",
    ),
    "SQLITE_IOERR": (
        "cannot be read or written (an I/O error)",
        "check the disk, or pass --store another path",
    ),
}
_PROBLEMS["SQLITE_LOCKED"] = _PROBLEMS["SQLITE_BUSY"]


def _connect(location: Location, timeout: float, read_only: bool) -> Engine:
    """Read-only: the file opened with mode=ro, which SQLite keeps from being written (and from
    being made, when it is absent); a store in WAL mode reads so too."""
    assert location.path is not None
    if read_only:
        uri = f"{location.path.absolute().as_uri()}?mode=ro"
        engine = create_engine(
            "sqlite://",
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            creator=lambda: sqlite3.connect(uri, uri=True, timeout=timeout),
        )
    else:
        engine = create_engine(
            location.url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={"timeout": timeout},
        )

    @event.listens_for(engine, "connect")
    def _durable(dbapi: sqlite3.Connection, record: Any) -> None:
        dbapi.execute("PRAGMA synchronous=NORMAL")

    return engine


def _wal(conn: Connection) -> None:
    """WAL mode, so that a reader looks while a run writes: set in the file itself, so only once the
    file is known to be a store (or new), never in another program's database."""
    conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def _explain(exc: Exception, location: Location, timeout: float) -> tuple[str, str]:
    """One line naming the store, what is wrong with it and SQLite's own words; the fix."""
    code = "_".join((getattr(exc, "sqlite_errorname", None) or "").split("_")[:2])
    problem, fix = _PROBLEMS.get(
        code, ("failed", "check {path}, or move it away to start a new store")
    )
    return (
        f"run store {location.shown} {problem.format(timeout=timeout)} (SQLite: {exc})",
        fix.format(path=location.shown),
    )


def _identity(location: Location, engine: Engine) -> Hashable:
    """The file's device and inode, whatever path (relative, absolute, through a link) names it; a
    file that is not there yet is no other store."""
    assert location.path is not None
    try:
        found = os.stat(location.path)
    except OSError:
        return ("absent", str(location.path.absolute()))
    return (found.st_dev, found.st_ino)


def _set_key(column: ColumnElement, key: str, value: str) -> ColumnElement:
    """json_set keeps every other key's text as it was, numbers digit for digit, and a new key last."""
    return func.json_set(func.coalesce(column, "{}"), f'$."{key}"', func.json(value))


def _nothing(conn: Connection) -> None:
    """BEGIN IMMEDIATE already holds the file's write lock."""


BACKEND = Backend(
    connect=_connect,
    begin="BEGIN IMMEDIATE",
    snapshot="BEGIN",
    prepare=_wal,
    serialise=_nothing,
    insert=insert,
    explain=_explain,
    identity=_identity,
    set_key=_set_key,
)
