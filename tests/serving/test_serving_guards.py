"""Serving guards that need no model: isolation of served names, the Anthropic request body, the
managed server's environment and its check that the server answering is ours."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness.core.errors import EngineError
from harness.core.request import Completion, Request
from harness.serving.anthropic_client import AnthropicEngine
from harness.serving.openai_client import OpenAIEngine
from harness.serving.vllm_server import _wait_ours, listens, server_env, serves
from support.helpers import local_server, send_json


def request(model: str, i: int, top_p: float = 1.0) -> Request:
    return Request(model, (("user", f"question {i}"),), 16, 0.0, top_p, (), 0)


def in_flight_sets(isolate: bool) -> list[set[str]]:
    """Every set of served names seen in flight together while OpenAIEngine.run answers a mix."""
    engine = OpenAIEngine("http://127.0.0.1:9/v1", "EMPTY", 4, 5, 0, isolate_models=isolate)
    lock, flying, seen = threading.Lock(), [], []

    def complete(r: Request) -> Completion:
        with lock:
            flying.append(r.model)
            seen.append(set(flying))
        time.sleep(0.01)
        with lock:
            flying.remove(r.model)
        return Completion(text=r.model)

    engine.complete = complete  # type: ignore[method-assign]
    mix = [request(name, i) for i in range(8) for name in ("base", "adapter")]
    answered = dict(engine.run(mix))
    assert sorted(answered) == list(range(16)) and all(
        answered[i].text == mix[i].model for i in answered
    )
    return seen


def test_isolated_engines_never_mix_served_names_in_flight() -> None:
    assert all(len(names) == 1 for names in in_flight_sets(isolate=True))
    assert any(len(names) == 2 for names in in_flight_sets(isolate=False))  # the test can see a mix


class Capture(http.server.BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        Capture.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        send_json(
            self,
            200,
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude",
                "content": [{"type": "text", "text": "ok"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        )


@pytest.fixture
def capture() -> Iterator[str]:
    Capture.bodies = []
    with local_server(Capture) as url:
        yield url


def test_anthropic_sends_top_p_only_when_it_narrows(capture: str) -> None:
    """Current Claude models reject a request with both temperature and top_p."""
    engine = AnthropicEngine(capture, "sk-test", 1, 5, 0)
    assert engine.complete(request("claude", 0)).text == "ok"
    assert engine.complete(request("claude", 1, top_p=0.9)).error is None
    default, narrowed = Capture.bodies
    assert default["temperature"] == 0.0 and "top_p" not in default
    assert narrowed["top_p"] == 0.9


def test_the_managed_server_does_not_inherit_a_vllm_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "from-the-shell")
    assert "VLLM_API_KEY" not in server_env(cpu=True) and "VLLM_API_KEY" not in server_env(
        cpu=False
    )


class Impostor(http.server.BaseHTTPRequestHandler):
    """Some other server on the port: healthy, and even serving a model of the same name."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        send_json(self, 200, {"data": [{"id": "ours"}]} if self.path == "/v1/models" else {})


def test_a_healthy_server_that_is_not_ours_is_never_taken_for_ours(tmp_path: Path) -> None:
    impostor = local_server(Impostor)
    ours = subprocess.Popen(["sleep", "30"])  # alive, but it never binds the port
    try:
        with impostor:
            assert serves(impostor.port, "ours") and not serves(impostor.port, "theirs")
            assert not listens(ours.pid, impostor.port)
            with pytest.raises(EngineError, match="did not become healthy"):
                _wait_ours(ours, impostor.port, "ours", tmp_path / "vllm.log", timeout_s=3)
    finally:
        ours.kill()


def test_a_server_listening_itself_is_ours(tmp_path: Path) -> None:
    script = (
        "import http.server, json, sys\nclass H(http.server.BaseHTTPRequestHandler):\n    def"
        " log_message(self, *a): pass\n    def do_GET(self):\n        b = json.dumps({'data':"
        " [{'id': 'ours'}]}).encode()\n        self.send_response(200);"
        " self.send_header('Content-Length', str(len(b))); self.end_headers()\n       "
        " self.wfile.write(b)\ns = http.server.HTTPServer(('127.0.0.1', 0),"
        " H)\nprint(s.server_address[1], flush=True)\ns.serve_forever()\n"
    )
    server = subprocess.Popen(["python3", "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        assert listens(server.pid, port)
        _wait_ours(server, port, "ours", tmp_path / "vllm.log", timeout_s=10)
    finally:
        server.kill()
