"""`harness store copy FROM TO`: runs, pins, history, cached answers and judge checks from one store to another
(SQLite to PostgreSQL and back), table by table in key order.

Idempotent: a row is put by its key, so copying twice writes each row once, and a run copied again after it
finished replaces its earlier copy. Each batch lands in one transaction; a copy that stops is simply run again.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import func, select

from harness.core.errors import HarnessError
from harness.store.schema import DATA
from harness.store.store import Store

BATCH = 500


def copy_store(source: Store, target: Store, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Rows copied per table; `progress(table, rows so far)` after each batch."""
    if source.where == target.where:
        raise HarnessError(f"the store copy's source and target are both {source.where}\n"
                           "  fix: name two different stores")
    copied = {}
    with source.transaction(snapshot=True):  # one consistent view of a store that runs may be writing
        for table in DATA:
            rows = source.conn.execute(select(table).order_by(*table.primary_key.columns)
                                       .execution_options(yield_per=BATCH))
            done = 0
            for batch in rows.mappings().partitions():
                with target.transaction():
                    target.conn.execute(target.upsert[table.name], [dict(row) for row in batch])
                done += len(batch)
                if progress is not None:
                    progress(table.name, done)
            copied[table.name] = done
    return copied


def counts(store: Store) -> dict[str, int]:
    """Rows per table, for `harness store info` and to check a copy."""
    return {t.name: store.conn.execute(select(func.count()).select_from(t)).scalar_one() for t in DATA}
