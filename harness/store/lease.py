"""One process at a time works on a run. `harness compare` (or drift) holds its run from before the
run is begun, `--resume RUN` from before it reads the run, until the command ends; a second command
on the same run is refused while the first lives, naming it, instead of both writing one run's rows
and one report folder.

The hold is a lock that whoever keeps it lets go of when the process ends, however it ends (SIGKILL
too), so nothing is ever stale and nothing needs a heartbeat: on SQLite the operating system's lock
(flock) on a file beside the store, whose text names the holder; on PostgreSQL, which CI runners on
several machines share, a session-level advisory lock on the store's own connection, which the
server lets go of when the connection closes, and whose holder names itself in its connection's
application_name (pg_stat_activity shows it to the refused one, and to whoever looks at the server).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from harness.core.errors import HarnessError
from harness.store.store import Store, now

LABEL = "harness"  # a holder's label starts with it
NAME_BYTES = 63  # PostgreSQL keeps this much of an application_name (NAMEDATALEN - 1)


@dataclass(frozen=True)
class Holder:
    """Who holds a run: the process, its machine and since when (UTC)."""

    pid: int
    host: str
    since: str

    @classmethod
    def this_process(cls) -> "Holder":
        return cls(os.getpid(), socket.gethostname(), now())

    @property
    def label(self) -> str:
        """`harness PID SINCE HOST`, the host last, so that a name cut to NAME_BYTES loses only its
        end."""
        return f"{LABEL} {self.pid} {self.since} {self.host}"[:NAME_BYTES]

    @classmethod
    def read(cls, label: str) -> "Holder | None":
        """The holder a label names; None for anything else (a connection of another program, an
        empty file)."""
        parts = label.split(" ", 3)
        if len(parts) != 4 or parts[0] != LABEL or not parts[1].isdigit():
            return None
        return cls(int(parts[1]), parts[3], parts[2])


def refused(run_id: str, holder: Holder | None, where: str) -> HarnessError:
    who = f"pid {holder.pid} on {holder.host} since {holder.since}" if holder else "another process"
    stop = f"stop it (kill {holder.pid} on {holder.host})" if holder else "stop it"
    return HarnessError(
        f"run {run_id} is in use by {who}, in {where}\n"
        f"  fix: wait for it to end (resume the run then with --resume {run_id} if it did not "
        f"finish), or {stop}"
    )


def held(store: Store, run_id: str) -> AbstractContextManager[None]:
    """`run_id` held by this process until the block ends; a HarnessError naming the holder when
    another process holds it."""
    return HOLDS[store.location.engine](store, run_id)


@contextmanager
def _flocked(store: Store, run_id: str) -> Iterator[None]:
    """SQLite: an exclusive flock on the run's lock file beside the store, which the file names the
    holder in."""
    assert store.location.path is not None  # a SQLite store is a file
    path = lock_file(store.location.path, run_id)
    handle = _locked(path, run_id, store.where)
    try:
        os.ftruncate(handle, 0)
        os.write(handle, Holder.this_process().label.encode())
        yield
    finally:
        # removed while still held: whoever opened it meanwhile sees it gone (_locked)
        with suppress(OSError):
            path.unlink()
        os.close(handle)


def lock_file(store: Path, run_id: str) -> Path:
    """Beside the store, named by a digest of the run id (which need not be a file name)."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:16]
    return store.with_name(f".{store.name}.{digest}.lock")


def _locked(path: Path, run_id: str, where: str) -> int:
    """The lock file's descriptor, flocked; a HarnessError naming the holder when another process
    has it. A file its last holder removed between our open and our lock is no lock any more: then
    the one in its place is.
    """
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Holder.read(os.pread(handle, NAME_BYTES * 4, 0).decode(errors="replace"))
            os.close(handle)
            raise refused(run_id, holder, where) from None
        except BaseException:
            os.close(handle)
            raise
        if _same_file(handle, path):
            return handle
        os.close(handle)


def _same_file(handle: int, path: Path) -> bool:
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(handle)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


@contextmanager
def _advisory(store: Store, run_id: str) -> Iterator[None]:
    """PostgreSQL: a session advisory lock on the run id's digest, taken on the store's connection,
    which is labeled with the holder first (so whoever is refused can name it). A driver error
    leaves through the Store, which explains it."""
    conn, key = store.conn, advisory_key(run_id)
    _label(conn, Holder.this_process().label)
    if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
        holder = _holder(conn, key)
        conn.execute(text("RESET application_name"))  # the one it connected with
        raise refused(run_id, holder, store.where)
    try:
        yield
    finally:
        with suppress(DBAPIError):  # a connection that is gone holds nothing any more
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.execute(text("RESET application_name"))


def advisory_key(run_id: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"harness run {run_id}".encode()).digest()[:8], "big", signed=True
    )


def _label(conn: Connection, label: str) -> None:
    conn.execute(text("SELECT set_config('application_name', :label, false)"), {"label": label})


def _holder(conn: Connection, key: int) -> Holder | None:
    """Who holds the advisory lock `key` in this database: pg_locks shows a bigint key as its high
    and low halves."""
    label = conn.execute(
        text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid = :high"
            " AND l.objid = :low AND l.database = (SELECT oid FROM pg_database WHERE datname ="
            " current_database())"
        ),
        {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF},
    ).scalar()
    return Holder.read(label or "")


HOLDS: dict[str, Callable[[Store, str], AbstractContextManager[None]]] = {
    "sqlite": _flocked,
    "postgresql": _advisory,
}
