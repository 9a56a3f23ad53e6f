"""Process checks for the no-orphans tests, a watched browser page for the report tests, loopback
servers, the demo copied to a scratch folder, and a probe request."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import psutil

from harness.core.request import Request
from support.paths import REPO

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def watched_page(report: Path) -> Iterator[tuple[Any, list[str]]]:
    """Chromium on a report file, and the list its console errors and warnings, page errors and
    requests for anything but a file land in (a self-contained report makes none)."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "console",
            lambda m: (
                problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "request",
            lambda r: (
                problems.append(f"request: {r.url}") if not r.url.startswith("file:") else None
            ),
        )
        page.goto(report.as_uri())
        yield page, problems
        browser.close()


def responses_stored(store: Path) -> int:
    """How many rows a running compare has stored so far: a store file exists a moment before its
    tables do."""
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        try:
            return db.execute("SELECT count(*) FROM responses").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def server_record(run_dir: Path) -> dict:
    """The pid/port the harness wrote when it started a vLLM server in this run folder."""
    files = list(run_dir.glob("vllm-*.json"))
    assert len(files) == 1, f"expected one server record in {run_dir}, found {files}"
    return json.loads(files[0].read_text())


def group_members(pgid: int) -> list[int]:
    """Live processes in a process group (the server and the workers it spawned)."""
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def wait_gone(pgid: int, timeout_s: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (alive := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return alive


class FaultProxy:
    """A loopback HTTP proxy in front of a real server that injects failures (429, 5xx) and records
    when each request arrived, so retry and pacing behaviour is tested against real responses."""

    def __init__(self, upstream: str, faults: list[int] | None = None) -> None:
        import http.server
        import threading
        import urllib.request

        self.upstream = upstream.rstrip("/")
        self.faults = list(faults or [])
        self.arrivals: list[float] = []
        self.statuses: list[int] = []
        lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    proxy.arrivals.append(time.monotonic())
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault:
                    proxy.statuses.append(fault)
                    self.send_response(fault)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "injected fault"}}')
                    return
                request = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body,
                    method="POST",
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=120) as response:
                    payload = response.read()
                    proxy.statuses.append(response.status)
                    self.send_response(response.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class local_server:  # noqa: N801 (used as a context manager, like open())
    """A loopback HTTP server with `handler` in a thread: `with local_server(H) as url: ...`
    (http://127.0.0.1:PORT)."""

    def __init__(self, handler: type) -> None:
        import http.server
        import threading

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def send_json(handler: "object", status: int, payload: dict) -> None:
    """Answer an http.server request with a JSON body (the loopback fakes of the serving tests)."""
    import json as _json

    body = _json.dumps(payload).encode()
    handler.send_response(status)  # type: ignore[attr-defined]
    handler.send_header("Content-Type", "application/json")  # type: ignore[attr-defined]
    handler.send_header("Content-Length", str(len(body)))  # type: ignore[attr-defined]
    handler.end_headers()  # type: ignore[attr-defined]
    handler.wfile.write(body)  # type: ignore[attr-defined]


def endpoint_config(
    folder: Path, base_url: str = "http://127.0.0.1:9/v1", model: str = "served"
) -> Path:
    """A one-suite config (the shipped tickets suite, one gate) whose one candidate is an endpoint:
    what the command line's start-up is timed and import-checked on. `harness check` contacts no
    endpoint, so the default address need not answer. Written as JSON, which YAML reads."""
    config = {
        "name": "cli-startup",
        "candidates": [{"name": "prod", "kind": "endpoint", "base_url": base_url, "model": model}],
        "suites": [str(REPO / "suites" / "tickets")],
        "gates": [{"candidate": "prod", "suite": "tickets", "metric": "json_valid", "min": 0.5}],
        "output_dir": "reports",
    }
    path = folder / "config.yaml"
    path.write_text(json.dumps(config, indent=1))
    return path


def probe(text: str, choices: tuple[str, ...] = (), model: str = "m") -> Request:
    return Request(
        model,
        (("user", text),),
        1,
        0.0,
        1.0,
        (),
        0,
        loglik="choices" if choices else "text",
        choices=choices,
    )


def copy_demo(folder: Path) -> Path:
    """configs/ and suites/ copied into a folder, so a test can edit them and write reports beside
    them."""
    shutil.copytree(REPO / "configs", folder / "configs")
    shutil.copytree(REPO / "suites", folder / "suites")
    return folder


def chat(text: Any, model: str = "m", **extra: Any) -> dict[str, Any]:
    """An OpenAI chat completion body whose answer is `text`, from `model`."""
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
                **extra,
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
    }
