"""Engines, candidate kinds, scorers and store backends are named once, each in a lazy table of name
-> "module:attr" (core.plugins.Table): every entry imports and is what it says, the config's unions
are the tables' members, and naming them imports no engine's client library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from harness.building.kinds import KINDS, Kind
from harness.cli import build_parser, main
from harness.planning.config import Config, JudgeConfig
from harness.planning.judge import judge_for
from harness.scoring.registry import SCORERS, ScorerType
from harness.serving.endpoint_spec import EndpointSpec
from harness.serving.engines import ENGINES, MODEL_ENGINES, local_engines, protocols
from harness.serving.settings import EngineKind, EngineSettings, VllmConfig
from harness.store.backends import BACKENDS, Backend

CLIENTS = ("openai", "anthropic", "torch", "transformers")


def tags(model: type) -> tuple[str, ...]:
    return get_args(model.model_fields["kind"].annotation)


def members(field: str) -> set[str]:
    """The `kind:` tags of the models a config field's union takes."""
    found, waiting = set(), [Config.model_fields[field].annotation]
    while waiting:
        annotation = waiting.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= set(tags(annotation))
        waiting += get_args(annotation)
    return found


@pytest.mark.parametrize("name", ENGINES.names())
def test_each_engine_entry_imports_and_is_the_engine_it_names(name: str) -> None:
    kind = ENGINES.load(name)
    assert isinstance(kind, EngineKind) and callable(kind.factory())
    if kind.local:
        assert issubclass(kind.settings, EngineSettings) and tags(kind.settings) == (name,)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", KINDS.names())
def test_each_kind_entry_imports_and_is_the_kind_it_names(name: str) -> None:
    kind = KINDS.load(name)
    assert isinstance(kind, Kind) and kind.name == name and tags(kind.model) == (name,)


@pytest.mark.parametrize("name", SCORERS.names())
def test_each_scorer_entry_imports_and_is_a_scorer_type(name: str) -> None:
    assert isinstance(SCORERS.load(name), ScorerType)


def test_the_config_takes_exactly_the_tables_members() -> None:
    engines = members("engine")
    assert engines == set(local_engines()) == {"vllm", "transformers", "scripted"}
    assert set(protocols()) == set(ENGINES.names()) - engines == {"openai", "anthropic"}
    with pytest.raises(ValueError, match="unknown protocol 'grpc'"):
        EndpointSpec(protocol="grpc", model="m")
    assert members("candidates") == set(KINDS.names())


def test_a_config_is_read_and_an_engine_named_without_importing_a_client(tmp_path: Path) -> None:
    """`harness check` pays for no client library; opening the openai engine imports openai's, not
    Anthropic's."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: t\nengine: {kind: transformers, batch_size: 4}\ncandidates:\n  - {name: a, kind:"
        " prompt}\n  - {name: b, kind: endpoint, base_url: 'http://127.0.0.1:9/v1', model:"
        " m}\nsuites: [builtin:safety]\ngates:\n  - {candidate: b, suite: safety, metric: refusal,"
        " min: 0}\n"
    )
    script = (
        "import sys; from harness.planning.config import load_config;"
        f" load_config({str(config)!r})\nfrom harness.serving.engines import ENGINES; assert"
        f" ENGINES.load('openai').logprobs\nprint(sorted(m for m in {CLIENTS!r} if m in"
        f" sys.modules))\nENGINES.load('openai').factory(); print(sorted(m for m in {CLIENTS!r} if"
        " m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "['openai']"]


def test_a_setting_of_another_engine_is_refused_at_its_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """vLLM's parallel sizes cannot be set on transformers: an error at the key's file:line that
    lists the keys the engine takes; settings with no `kind:` are the default engine's (vLLM), as
    before."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "name: t\nengine:\n  kind: transformers\n  tensor_parallel_size: 2\ncandidates:\n"
        "  - {name: a, kind: prompt}\nsuites: [builtin:safety]\n"
        "gates:\n  - {candidate: a, suite: safety, metric: refusal, min: 0.5}\n"
    )
    assert main(["check", str(config)]) == 2
    err = " ".join(capfd.readouterr().err.split())
    assert f"{config}:4: engine.tensor_parallel_size: Extra inputs are not permitted" in err
    assert (
        "fix: remove this key or fix its spelling; it is a setting of `kind: vllm`; allowed keys:"
        " kind, max_concurrency, request_timeout_s, max_retries, dtype, batch_size" in err
    )
    document = {
        "name": "t",
        "engine": {"replicas": 2},
        "candidates": [{"name": "a", "kind": "prompt"}],
        "suites": ["s"],
        "gates": [{"candidate": "a", "suite": "s", "metric": "m", "min": 0}],
    }
    assert Config.model_validate(document).engine == VllmConfig(replicas=2)


def test_the_command_line_offers_the_engines_that_serve_a_model() -> None:
    assert set(MODEL_ENGINES) == {"vllm", "transformers"}
    for kind in MODEL_ENGINES:
        assert (
            build_parser().parse_args(["judge", "check", "rubric", "--engine", kind]).engine == kind
        )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["judge", "check", "rubric", "--engine", "scripted"])


@pytest.mark.parametrize("protocol, logprobs", [("openai", True), ("anthropic", False)])
def test_a_judge_reads_probabilities_where_its_engine_returns_them(
    protocol: str, logprobs: bool
) -> None:
    endpoint = EndpointSpec(protocol=protocol, base_url="http://127.0.0.1:9/v1", model="m")
    who = judge_for(JudgeConfig(endpoint=endpoint), "unused", Path.cwd(), VllmConfig())
    assert who.logprobs is logprobs and who.engine == protocol
    assert who.fingerprint == f"judge-endpoint:{endpoint.identity}"


def test_an_openai_endpoint_without_an_address_is_one_error_wherever_it_is_named(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The candidate's and the judge's endpoint are one spec: the same check, at the key's
    file:line, with a fix (the judge's once a suite is judged, as before)."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "name: t\ncandidates:\n  - {name: a, kind: prompt}\n  - name: b\n    kind: endpoint\n"
        "    model: x\njudge:\n  endpoint:\n    model: y\nsuites: [builtin:safety]\ngates: []\n"
    )
    assert main(["check", str(config)]) == 2
    err = " ".join(capfd.readouterr().err.split())
    fix = "fix: add e.g. base_url: https://api.example.com/v1"
    assert f"{config}:4: candidates[1]: an openai endpoint needs `base_url:` {fix}" in err
    assert f"{config}:8: judge.endpoint.base_url: an openai endpoint needs `base_url:` {fix}" in err


@pytest.mark.parametrize("name", BACKENDS.names())
def test_each_store_backend_entry_imports_and_is_a_backend(name: str) -> None:
    assert isinstance(BACKENDS.load(name), Backend)
