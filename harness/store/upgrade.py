"""A store's schema version, and the upgrade in place that brings an older store to this harness's.

An upgrade runs in one write transaction, serialised among processes (several CI runners opening a new shared
database at once upgrade it once); a store newer than this harness is refused, never written.
"""

from __future__ import annotations

from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection

from harness.core.errors import HarnessError
from harness.store.backends import Backend, transaction, upsert_statement
from harness.store.schema import ADDED_IN_V1, SCHEMA_VERSION, VERSION_KEY, metadata, runs, store_info


def stored_version(conn: Connection) -> int:
    """0: an empty database; 1: a store from before stores had versions; else what store_info records."""
    names = set(inspect(conn).get_table_names())
    if store_info.name in names:
        value = conn.execute(select(store_info.c.value).where(store_info.c.key == VERSION_KEY)).scalar()
        return int(value) if value is not None else 1
    return 1 if runs.name in names else 0


def upgrade(conn: Connection, backend: Backend, where: str) -> int:
    """The store at SCHEMA_VERSION; returns the version it had. Reads only, when it is already there."""
    had = _readable(where, stored_version(conn))
    if had == SCHEMA_VERSION:
        return had
    with transaction(conn, backend.begin):
        backend.serialise(conn)
        had = _readable(where, stored_version(conn))  # another process may have upgraded it meanwhile
        if had < SCHEMA_VERSION:
            metadata.create_all(conn)
            if had == 1:
                _add_columns(conn)
            conn.execute(upsert_statement(backend, store_info), {"key": VERSION_KEY, "value": str(SCHEMA_VERSION)})
    return had


def _readable(where: str, version: int) -> int:
    if version > SCHEMA_VERSION:
        raise HarnessError(f"run store {where} was written by a newer harness (store schema {version}; this "
                           f"harness reads up to {SCHEMA_VERSION}), and is left as it is\n  fix: upgrade harness on "
                           "this machine (every runner sharing a store needs the newer one), or point --store or "
                           "HARNESS_STORE at another store")
    return version


def _add_columns(conn: Connection) -> None:
    """Columns that the oldest stores lack; their old rows read as NULL there."""
    inspector = inspect(conn)
    for table, column in ADDED_IN_V1:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            kind = metadata.tables[table].c[column].type.compile(conn.dialect)
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
