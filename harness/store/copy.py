"""`harness store copy FROM TO`: runs, pins, history, cached answers and judge checks from one store
to another (SQLite to PostgreSQL and back), table by table in key order.

Idempotent: a row is put by its key, so copying twice writes each row once, and a run copied again
after it finished replaces its earlier copy. Each batch lands in one transaction; a copy that stops
is simply run again. The source is only read (opened read-only, never upgraded); a failure names the
side it happened on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import func, select

from harness.core.errors import HarnessError
from harness.store.location import Location
from harness.store.names import MAX_RUN_ID, plain
from harness.store.schema import DATA
from harness.store.store import Store, identity

BATCH = 500


@dataclass
class Copied:
    """Rows copied per table; runs left behind because their ids are not plain names (see
    names.plain), with every row of theirs; rows per table in the target afterwards."""

    rows: dict[str, int] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)
    there: dict[str, int] = field(default_factory=dict)


def copy_between(
    source: Location, target: Location, progress: Callable[[str, int], None] | None = None
) -> Copied:
    """Every row of `source` put into `target` (made or upgraded when needed), refused when the two
    name one store; `progress(table, rows so far)` after each batch."""
    with Store(source, read_only=True) as origin:
        refuse_same(origin, target)
        with Store(target) as into:
            copied = copy_store(origin, into, progress)
            copied.there = counts(into)
    return copied


def refuse_same(source: Store, target: Location) -> None:
    """Before the target is opened (which may make or upgrade it): one store under two spellings (a
    relative and an absolute path, a link, a host's name and its address) is refused."""
    if (
        target.engine == source.location.engine
        and identity(target, source.timeout) == source.identity()
    ):
        raise HarnessError(
            f"the store copy's source and target are one store ({source.where} and"
            f" {target.shown})\n  fix: name two different stores"
        )


def copy_store(
    source: Store, target: Store, progress: Callable[[str, int], None] | None = None
) -> Copied:
    """`source`'s rows put into `target` (both open; see copy_between). A failure is named by its
    side: a write is explained as the target's where it fails, so whatever else fails is the
    source's."""
    copied = Copied()
    # One consistent view of a store that runs may be writing.
    with source.explained(), source.transaction(snapshot=True):
        for table in DATA:
            done = 0
            for batch in (
                source.conn.execute(
                    select(table)
                    .order_by(*table.primary_key.columns)
                    .execution_options(yield_per=BATCH)
                )
                .mappings()
                .partitions()
            ):
                rows = [dict(row) for row in batch if "run_id" not in row or plain(row["run_id"])]
                copied.skipped |= {
                    row["run_id"][:MAX_RUN_ID]
                    for row in batch
                    if "run_id" in row and not plain(row["run_id"])
                }
                if rows:
                    with target.explained(), target.transaction():
                        target.conn.execute(target.upsert[table.name], rows)
                done += len(rows)
                if progress is not None:
                    progress(table.name, done)
            copied.rows[table.name] = done
    return copied


def counts(store: Store) -> dict[str, int]:
    """Rows per table, for `harness store info` and to check a copy."""
    return {
        t.name: store.conn.execute(select(func.count()).select_from(t)).scalar_one() for t in DATA
    }
