"""What a database holds, as this harness sees it, and the upgrade in place that brings an older
store to this harness's schema.

A store is recognised by its own marks, never by one table's name: `store_info` recording a version,
with every table of that version and exactly its columns; or, for a store written before stores had
versions, the tables and columns that harness wrote then. Anything else (a database of another
program that happens to have a `runs` table, a store whose version is not a whole number this
harness knows) is refused with what was found, and left as it is. Only an empty database (or a new
SQLite file) becomes a new store.

An upgrade runs in one write transaction, serialised among processes (several CI runners opening a
new shared database at once upgrade it once), and only for a command that writes: a command that
only reads never changes a store. It reads an older store as it is when that store has every column
this harness reads, and otherwise refuses and names `harness store upgrade`; a store newer than this
harness is refused, never written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Text, cast, inspect, select, text
from sqlalchemy.engine import Connection

from harness.core.errors import HarnessError
from harness.store.backends import Backend, transaction, upsert_statement
from harness.store.schema import ADDED_IN_V1, SCHEMA_VERSION, VERSION_KEY, metadata, store_info

# A store from before versions: what the oldest harness that a store can be upgraded from wrote.
# judge_checks and the ADDED_IN_V1 columns came later, so such a store may lack them.
ADDED_IN_V1_TABLES = frozenset({"judge_checks"})
V1_TABLES = frozenset(metadata.tables) - ADDED_IN_V1_TABLES - {store_info.name}
_WHOLE = re.compile(r"[0-9]{1,9}")
_SHOWN_TABLES = 20


@dataclass(frozen=True)
class Found:
    """What a database holds: every table's name, and the columns of each table whose name is a
    store table's."""

    names: list[str]
    columns: dict[str, set[str]]


def survey(conn: Connection) -> Found:
    inspector = inspect(conn)
    names = sorted(inspector.get_table_names())
    return Found(
        names,
        {
            name: {c["name"] for c in inspector.get_columns(name)}
            for name in names
            if name in metadata.tables
        },
    )


def stored_version(conn: Connection, where: str, found: Found) -> int:
    """0: an empty database; 1: a store from before stores had versions; else what its store_info
    records. Refuses anything that is not a store of a version this harness reads, naming what it
    found."""
    if not found.names:
        return 0
    version = _recorded(conn, where, found)
    problems = _unlike(version, found.columns)
    if problems:
        raise _not_a_store(where, found.names, problems)
    return version


def upgrade(conn: Connection, backend: Backend, where: str, writable: bool) -> int:
    """The version the store had. A writing command's store is prepared (backend.prepare) and
    brought to SCHEMA_VERSION (made, in an empty database); a reading command's is read as it is, or
    refused when it is empty or lacks what this harness reads. Nothing but the preparation is
    written to a store already at SCHEMA_VERSION."""
    found = survey(conn)
    had = stored_version(conn, where, found)
    if not writable:
        return had if had == SCHEMA_VERSION else _read_as_is(where, had, found)
    backend.prepare(conn)
    if had == SCHEMA_VERSION:
        return had
    with transaction(conn, backend.begin):
        backend.serialise(conn)
        had = stored_version(
            conn, where, survey(conn)
        )  # another process may have made or upgraded it meanwhile
        if had < SCHEMA_VERSION:
            metadata.create_all(conn)
            if had == 1:
                _add_columns(conn)
            conn.execute(
                upsert_statement(backend, store_info),
                {"key": VERSION_KEY, "value": str(SCHEMA_VERSION)},
            )
    return had


def _recorded(conn: Connection, where: str, found: Found) -> int:
    """The version store_info records (1 when there is no store_info): a whole number from 2 (the
    first version that recorded itself) up to this harness's, else refused."""
    info = found.columns.get(store_info.name)
    if info is None:
        return 1
    if info != set(store_info.c.keys()):
        raise _not_a_store(where, found.names, _unlike(SCHEMA_VERSION, {store_info.name: info}))
    value = conn.execute(
        select(cast(store_info.c.value, Text)).where(store_info.c.key == VERSION_KEY)
    ).scalar()
    if value is None or not _WHOLE.fullmatch(value.strip()) or int(value) < 2:
        recorded = "no schema_version" if value is None else f"schema_version {value[:40]!r}"
        raise HarnessError(
            f"run store {where} has a store_info table that records {recorded}, which no harness "
            "writes (a version is a whole number from 2 up), and is left as it is\n  fix: point "
            "--store or HARNESS_STORE at another store, or restore this one from a backup"
        )
    if int(value) > SCHEMA_VERSION:
        raise HarnessError(
            f"run store {where} was written by a newer harness (store schema {int(value)}; this"
            f" harness reads up to {SCHEMA_VERSION}), and is left as it is\n  fix: upgrade harness"
            " on this machine (every runner sharing a store needs the newer one), or point --store"
            " or HARNESS_STORE at another store"
        )
    return int(value)


def _unlike(version: int, columns: dict[str, set[str]]) -> list[str]:
    """How the tables found differ from a store's of `version`: tables it must have that are
    missing, and tables of its names whose columns are not its columns (a version-1 store may lack
    what was added later).
    """
    if not columns:
        return ["none of a run store's tables"]
    required = V1_TABLES if version == 1 else frozenset(metadata.tables)
    absent = sorted(required - set(columns))
    problems = [f"no table {', '.join(absent)}"] * bool(absent)
    for name, found in sorted(columns.items()):
        expected = set(metadata.tables[name].c.keys())
        optional = {c for t, c in ADDED_IN_V1 if t == name} if version == 1 else set()
        missing, extra = sorted(expected - optional - found), sorted(found - expected)
        if missing or extra:
            problems.append(
                f"table {name} "
                + " and ".join(
                    [f"lacks {', '.join(missing)}"] * bool(missing)
                    + [f"has {', '.join(extra)}"] * bool(extra)
                )
            )
    return problems


def _not_a_store(where: str, names: list[str], problems: list[str]) -> HarnessError:
    shown = ", ".join(names[:_SHOWN_TABLES]) + (
        f" and {len(names) - _SHOWN_TABLES} more" if len(names) > _SHOWN_TABLES else ""
    )
    return HarnessError(
        f"{where} is not a harness run store ({'; '.join(problems)}; tables found: {shown}), and is"
        " left as it is\n  fix: point --store (or HARNESS_STORE, or the config's `store:`) at a"
        " run store, or at an empty database or a new SQLite path to make one there"
    )


def no_store(where: str, why: str) -> HarnessError:
    """A command that makes no store found none where it was pointed (and made none)."""
    return HarnessError(
        f"no run store in {where} ({why}), and this command makes none\n  fix: pass "
        "--store (or HARNESS_STORE) the store your runs wrote to (a run writes "
        "<output_dir>/harness.sqlite unless its config's `store:` says otherwise)"
    )


def _read_as_is(where: str, version: int, found: Found) -> int:
    if version == 0:
        raise no_store(where, "the database holds no tables")
    missing = [name for name in ADDED_IN_V1_TABLES if name not in found.columns]
    missing += [
        f"{table}.{column}" for table, column in ADDED_IN_V1 if column not in found.columns[table]
    ]
    if missing:
        raise HarnessError(
            f"run store {where} was written by an older harness (store schema {version}) and lacks"
            f" {', '.join(sorted(missing))}, which this one reads; a command that only reads leaves"
            " it as it is\n  fix: upgrade it in place once: harness store upgrade --store STORE"
            " (any writing command, such as compare, upgrades it too), then run this again"
        )
    return version


def _add_columns(conn: Connection) -> None:
    """Columns that the oldest stores lack; their old rows read as NULL there."""
    inspector = inspect(conn)
    for table, column in ADDED_IN_V1:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            kind = metadata.tables[table].c[column].type.compile(conn.dialect)
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
