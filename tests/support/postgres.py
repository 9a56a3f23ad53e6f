"""A throwaway PostgreSQL cluster for the store's tests: Debian's server (installed by
scripts/setup_env.sh), initdb and pg_ctl in a temp folder, on a loopback port, with a password
login, so a test can see whether the password leaks anywhere. PostgreSQL refuses to run as root: as
root, the cluster runs as the `postgres` account the Debian package makes."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

USER = "harness"


def server_bin() -> Path:
    """The newest installed server's bin folder (Debian keeps initdb and pg_ctl off the PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError(
            "PostgreSQL's server is not installed: run `make setup` (scripts/setup_env.sh installs "
            "Debian's postgresql package)"
        )
    return Path(initdb).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self) -> None:
        self.root = Path(
            tempfile.mkdtemp(prefix="harness-pg-")
        )  # not under pytest's root-only folder
        self.password = f"pw-{secrets.token_hex(8)}"
        self.port = free_port()
        self.account = "postgres" if os.geteuid() == 0 else None
        self.bin = server_bin()

    def _run(self, *args: str) -> None:
        subprocess.run(
            args, check=True, capture_output=True, text=True, user=self.account, timeout=120
        )

    def start(self) -> "Cluster":
        (self.root / "pw").write_text(self.password)
        if self.account is not None:
            info = pwd.getpwnam(self.account)
            for path in (self.root, self.root / "pw"):
                os.chown(path, info.pw_uid, info.pw_gid)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.root / "data"),
            "-U",
            USER,
            "--auth=scram-sha-256",
            f"--pwfile={self.root / 'pw'}",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        return self.serve()

    def serve(self) -> "Cluster":
        """The server started on the cluster's data (again, after `halt`)."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def halt(self) -> None:
        """The server shut down as an administrator does (`pg_ctl stop -m fast`: sessions are
        ended), its data kept for `serve`."""
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"
        )

    def stop(self) -> None:
        subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            user=self.account,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, password: str | None = None) -> str:
        return (
            f"postgresql://{USER}:{self.password if password is None else password}@127.0.0.1:{self.port}/"
            f"{database}"
        )

    def create_database(self, name: str) -> str:
        """A new empty database; its URL (with the password)."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
