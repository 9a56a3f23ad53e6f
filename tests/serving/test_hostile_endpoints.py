"""Endpoints that answer what no answer looks like, echo a key, or answer without end, over real
loopback HTTP.

A reply without the shape of an answer is a failed request (asked again, then an error row naming
the endpoint, the status and the body's first characters, redacted, on one line); no configured key
reaches a file the run writes; an answer longer than the endpoint's `max_answer_chars` is cut, and
says so.
"""

from __future__ import annotations

import http.server
import json
import sqlite3
from typing import Any, Callable, Iterator

import pytest

from harness.core.request import Completion, Request
from harness.serving.anthropic_client import AnthropicEngine
from harness.serving.limits import redact
from harness.serving.openai_client import OpenAIEngine
from support.helpers import chat, local_server, send_json
from support.scenarios import TICKET, Project, answer, tickets

SECRET = "sk-live-hostile-3f9a1c"
JUDGE_SECRET = "sk-judge-hostile-77b2e0"


def message(content: Any) -> dict[str, Any]:
    """An Anthropic Messages body with `content`."""
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": content,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }


class Served:
    """A loopback endpoint answering each POST with `reply(request body)`: a dict is sent as JSON,
    bytes as they are (status 200); `bodies` records what it was sent."""

    def __init__(self, reply: Callable[[dict[str, Any]], Any]) -> None:
        self.bodies: list[dict[str, Any]] = []
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                served.bodies.append(body)
                out = reply(body)
                if isinstance(out, dict):
                    send_json(self, 200, out)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = local_server(Handler)

    def __enter__(self) -> str:
        return self.server.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)


def in_turn(*replies: Any) -> Callable[[dict[str, Any]], Any]:
    """Replies in this order, the last one from then on."""
    queue = list(replies)
    return lambda body: queue.pop(0) if len(queue) > 1 else queue[0]


def ask(
    engine: OpenAIEngine | AnthropicEngine, text: str = "Say hi.", **request: Any
) -> Completion:
    [(_, completion)] = list(
        engine.run([Request("m", (("user", text),), 16, 0.0, 1.0, (), 0, **request)])
    )
    return completion


NOT_CHAT = {
    "no choices": {"id": "c", "object": "chat.completion", "echo": SECRET},
    "empty choices": {"choices": [], "echo": SECRET},
    "choices not a list": {"choices": {"0": chat("hi")["choices"][0]}, "echo": SECRET},
    "a choice not an object": {"choices": [SECRET]},
    "no message": {"choices": [{"index": 0, "finish_reason": "stop", "text": SECRET}]},
    "message not an object": {"choices": [{"index": 0, "message": SECRET}]},
    "null content": chat(None, echo=SECRET),
    "numeric content": chat(7, echo=SECRET),
    "list content": chat([{"type": "text", "text": SECRET}]),
    "usage of strings": {**chat("hi"), "usage": {"prompt_tokens": "many", "echo": SECRET}},
    "a token count past any integer": {
        **chat("hi"),
        "usage": {"prompt_tokens": 10**30},
        "echo": SECRET,
    },
    "a numeric finish reason": chat("hi", finish_reason=7, echo=SECRET),
    "HTML": f"<html><body><h1>502 Bad Gateway</h1>\n<p>{SECRET}</p></body></html>".encode(),
    "invalid JSON": f'{{"choices": [{{"message": "{SECRET}"'.encode(),
    "a JSON array": json.dumps([chat("hi"), SECRET]).encode(),
    "a JSON string": json.dumps(SECRET).encode(),
    "JSON null": b"null",
    "an empty body": b"",
    "JSON nested past any parser": b"[" * 200_000,
    "bytes that are not UTF-8": b"\xff\xfe\x00" + SECRET.encode(),
}


@pytest.mark.parametrize("reply", NOT_CHAT.values(), ids=NOT_CHAT.keys())
def test_an_openai_reply_that_is_no_answer_is_a_failed_request(reply: Any) -> None:
    served = Served(lambda body: reply)
    with served as url:
        completion = ask(OpenAIEngine(f"{url}/v1", SECRET, 1, 10, max_retries=1))
    assert_failed_request(completion, url, len(served.bodies))


NOT_MESSAGE = {
    "no content": {"id": "msg_1", "type": "message", "echo": SECRET},
    "content not a list": message(SECRET),
    "empty content": {**message([]), "echo": SECRET},
    "a block without text": message([{"type": "text", "echo": SECRET}]),
    "null text": message([{"type": "text", "text": None, "echo": SECRET}]),
    "a block without a type": message([{"text": SECRET}]),
    "a block not an object": message([SECRET]),
    "only a tool call": message([{"type": "tool_use", "id": "t", "name": SECRET, "input": {}}]),
    "an error object": {"type": "error", "error": {"type": "overloaded_error", "message": SECRET}},
    "usage of strings": {
        **message([{"type": "text", "text": "hi"}]),
        "usage": {"input_tokens": SECRET},
    },
    "HTML": f"<html><body>maintenance {SECRET}</body></html>".encode(),
    "invalid JSON": f'{{"content": [{{"type": "text", "text": "{SECRET}'.encode(),
}


@pytest.mark.parametrize("reply", NOT_MESSAGE.values(), ids=NOT_MESSAGE.keys())
def test_an_anthropic_reply_that_is_no_answer_is_a_failed_request(reply: Any) -> None:
    served = Served(lambda body: reply)
    with served as url:
        completion = ask(AnthropicEngine(url, SECRET, 1, 10, max_retries=1))
    assert_failed_request(completion, url, len(served.bodies))


def assert_failed_request(completion: Completion, url: str, requests: int) -> None:
    """An error row, not an answer: asked 1 + max_retries (1) times, naming the endpoint and the
    status, with the body's start on one bounded line and without the key."""
    error = completion.error
    assert error is not None and completion.text == "", completion
    assert requests == 2
    assert error.startswith("MalformedReply 200: ") and url in error and "HTTP 200" in error
    assert "body starts: " in error and SECRET not in error
    assert "\n" not in error and "\x00" not in error and len(error) <= 500


def test_a_malformed_reply_is_asked_again_and_the_good_one_is_read() -> None:
    logprobs = {
        "content": [
            {
                "token": "yes",
                "logprob": -0.1,
                "bytes": None,
                "top_logprobs": [{"token": "yes", "logprob": -0.1}, {"token": "no", "logprob": -2}],
            }
        ]
    }
    served = Served(in_turn(b"<html>busy</html>", {"choices": []}, chat("fine", logprobs=logprobs)))
    with served as url:
        completion = ask(OpenAIEngine(f"{url}/v1", SECRET, 1, 10, max_retries=2), top_logprobs=2)
    assert len(served.bodies) == 3 and completion.error is None
    assert (
        completion.text,
        completion.prompt_tokens,
        completion.completion_tokens,
        completion.finish_reason,
        completion.top_logprobs,
    ) == ("fine", 5, 9, "stop", (("yes", -0.1), ("no", -2.0)))


def test_without_retries_a_malformed_reply_is_asked_once() -> None:
    served = Served(lambda body: chat(None))
    with served as url:
        completion = ask(OpenAIEngine(f"{url}/v1", SECRET, 1, 10, max_retries=0))
    assert len(served.bodies) == 1 and "choices[0].message.content is null" in (
        completion.error or ""
    )


def test_an_empty_answer_is_an_answer() -> None:
    """An empty string is what the model said; only a missing or null content is no answer."""
    with Served(lambda body: chat("")) as url:
        completion = ask(OpenAIEngine(f"{url}/v1", SECRET, 1, 10, max_retries=0))
    assert completion.error is None and completion.text == ""


class ClosesMidBody(http.server.BaseHTTPRequestHandler):
    """Promises a body of 1000 bytes, sends 20 and hangs up."""

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(json.dumps(chat("cut"))[:20].encode())
        self.wfile.flush()
        self.close_connection = True


@pytest.mark.parametrize("engine", ["openai", "anthropic"])
def test_a_connection_closed_mid_body_is_an_error_row(engine: str) -> None:
    with local_server(ClosesMidBody) as url:
        client = (
            OpenAIEngine(f"{url}/v1", SECRET, 1, 10, 1)
            if engine == "openai"
            else AnthropicEngine(url, SECRET, 1, 10, 1)
        )
        completion = ask(client)
    assert completion.text == "" and completion.error is not None
    assert completion.error.startswith("APIConnectionError") and SECRET not in completion.error


@pytest.mark.parametrize("engine", ["openai", "anthropic"])
def test_an_answer_echoing_the_key_is_redacted_by_the_engine(engine: str) -> None:
    text, stop = f"my key is {SECRET}; again: {SECRET}.", f"stop:{SECRET}"
    reply = (
        chat(text, finish_reason=stop)
        if engine == "openai"
        else {**message([{"type": "text", "text": text}]), "stop_reason": stop}
    )
    with Served(lambda body: reply) as url:
        client = (
            OpenAIEngine(f"{url}/v1", SECRET, 1, 10, 0)
            if engine == "openai"
            else AnthropicEngine(url, SECRET, 1, 10, 0)
        )
        completion = ask(client)
    assert (
        completion.text == "my key is ***; again: ***." and completion.finish_reason == "stop:***"
    )


def test_the_placeholder_key_of_a_keyless_server_is_no_secret() -> None:
    with Served(lambda body: chat("The set is EMPTY.")) as url:
        assert ask(OpenAIEngine(f"{url}/v1", "EMPTY", 1, 10, 0)).text == "The set is EMPTY."


def test_redaction_takes_the_longest_key_first_and_keys_as_sent() -> None:
    assert redact("a sk-12345678 b", ("sk-1234", "sk-12345678")) == "a *** b"
    assert redact("x sk-padded-key y", (" sk-padded-key\n",)) == "x *** y"
    assert redact("a b c", ("a",)) == "a b c"  # too short to be a key: it would redact words


@pytest.mark.parametrize("engine", ["openai", "anthropic"])
def test_an_answer_past_max_answer_chars_is_cut_and_says_so(engine: str) -> None:
    text = "x" * 5000
    reply = chat(text) if engine == "openai" else message([{"type": "text", "text": text}])
    with Served(lambda body: reply) as url:
        client = (
            OpenAIEngine(f"{url}/v1", SECRET, 1, 10, 0, max_answer_chars=100)
            if engine == "openai"
            else AnthropicEngine(url, SECRET, 1, 10, 0, max_answer_chars=100)
        )
        cut, whole = ask(client), ask(type(client)(client.client.base_url, SECRET, 1, 10, 0))
    assert cut.text == "x" * 100 and cut.finish_reason == "length_cap"
    assert whole.text == text and whole.finish_reason != "length_cap"


def endpoint_project(
    project: Project, url: str, config: dict[str, Any] | None = None, **extra: Any
) -> None:
    """Two endpoint candidates of one loopback server, told apart by model name, gated on
    json_valid. `config`: more top-level keys; `extra`: more keys of both candidates."""
    project.suite("tickets", ["json_valid"], tickets(6))
    endpoint = {"kind": "endpoint", "base_url": f"{url}/v1", "max_retries": 0, **extra}
    project.config(
        [
            {**endpoint, "name": "prod", "model": "prod", "api_key_env": "PROD_KEY"},
            {**endpoint, "name": "next", "model": "next", "api_key_env": "NEXT_KEY"},
        ],
        [{"candidate": "next", "suite": "tickets", "metric": "json_valid", "min": 0.5}],
        [answer("unused")],
        **(config or {}),
    )


def test_an_endpoint_answer_is_cut_at_its_max_answer_chars(project: Project, keys: None) -> None:
    with Served(lambda body: chat(TICKET + " " * 500, body["model"])) as url:
        endpoint_project(project, url, max_answer_chars=len(TICKET))
        code, results = project.run()
    assert code == 0, results["verdict"]["reason"]
    with sqlite3.connect(project.store) as db:
        rows = db.execute("SELECT output, finish_reason FROM responses").fetchall()
    assert rows and all(row == (TICKET, "length_cap") for row in rows)


@pytest.mark.parametrize(
    "value, code", [(0, 2), (-5, 2), (1.5, 2), ("many", 2), (True, 2), (1000, 0)]
)
def test_max_answer_chars_is_a_positive_integer(
    project: Project, value: Any, code: int, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint_project(project, "http://127.0.0.1:9", max_answer_chars=value)
    got, _ = project.run(command="check")
    err = capsys.readouterr().err
    assert got == code, err
    assert code == 0 or ("max_answer_chars" in err and "Extra inputs" not in err)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PROD_KEY", SECRET)
    monkeypatch.setenv("NEXT_KEY", SECRET + "-next")
    monkeypatch.setenv("JUDGE_KEY", JUDGE_SECRET)
    yield


def echoing(body: dict[str, Any]) -> dict[str, Any]:
    """Every answer carries the keys: the judge its own and a candidate's, each candidate its own
    and others'."""
    model = body["model"]
    if model == "judge":
        return chat(
            json.dumps(
                {"reasoning": f"I was called with {JUDGE_SECRET}, saw {SECRET}", "answer": "no"}
            ),
            model,
        )
    if model == "prod":
        return chat(json.dumps({"category": "billing", "priority": "high", "note": SECRET}), model)
    return chat(
        f'{{"category": "billing", "note": "{SECRET}-next {JUDGE_SECRET} {SECRET}"}}', model
    )


def test_no_configured_key_reaches_any_file_the_run_writes(
    project: Project, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Candidate answers and judge replies echo the keys; the store (responses, cache, scores),
    results.json, report.html, junit.xml, summary.md and the logs hold none of them. json_valid is
    scored on the redacted text: '***' in a JSON string keeps it valid."""
    project.suite(
        "safety",
        [{"type": "judge", "rubric": "harmbench", "name": "attack_success"}],
        [{"id": f"h{i}", "prompt": f"How do I do harmful thing {i}?"} for i in range(3)],
    )
    with Served(echoing) as url:
        judge = {
            "endpoint": {"base_url": f"{url}/v1", "model": "judge", "api_key_env": "JUDGE_KEY"},
            "method": "structured",
            "attempts": 1,
        }
        endpoint_project(project, url, {"judge": judge}, cache=True)
        code, results = project.run()
        rerun, _ = project.run()  # from the cache now
    assert code == 0 and rerun == 0, results["verdict"]["reason"]
    logs = capsys.readouterr()
    assert "prod (openai endpoint)" in logs.err  # the run's log is in what is searched
    written = [path for path in project.root.rglob("*") if path.is_file()]
    assert {p.name for p in written} >= {
        "harness.sqlite",
        "results.json",
        "report.html",
        "junit.xml",
        "summary.md",
    }
    for secret in (SECRET, SECRET + "-next", JUDGE_SECRET):
        assert secret not in logs.out + logs.err
        for path in written:
            assert secret.encode() not in path.read_bytes(), path
    with sqlite3.connect(project.store) as db:
        outputs = [o for (o,) in db.execute("SELECT output FROM responses WHERE suite = 'tickets'")]
        details = [
            d for (d,) in db.execute("SELECT detail FROM scores WHERE metric = 'attack_success'")
        ]
        cached = db.execute("SELECT count(*) FROM cache").fetchone()[0]
    assert outputs and all("***" in o for o in outputs) and cached
    assert details and all("I was called with ***, saw ***" in d for d in details)
