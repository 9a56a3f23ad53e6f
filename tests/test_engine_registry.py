"""Engines are named once: the config's `engine.kind` values are the registry's local engines, the endpoint
protocols a config may name are its remote ones, and what each can do is what it declared where it registers."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from harness.cli import build_parser, main
from harness.planning.config import JudgeConfig
from harness.planning.judge import judge_for
from harness.serving.base import CAPABILITIES
from harness.serving.endpoint_spec import PROTOCOLS, EndpointSpec
from harness.serving.engines import ENGINES
from harness.serving.settings import LOCAL_ENGINES, MODEL_ENGINES, EngineConfig


def test_the_config_names_exactly_the_registered_engines() -> None:
    assert set(ENGINES) == set(CAPABILITIES)
    assert get_args(EngineConfig.model_fields["kind"].annotation) == LOCAL_ENGINES
    assert set(LOCAL_ENGINES) == {name for name, can in CAPABILITIES.items() if can.local}
    assert get_args(EndpointSpec.model_fields["protocol"].annotation) == PROTOCOLS
    assert set(PROTOCOLS) == {name for name, can in CAPABILITIES.items() if not can.local}
    assert set(MODEL_ENGINES) < set(LOCAL_ENGINES)


def test_the_command_line_offers_the_engines_that_serve_a_model() -> None:
    for kind in MODEL_ENGINES:
        assert build_parser().parse_args(["judge", "check", "rubric", "--engine", kind]).engine == kind
    with pytest.raises(SystemExit):
        build_parser().parse_args(["judge", "check", "rubric", "--engine", "scripted"])


@pytest.mark.parametrize("protocol, logprobs", [("openai", True), ("anthropic", False)])
def test_a_judge_reads_probabilities_where_its_engine_returns_them(protocol: str, logprobs: bool) -> None:
    endpoint = EndpointSpec(protocol=protocol, base_url="http://127.0.0.1:9/v1", model="m")
    who = judge_for(JudgeConfig(endpoint=endpoint), "unused", Path.cwd(), EngineConfig())
    assert who.logprobs is logprobs and who.engine == protocol
    assert who.fingerprint == f"judge-endpoint:{endpoint.identity}"


def test_an_openai_endpoint_without_an_address_is_one_error_wherever_it_is_named(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The candidate's and the judge's endpoint are one spec: the same check, at the key's file:line, with a fix (the
    judge's once a suite is judged, as before)."""
    config = tmp_path / "config.yaml"
    config.write_text("name: t\ncandidates:\n  - {name: a, kind: prompt}\n  - name: b\n    kind: endpoint\n"
                      "    model: x\njudge:\n  endpoint:\n    model: y\nsuites: [builtin:safety]\ngates: []\n")
    assert main(["check", str(config)]) == 2
    err = " ".join(capfd.readouterr().err.split())
    fix = "fix: add e.g. base_url: https://api.example.com/v1"
    assert f"{config}:4: candidates[1]: an openai endpoint needs `base_url:` {fix}" in err
    assert f"{config}:8: judge.endpoint.base_url: an openai endpoint needs `base_url:` {fix}" in err
