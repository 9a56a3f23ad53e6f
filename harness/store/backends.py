"""What differs between the engines a store runs on, one Backend each, named once in BACKENDS;
everything else (tables, statements, upgrades, copies) is written once against SQLAlchemy Core.

Every connection is in autocommit, as a store has always been: a row is durable once its statement
returns, and a reader never holds a snapshot open. `Store.transaction` opens a real one with `begin`
where rows must land together.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Hashable, Iterator

from sqlalchemy import Table
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement

from harness.core import plugins
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.store.location import Location

TIMEOUT_ENV = "HARNESS_STORE_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Backend:
    """`connect`: the engine for a location, waiting up to `timeout` s for locks, and, when
    `read_only`, one the database itself keeps from writing (a command that only reads can change
    nothing); `begin`: the statement that opens a write transaction (holding the write lock at once,
    so two writers never deadlock on an upgrade); `snapshot`: the statement that opens a read-only
    transaction seeing one state of the store throughout; `prepare`: run on a writing command's
    connection once the database is known to be a store or empty, before anything is written;
    `serialise`: run first in the transaction that upgrades the schema, so concurrent first opens
    upgrade once; `insert`: the dialect's insert, whose on_conflict_* both engines share; `explain`:
    a driver error as (one line naming the store and what is wrong, the fix); `identity`: which
    store a location names however it is spelled (a path relative or through a link, a host by name
    or by address), read through its engine without writing; `set_key`: a JSON text column with one
    top-level key set to a JSON text, computed by the database (one statement, so two writers of
    different keys never undo each other)."""

    connect: Callable[["Location", float, bool], Engine]
    begin: str
    snapshot: str
    prepare: Callable[[Connection], None]
    serialise: Callable[[Connection], None]
    insert: Callable
    explain: Callable[[Exception, "Location", float], tuple[str, str]]
    identity: Callable[["Location", Engine], Hashable]
    set_key: Callable[[ColumnElement, str, str], ColumnElement]


# Every backend, by the SQLAlchemy backend name of a store's URL: a store on SQLite imports no
# PostgreSQL dialect.
BACKENDS: plugins.Table[Backend] = plugins.Table(
    None,
    {
        "sqlite": "harness.store.sqlite:BACKEND",
        "postgresql": "harness.store.postgres:BACKEND",
    },
)


def backend_for(location: "Location") -> Backend:
    return BACKENDS.load(location.engine)


def upsert_statement(backend: Backend, table: Table) -> Insert:
    """INSERT that replaces the row with the same key: a row is written once however often it is
    put, and a re-put (a resumed run, a copy run twice) leaves it as the last put made it, columns
    not given NULL.
    """
    statement = backend.insert(table)
    key = {c.name for c in table.primary_key}
    return statement.on_conflict_do_update(
        index_elements=sorted(key),
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in key},
    )


@contextmanager
def transaction(conn: Connection, opening: str) -> Iterator[None]:
    """A transaction opened with `opening` (the backend's begin or snapshot) on an autocommit
    connection."""
    conn.exec_driver_sql(opening)
    try:
        yield
    except BaseException:
        # a lost connection has rolled back already; the first error is the news
        if not conn.invalidated:
            with suppress(DBAPIError):
                conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


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
        raise HarnessError(
            f"{TIMEOUT_ENV}={raw!r} is not a number of seconds\n  fix: set it to how long to wait "
            f"for a locked store (e.g. {DEFAULT_TIMEOUT_S:g}), or unset it"
        )
    return value
