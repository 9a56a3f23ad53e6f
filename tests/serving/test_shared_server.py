"""Runs attach to a warm server only when it is exactly the one they would start
(harness/serving/shared.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.models import ModelRef
from harness.serving import shared
from harness.serving.base import Adapter
from harness.serving.settings import VllmConfig
from harness.serving.vllm_server import attached, server_key


def test_the_registry_is_the_harness_home_unless_named_and_off_when_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(shared.REGISTRY_ENV)
    assert shared.registry_dir() == tmp_path / "home" / "servers"
    monkeypatch.setenv(shared.REGISTRY_ENV, str(tmp_path / "mine"))
    assert shared.registry_dir() == tmp_path / "mine"
    record = shared.SharedServer(
        key="k1", pid=1, port=2, command=["vllm"], model="m", fingerprint="f"
    )
    shared.prepare(tmp_path / "mine")
    path = shared.register(record, tmp_path / "mine")
    assert shared.lookup("k1") == record and not path.with_suffix(".tmp").exists()
    path.write_text("{half a reco")
    assert shared.lookup("k1") is None  # unreadable: start a server of our own
    monkeypatch.setenv(shared.REGISTRY_ENV, "")
    assert shared.registry_dir() is None and shared.lookup("k1") is None


def test_the_key_changes_with_anything_that_changes_answers(
    model: ModelRef, tmp_path: Path
) -> None:
    key = server_key(model, VllmConfig(), 0)
    assert key == server_key(
        model, VllmConfig(max_concurrency=4, request_timeout_s=5), 0
    )  # client-side only
    other = ModelRef(model.name, model.path, "0" * 64)
    adapter = Adapter("tuned", tmp_path, 8, "f" * 64)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"target_modules": ["q_proj"]}))
    assert (
        len(
            {
                key,
                server_key(model, VllmConfig(), 1),
                server_key(model, VllmConfig(dtype="bfloat16"), 0),
                server_key(model, VllmConfig(extra_args=["--max-model-len", "1024"]), 0),
                server_key(other, VllmConfig(), 0),
                server_key(model, VllmConfig(), 0, (adapter,)),
            }
        )
        == 6
    )


def test_a_dead_servers_record_is_not_attached_to(
    model: ModelRef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(shared.REGISTRY_ENV, str(tmp_path))
    gone = os.fork()
    if gone == 0:
        os._exit(0)
    os.waitpid(gone, 0)
    key = server_key(model, VllmConfig(), 0)
    shared.register(
        shared.SharedServer(
            key=key,
            pid=gone,
            port=9,
            command=["vllm"],
            model=model.name,
            fingerprint=model.fingerprint,
        ),
        tmp_path,
    )
    assert attached(model, VllmConfig(), 0) is None


def test_serve_refuses_what_it_cannot_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: t\nengine: {kind: transformers}\ncandidates: [{name: a, kind: prompt}]\n"
        "suites: [builtin:tickets]\n"
        "gates: [{candidate: a, suite: tickets, metric: json_valid, min: 0}]\n"
    )
    monkeypatch.setenv(shared.REGISTRY_ENV, str(tmp_path / "servers"))
    assert main(["serve", str(config)]) == 2
    assert "only vllm servers are shared" in capsys.readouterr().err
    monkeypatch.setenv(shared.REGISTRY_ENV, "")
    assert main(["serve", str(config)]) == 2
    assert "is set but empty" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_attaches_to_the_live_server_of_its_key_only(
    model: ModelRef, shared_vllm: str
) -> None:
    record = attached(model, VllmConfig(max_concurrency=4), 0)
    assert record is not None and record.base_url == shared_vllm
    assert attached(model, VllmConfig(), 1) is None  # another seed: its own server
    moved = ModelRef(model.name, Path("/elsewhere"), model.fingerprint)
    assert attached(moved, VllmConfig(), 0) is None  # the server must have loaded our folder
