"""The verdict matrix, who answers: the scripted engine by served name, endpoints against each
other, a suite on some candidates only, and an endpoint replying without an answer (no verdict).
"""

from __future__ import annotations

import http.server
import json
import sqlite3

import pytest
import yaml

from support.helpers import chat, local_server, send_json
from support.scenarios import (
    BASE,
    LORA,
    PROMPT,
    TICKET,
    Project,
    answer,
    gate,
    ticket_suite,
    tickets,
)


def test_the_scripted_engine_answers_by_served_name(project: Project) -> None:
    ticket_suite(project, 2)
    project.config(
        [PROMPT, LORA],
        [gate("json_valid", min=0.0)],
        [answer("lora says", model="lora"), answer("base says", model=BASE)],
    )
    _, results = project.run()
    outputs = {(r["candidate"], r["case_id"]): r["output"] for r in results["cases"]}
    assert outputs[("lora", "t00")] == "lora says" and outputs[("bare", "t01")] == "base says"


class FakeOpenAI(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers by model name: `good` replies the ticket JSON,
    `bad` prose."""

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = TICKET if body["model"] == "good" else "The category is billing, I think."
        send_json(self, 200, chat(text, body["model"]))


@pytest.mark.parametrize("candidate_model, code", [("good", 0), ("bad", 1)])
def test_endpoints_against_each_other(project: Project, candidate_model: str, code: int) -> None:
    """A deployed model against another: the verdict follows the answers over real HTTP."""
    ticket_suite(project, 12)
    with local_server(FakeOpenAI) as url:
        endpoint = {"kind": "endpoint", "base_url": f"{url}/v1", "max_retries": 0}
        project.config(
            [
                {**endpoint, "name": "prod", "model": "bad"},
                {**endpoint, "name": "next", "model": candidate_model},
            ],
            [
                gate("json_valid", candidate="next", max_drop=0.0),
                gate("json_valid", candidate="next", min=0.9),
            ],
            [answer("unused")],
        )
        got, results = project.run()
    assert got == code, results["verdict"]["reason"]


def test_a_suite_can_run_on_some_candidates_only(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    ticket_suite(project, 6)
    project.suite("extra", ["json_valid"], tickets(4))
    third = {"name": "third", "kind": "prompt", "system": "Be brief."}

    def run(gates: list[dict], answering: list[str]) -> tuple[int, dict | None]:
        config = project.config([PROMPT, LORA, third], gates, [answer(TICKET)])
        data = yaml.safe_load(config.read_text())
        data["suites"][1] = {"suite": "suites/extra", "candidates": answering}
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        capsys.readouterr()
        return project.run()

    code, results = run([gate("json_valid", min=0.5)], ["bare", "lora"])
    assert code == 0
    answered = {(c["candidate"], c["suite"]) for c in results["cases"]}
    assert (
        ("third", "extra") not in answered
        and ("lora", "extra") in answered
        and ("third", "tickets") in answered
    )
    assert results["run"]["suites"]["extra"]["candidates"] == ["bare", "lora"]
    code, _ = run([gate("json_valid", suite="extra", candidate="third", min=0.5)], ["bare", "lora"])
    assert (
        code == 2
        and "impossible gate: candidate 'third' does not answer suite 'extra'"
        in capsys.readouterr().err
    )
    code, _ = run([gate("json_valid", min=0.5)], ["bare", "nobody"])
    assert (
        code == 2 and "suites[1].candidates: unknown candidate 'nobody'" in capsys.readouterr().err
    )


class Misshapen(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint: the baseline `prod` always answers the ticket JSON; `next`
    answers it too, but with `broken` (a raw 200 body) for the tickets whose number is in `cases`.
    """

    broken: bytes = b""
    cases: tuple[str, ...] = ()

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        if body["model"] == "next" and any(f"Ticket {n}:" in prompt for n in self.cases):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(self.broken)
            return
        send_json(self, 200, chat(TICKET, body["model"]))


NULL_CONTENT = json.dumps(
    {
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": None}}
        ]
    }
).encode()


@pytest.mark.parametrize(
    "broken, cases",
    [
        (b'{"id": "c", "object": "chat.completion"}', ("03",)),  # no choices
        (b'{"choices": []}', ("03", "07")),
        (b"<html><body>502 Bad Gateway</body></html>", ("05",)),
        (b'{"choices": [{"index": 0', ("00", "09")),  # invalid JSON
        (
            NULL_CONTENT,
            ("03",),
        ),  # once scored as '' (DO NOT SHIP); no answer is not an empty answer
        (NULL_CONTENT, tuple(f"{i:02d}" for i in range(10))),
    ],
    ids=[
        "no choices",
        "empty choices",
        "HTML",
        "invalid JSON",
        "null content once",
        "null content always",
    ],
)
def test_an_endpoint_replying_without_an_answer_is_no_verdict(
    project: Project, monkeypatch: pytest.MonkeyPatch, broken: bytes, cases: tuple[str, ...]
) -> None:
    """A 200 reply that is not an answer is a failed request: the run goes on, the error row names
    the endpoint, and with a gate that the other answers would pass the verdict is still ERROR."""
    monkeypatch.setattr(Misshapen, "broken", broken)
    monkeypatch.setattr(Misshapen, "cases", cases)
    ticket_suite(project, 10)
    with local_server(Misshapen) as url:
        endpoint = {"kind": "endpoint", "base_url": f"{url}/v1", "max_retries": 0}
        project.config(
            [
                {**endpoint, "name": "prod", "model": "prod"},
                {**endpoint, "name": "next", "model": "next"},
            ],
            [gate("json_valid", candidate="next", min=0.0)],
            [answer("unused")],
        )
        code, results = project.run()
    assert code == 2 and f"{len(cases)} of 20 requests failed" in results["verdict"]["reason"]
    with sqlite3.connect(project.store) as db:
        errors = [e for (e,) in db.execute("SELECT error FROM responses WHERE error IS NOT NULL")]
    assert len(errors) == len(cases) and all(f"{url}/v1" in e and "HTTP 200" in e for e in errors)
