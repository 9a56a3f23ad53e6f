"""Fleets of real loopback chat servers (tests/support/chat_server.py), and the rows a fleet run
stored."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from typing import Iterator

from support.paths import SUPPORT
from support.scenarios import Project

SERVER = SUPPORT / "chat_server.py"


@contextmanager
def chat_servers(*options: list[str]) -> Iterator[list[tuple[str, subprocess.Popen]]]:
    """One chat server per options list: (base URL, process), each killed at the end."""
    with ExitStack() as stack:
        out = []
        for argv in options:
            proc = subprocess.Popen(
                [sys.executable, str(SERVER), *argv], stdout=subprocess.PIPE, text=True
            )
            stack.callback(proc.kill)
            out.append((f"http://127.0.0.1:{int(proc.stdout.readline())}/v1", proc))
        yield out


def responses(project: Project, run_id: str) -> list[tuple[str, str | None, str]]:
    with sqlite3.connect(project.store) as db:
        return db.execute(
            "SELECT case_id, error, output FROM responses WHERE run_id = ? AND candidate = 'prod'",
            (run_id,),
        ).fetchall()
