"""A store on a PostgreSQL server that a team's CI runners share: the same tables, reached over the
network."""

from __future__ import annotations

import hashlib
from typing import Hashable

from sqlalchemy import Text, cast, create_engine, func, literal, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import ColumnElement

from harness.core.credentials import redact
from harness.store.backends import Backend
from harness.store.location import Location

CONNECT_TIMEOUT_S = 10
# Every harness that upgrades a store's schema takes this transaction-scoped lock first
# (pg_advisory_xact_lock).
UPGRADE_LOCK = int.from_bytes(
    hashlib.sha256(b"harness store schema").digest()[:8], "big", signed=True
)
# SQLSTATE (or its class, the first two characters) -> (what is wrong with the store, the fix).
_PROBLEMS = {
    "28P01": (
        "refused the login",
        "check the user and password in the store's URL (or PGPASSWORD / ~/.pgpass)",
    ),
    "28": ("refused the login", "check the user in the store's URL and the server's pg_hba.conf"),
    "3D000": (
        "names a database that does not exist",
        "create it (createdb NAME, or CREATE DATABASE NAME) or fix the URL's /DATABASE",
    ),
    "42501": (
        "may not be read or written by this user",
        (
            "GRANT the user CREATE and USAGE on the database's schema, "
            "and rights on the store's tables"
        ),
    ),
    "55P03": (
        "stayed locked for {timeout:g}s (another run upgrading or writing it?)",
        "wait for that run to end, or set HARNESS_STORE_TIMEOUT=SECONDS to wait longer",
    ),
    "57P01": ("was shut down while in use", "start the server again"),
    "08": ("lost its connection", "check that the server is up and reachable from this machine"),
    "53": (
        "is out of resources (disk, memory or connections)",
        "free them on the server, or raise max_connections",
    ),
}
# A refused connection carries no SQLSTATE (psycopg has only libpq's words): the server's FATAL line
# tells which.
_REFUSED = (
    ("password authentication failed", "28P01"),
    ("authentication failed", "28"),
    ("no pg_hba.conf entry", "28"),
    ("does not exist", "3D000"),
    ("too many connections", "53"),
)
_UNREACHABLE = (
    "cannot be reached",
    (
        "check the URL's host and port, that the server is running and that it accepts "
        "connections from this machine"
    ),
)


def _connect(location: Location, timeout: float, read_only: bool) -> Engine:
    """`lock_timeout`: a run waits for another's lock this long, then fails naming it, instead of
    hanging. Read-only: every transaction of the session is, so the server refuses any write."""
    options = (
        f"-c lock_timeout={int(timeout * 1000)}"
        + " -c default_transaction_read_only=on" * read_only
    )
    return create_engine(
        location.url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "harness",
            "options": options,
        },
    )


def _explain(exc: Exception, location: Location, timeout: float) -> tuple[str, str]:
    """The server's first line of words, with any password taken out, and the fix for its SQLSTATE."""
    said = " ".join(str(exc).split()) or type(exc).__name__
    state = getattr(exc, "sqlstate", None) or next(
        (code for words, code in _REFUSED if words in said), ""
    )
    problem, fix = (
        _PROBLEMS.get(state)
        or _PROBLEMS.get(state[:2])
        or (_UNREACHABLE if not state else ("failed", "see the server's words above, and its log"))
    )
    words = redact(said.split(" [SQL: ")[0], location.secrets)
    return (
        f"run store {location.shown} {problem.format(timeout=timeout)} (PostgreSQL: {words})",
        fix,
    )


def _identity(location: Location, engine: Engine) -> Hashable:
    """The server's system identifier (set by initdb, the same whichever name or address reaches it;
    readable by any user: pg_control_system() is granted to PUBLIC), the database and the schema the
    store's tables are in.
    """
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT system_identifier, current_database(), current_schema() "
                    "FROM pg_control_system()"
                )
            ).one()
        )


def _nothing(conn: Connection) -> None:
    """A server's database has no setting to make before a store is written."""


def _set_key(column: ColumnElement, key: str, value: str) -> ColumnElement:
    """jsonb's || replaces one key (jsonb orders keys its own way; a reader takes the record as a
    mapping)."""
    merged = cast(func.coalesce(column, "{}"), JSONB).op("||")(
        func.jsonb_build_object(key, cast(literal(value, Text), JSONB))
    )  # the text parsed, not sent as a JSON string
    return cast(merged, Text)


def _serialise(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK})


BACKEND = Backend(
    connect=_connect,
    begin="BEGIN",
    snapshot="BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    prepare=_nothing,
    serialise=_serialise,
    insert=insert,
    explain=_explain,
    identity=_identity,
    set_key=_set_key,
)
