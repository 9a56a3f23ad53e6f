"""Engines on the real embedded model: the managed vLLM server and in-process transformers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.core.errors import EngineError
from harness.core.models import ModelRef
from harness.core.request import Request
from harness.serving.openai_client import OpenAIEngine
from harness.serving.settings import VllmConfig
from harness.serving.transformers_engine import TransformersEngine
from harness.serving.vllm_server import managed_server
from support.helpers import server_record, wait_gone

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Name three colors.",
    "Say hello in Spanish.",
    "What is 2 + 3?",
    "Write one word that rhymes with cat.",
    "What do bees make?",
]


def requests(model: ModelRef, max_tokens: int = 24) -> list[Request]:
    return [
        Request(
            model=model.name,
            messages=(("user", p),),
            max_tokens=max_tokens,
            temperature=0.0,
            top_p=1.0,
            stop=(),
            seed=0,
        )
        for p in PROMPTS
    ]


def answers(engine: OpenAIEngine | TransformersEngine, reqs: list[Request]) -> list:
    got = dict(engine.run(reqs))
    assert sorted(got) == list(range(len(reqs)))
    return [got[i] for i in range(len(reqs))]


def test_vllm_answers_deterministically(vllm_url: str, model: ModelRef) -> None:
    engine = OpenAIEngine(vllm_url, "EMPTY", max_concurrency=4, timeout_s=60, max_retries=1)
    first, second = answers(engine, requests(model)), answers(engine, requests(model))
    assert [c.text for c in first] == [c.text for c in second]
    for c in first:
        assert c.error is None and c.text.strip()
        assert c.prompt_tokens > 0 and 0 < c.completion_tokens <= 24 and c.latency_s > 0
    assert "paris" in first[0].text.lower()


def test_request_failure_becomes_an_error_completion(vllm_url: str, model: ModelRef) -> None:
    """A model the server does not serve is asked of none: its model list says so, in the error row."""
    engine = OpenAIEngine(vllm_url, "EMPTY", max_concurrency=2, timeout_s=30, max_retries=0)
    bad = Request(
        model="no-such-model",
        messages=(("user", "hi"),),
        max_tokens=4,
        temperature=0.0,
        top_p=1.0,
        stop=(),
        seed=0,
    )
    [(index, completion)] = list(engine.run([bad]))
    assert index == 0 and completion.text == ""
    assert completion.error == f"{vllm_url} was left: serves {model.name}, not no-such-model"


def test_transformers_engine_matches_vllm_greedy(vllm_url: str, model: ModelRef) -> None:
    """Same model, same greedy decoding, two engines behind one interface: the answers agree."""
    reqs = requests(model, max_tokens=12)
    served = answers(OpenAIEngine(vllm_url, "EMPTY", 4, 60, 1), reqs)
    local = answers(TransformersEngine(model, batch_size=4, dtype="auto"), reqs)
    for c in local:
        assert c.error is None and c.prompt_tokens > 0 and 0 < c.completion_tokens <= 12
    same = sum(a.text == b.text for a, b in zip(served, local))
    assert same >= len(reqs) - 1, [(a.text, b.text) for a, b in zip(served, local)]
    assert [c.prompt_tokens for c in served] == [c.prompt_tokens for c in local]


def test_server_that_cannot_start_is_an_error_with_its_log(model: ModelRef, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    shutil.copytree(model.path, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(
        json.dumps({**config, "architectures": ["NoSuchForCausalLM"]})
    )
    ref = ModelRef("broken", broken, "x")
    with pytest.raises(EngineError, match="exited with code") as info:
        with managed_server(ref, tmp_path / "run", VllmConfig(startup_timeout_s=300), seed=0):
            pass
    assert "vllm-broken.log" in str(info.value)
    assert wait_gone(server_record(tmp_path / "run")["pid"]) == []
