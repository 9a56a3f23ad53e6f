"""Servers that answer for another model, or never finish an answer, over real loopback HTTP
(tests/support/chat_server.py).

A server whose model list lacks the model is left before it is sent anything; one whose replies name
another model makes those requests error rows and is left: a misconfigured fleet is no verdict (exit
2), never scores of the wrong model. A request is held to `request_timeout_s` a try however slowly
the server sends: past it, an error row naming the server, counted as timed out.
"""

from __future__ import annotations

import http.server
import json
import time
from typing import Any

import pytest

from harness.core.request import Completion, Request
from harness.serving import deadline
from harness.serving.anthropic_client import AnthropicEngine
from harness.serving.openai_client import OpenAIEngine
from harness.serving.shapes import serves
from support.fleet import chat_servers, responses
from support.helpers import local_server, send_json, watched_page
from support.scenarios import PROMPT, Project, answer

MODEL = "fleet-model"
OTHER = [
    "--lists",
    "other-model",
    "--answers-as",
    "other-model",
]  # a server of another model, as it says


def fleet_project(project: Project, urls: list[str], cases: int, **extra: Any) -> None:
    """An endpoint candidate of MODEL over `urls` (one: `base_url`), gated on answering each case
    right."""
    project.suite(
        "tickets",
        ["equals"],
        [
            {"id": f"c{i:02d}", "prompt": f"case {i:02d}", "reference": f"echo: case {i:02d}"}
            for i in range(cases)
        ],
    )
    where = {"base_url": urls[0]} if len(urls) == 1 else {"base_urls": urls}
    endpoint = {
        "name": "prod",
        "kind": "endpoint",
        **where,
        "model": MODEL,
        "max_retries": 1,
        "max_concurrency": 2,
        **extra,
    }
    project.config(
        [PROMPT, endpoint],
        [{"candidate": "prod", "suite": "tickets", "metric": "equals", "min": 0.9}],
        [answer("unused")],
    )


def serving(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The run's serving record, by server."""
    return {
        r["url"]: r
        for r in next(a for a in results["artifacts"] if a["kind"] == "serving")["replicas"]
    }


def report(project: Project) -> str:
    return next((project.root / "reports").glob("*/report.html")).read_text()


@pytest.mark.parametrize(
    ("asked", "named", "same"),
    [
        ("fleet-model", "fleet-model", True),
        ("Qwen/Qwen2.5-7B", "qwen/qwen2.5-7b", True),
        ("gpt-4o", "gpt-4o-2024-08-06", True),
        ("gpt-4", "gpt-4-0613", True),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet-20250219", True),
        ("claude-sonnet-4-0", "claude-sonnet-4-20250514", True),
        ("gpt-4o", "gpt-4o-mini-2024-07-18", False),
        ("gpt-4o", "gpt-4o-mini", False),
        ("fleet-model", "other-model", False),
        ("llama-3-8b", "org/llama-3-8b", False),
        ("m", "m-1", False),
        ("gpt-4o-2024-08-06", "gpt-4o", False),
    ],
)
def test_a_server_serves_the_model_asked_or_the_dated_snapshot_of_its_alias(
    asked: str, named: str, same: bool
) -> None:
    assert serves(asked, named) is same


def test_a_replica_listing_another_model_is_left_before_it_is_asked(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """B serves another model (and would answer otherwise: half the cases were DO NOT SHIP): its
    model list says so, it is left at start, and A answers every case; the report says why B was
    left."""
    with chat_servers([], OTHER) as ((a_url, _), (b_url, _)):
        fleet_project(project, [a_url, b_url], cases=12)
        code, results = project.run("--no-cache")
    assert code == 0, results["verdict"]["reason"]
    rows = responses(project, results["run"]["id"])
    assert len(rows) == 12 and all(
        error is None and output.startswith("echo: ") for _, error, output in rows
    )
    by_url = serving(results)
    assert by_url[b_url] == {
        "url": b_url,
        "answered": 0,
        "moved": 0,
        "timed_out": 0,
        "down": f"serves other-model, not {MODEL}",
    }
    assert by_url[a_url]["answered"] == 12 and by_url[a_url]["down"] is None
    assert f"left: serves other-model, not {MODEL}" in report(project)
    assert f"{b_url} serves other-model, not {MODEL}: left" in " ".join(
        capsys.readouterr().err.split()
    )


def test_a_replica_answering_as_another_model_is_no_verdict(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """B lists no models, so only its replies can tell: each it gave is an error row naming it and
    the model it answered as, B is left, and the rest go to A. Error rows are no verdict (exit 2),
    never DO NOT SHIP.
    """
    with chat_servers([], ["--lists", "none", "--answers-as", "other-model"]) as (
        (a_url, _),
        (b_url, _),
    ):
        fleet_project(project, [a_url, b_url], cases=12)
        code, results = project.run("--no-cache")
    assert code == 2 and results["verdict"]["decision"] == "error", results["verdict"]
    rows = responses(project, results["run"]["id"])
    errors = [error for _, error, _ in rows if error]
    why = f"{b_url} answers as model other-model, not {MODEL}: a server of another model"
    assert len(rows) == 12 and 1 <= len(errors) <= 2 and all(error == why for error in errors)
    assert all(output.startswith("echo: ") for _, error, output in rows if error is None)
    by_url = serving(results)
    assert by_url[b_url]["down"] == why and by_url[b_url]["answered"] == 0
    assert by_url[a_url]["answered"] == 12 - len(errors)
    assert f"{b_url} gives no model list (HTTP 404)" in " ".join(capsys.readouterr().err.split())


def test_a_single_endpoint_of_another_model_is_no_verdict(project: Project) -> None:
    """One server (`base_url`), of another model by its list: every case an error row naming it,
    exit 2."""
    with chat_servers(OTHER) as ((url, _),):
        fleet_project(project, [url], cases=4)
        code, results = project.run("--no-cache")
    assert code == 2 and results["verdict"]["decision"] == "error", results["verdict"]
    rows = responses(project, results["run"]["id"])
    assert len(rows) == 4
    assert all(
        error == f"{url} was left: serves other-model, not {MODEL}" and not output
        for _, error, output in rows
    )
    assert serving(results)[url]["down"] == f"serves other-model, not {MODEL}"
    assert "one server" in report(project)


HOSTILE_NAME = "<img src=x onerror=alert(1)>\x1b[2J<script>alert(2)</script>"


def test_a_model_name_a_server_gives_is_inert_in_the_report_and_the_terminal(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """The model list's names reach the serving table and the log (why the server was left): the
    HTML escapes them (Chromium runs no script of them), the terminal gets no escape sequence."""
    with chat_servers(["--lists", HOSTILE_NAME]) as ((url, _),):
        fleet_project(project, [url], cases=2)
        code, results = project.run("--no-cache")
    assert code == 2
    assert "<script>alert" not in report(project) and "&lt;script&gt;alert(2)" in report(project)
    assert "\x1b" not in capsys.readouterr().err
    with watched_page(next((project.root / "reports").glob("*/report.html"))) as (page, problems):
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.reload()
        assert "alert(2)" in page.content() and page.locator("script:text('alert(2)')").count() == 0
    assert dialogs == [] and problems == []


def test_a_router_answering_as_the_model_the_config_names_is_used(project: Project) -> None:
    """A deployment name behind a router (Azure, LiteLLM) is listed as, and answers as, the model it
    routes to: with that name in `answers_as` the server is used, and the gate decides on its
    answers (exit 0); without it, the server is of another model (exit 2, as above)."""
    with chat_servers(["--lists", "routed-model-2025", "--answers-as", "routed-model-2025"]) as (
        (url, _),
    ):
        fleet_project(project, [url], cases=4, answers_as=["routed-model-2025"])
        project.suite(
            "tickets",
            ["equals"],
            [
                {"id": f"c{i}", "prompt": f"case {i}", "reference": f"routed-model-2025: case {i}"}
                for i in range(4)
            ],
        )
        code, results = project.run("--no-cache")
    assert code == 0 and results["verdict"]["decision"] == "ship", results["verdict"]
    assert all(error is None for _, error, _ in responses(project, results["run"]["id"]))


def ask(engine: OpenAIEngine | AnthropicEngine, model: str) -> Completion:
    [(_, completion)] = list(engine.run([Request(model, (("user", "hi"),), 16, 0.0, 1.0, (), 0)]))
    return completion


def test_an_openai_reply_from_the_dated_snapshot_of_the_alias_asked_is_an_answer() -> None:
    with chat_servers(["--answers-as", "gpt-4o-2024-08-06", "--lists", "gpt-4o,gpt-4o-mini"]) as (
        (url, _),
    ):
        engine = OpenAIEngine(url, "EMPTY", 1, 10, 0)
        completion, other = ask(engine, "gpt-4o"), ask(engine, "gpt-4o-mini")
        engine.close()
    assert completion.error is None and completion.text == "gpt-4o-2024-08-06: hi"
    assert (
        other.error
        == f"{url} answers as model gpt-4o-2024-08-06, not gpt-4o-mini: a server of another model"
    )


class Messages(http.server.BaseHTTPRequestHandler):
    """An Anthropic Messages server of claude-3-5-haiku-20241022, which also serves claude-other; it
    answers each request as claude-other."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        send_json(
            self,
            200,
            {
                "data": [
                    {"type": "model", "id": "claude-3-5-haiku-20241022"},
                    {"type": "model", "id": "claude-other"},
                ],
                "has_more": False,
            },
        )

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        send_json(
            self,
            200,
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-other",
                "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        )


def test_an_anthropic_server_is_held_to_the_model_asked_too() -> None:
    """The alias is served (the list holds its snapshot) but the reply names another model; a model
    the list lacks is never asked."""
    with local_server(Messages) as url:
        engine = AnthropicEngine(url, "sk-test-key", 1, 10, 0)
        answered, unlisted = ask(engine, "claude-3-5-haiku-latest"), ask(engine, "claude-opus-4-1")
    assert (
        answered.error
        == f"{url} answers as model claude-other, not claude-3-5-haiku-latest: a server of another "
        "model"
    )
    assert (
        unlisted.error
        == f"{url} was left: serves claude-3-5-haiku-20241022, claude-other, not claude-opus-4-1"
    )


@pytest.mark.parametrize("start", ["body", "status"])
def test_a_server_that_trickles_its_reply_is_cut_at_request_timeout_s(
    project: Project, start: str
) -> None:
    """Headers, then one byte every half second (or the status line so, too): each reply would take
    minutes. Each try is cut at request_timeout_s (2 s), so each case is an error row naming the
    server after 2 tries, counted as timed out in the report, and the run is no verdict."""
    with chat_servers(["--trickle", "0.5", "--trickle-from", start]) as ((url, _),):
        fleet_project(project, [url], cases=4, request_timeout_s=2, max_concurrency=4)
        started = time.monotonic()
        code, results = project.run("--no-cache")
        took = time.monotonic() - started
    assert (
        took < 30
    )  # a safety net: ~7 s here (the model list's 2 s, then 2 tries of 2 s), one reply's trickle ~150 s
    assert code == 2 and results["verdict"]["decision"] == "error", results["verdict"]
    rows = responses(project, results["run"]["id"])
    assert len(rows) == 4
    assert all(
        error == f"no complete answer from {url} within 2 s (request_timeout_s), 2 tries"
        and not output
        for _, error, output in rows
    )
    assert serving(results)[url] == {
        "url": url,
        "answered": 0,
        "moved": 0,
        "timed_out": 4,
        "down": None,
    }
    assert '<td class="num">4</td><td>up</td>' in report(project)


@pytest.mark.parametrize("client", [OpenAIEngine, AnthropicEngine])
def test_each_client_holds_a_try_to_its_deadline(
    client: type[OpenAIEngine] | type[AnthropicEngine],
) -> None:
    with chat_servers(["--trickle", "0.5", "--lists", "none"]) as ((url, _),):
        engine = client(url, "sk-test-key", 1, 1, 0)
        started = time.monotonic()
        completion = ask(engine, MODEL)
        took = time.monotonic() - started
    assert (
        completion.error == f"no complete answer from {url} within 1 s (request_timeout_s), 1 try"
    )
    assert took < 10  # ~2 s here (the model list, then the request), the trickle ~150 s


def test_a_request_past_its_deadline_is_cancelled_on_the_loop() -> None:
    """deadline.run cancels what it runs, whichever thread asks (the bound of a request as a whole)."""
    import asyncio

    cancelled = []

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        deadline.run(forever(), 0.2)
    assert time.monotonic() - started < 5 and cancelled == [True]
    assert deadline.run(asyncio.sleep(0, result=json.dumps([1])), 1) == "[1]"
