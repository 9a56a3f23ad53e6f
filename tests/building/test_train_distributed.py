"""LoRA training on several processes through accelerate (issue 26, item 4): what launches it, what
the adapter's cache key counts, the plan's refusals, and (slow) two real CPU processes over gloo
training the demo's adapter.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from harness.building.training import TrainSettings, adapter_key, train_adapter
from harness.building.training.adapter import silent
from harness.building.training.launch import WORKER, launch_command, launch_env
from harness.cli import main
from harness.core.errors import ConfigError
from harness.core.models import ModelRef
from support.paths import REPO
from support.scenarios import PROMPT, Project, answer

ROOT = REPO
TICKETS = ROOT / "suites" / "tickets" / "train.jsonl"


def test_the_key_counts_the_processes_and_the_accelerate_config_but_one_process_adds_nothing() -> (
    None
):
    one = TrainSettings(data="a.jsonl")
    # the key of a single process is the one every adapter trained before there could be more had
    before = adapter_key("fp", b"d", one)
    assert before == adapter_key("fp", b"d", one.model_copy(update={"processes": 1}))
    two = adapter_key("fp", b"d", one.model_copy(update={"processes": 2}))
    fsdp = adapter_key(
        "fp", b"d", one.model_copy(update={"accelerate_config": "x.yaml"}), launch_config=b"fsdp: 1"
    )
    moved = adapter_key(
        "fp",
        b"d",
        one.model_copy(update={"accelerate_config": "elsewhere/y.yaml"}),
        launch_config=b"fsdp: 1",
    )
    other = adapter_key(
        "fp", b"d", one.model_copy(update={"accelerate_config": "x.yaml"}), launch_config=b"fsdp: 2"
    )
    assert len({before, two, fsdp, other}) == 4 and moved == fsdp


def test_processes_launch_with_torchrun_and_an_accelerate_config_with_accelerate_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    spec = tmp_path / "job.json"
    assert launch_command(2, None, spec) == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        WORKER,
        str(spec),
    ]
    config = tmp_path / "fsdp.yaml"
    assert launch_command(1, config, spec) == [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "-m",
        WORKER,
        str(spec),
    ]
    assert launch_command(4, config, spec)[5:7] == ["--num_processes", "4"]
    cpu = launch_env(2, gpu=False)
    assert cpu["ACCELERATE_USE_CPU"] == "true" and int(cpu["OMP_NUM_THREADS"]) >= 1
    assert "ACCELERATE_USE_CPU" not in launch_env(2, gpu=True)


def lora_project(project: Project, train: dict) -> Path:
    project.suite("tickets", ["json_valid"], [{"id": "t0", "prompt": "ticket", "reference": "{}"}])
    data = project.root / "train.jsonl"
    data.write_text(TICKETS.read_text())
    path = project.config(
        [PROMPT, {"name": "lora", "kind": "lora", "train": {"data": "train.jsonl", **train}}],
        [{"candidate": "lora", "suite": "tickets", "metric": "json_valid", "min": 0}],
        [answer("{}")],
    )
    return path


@pytest.mark.parametrize(
    ("train", "words"),
    [
        ({"processes": 64}, "processes is 64: each trains on a core of its own"),
        ({"accelerate_config": "missing.yaml"}, "accelerate config"),
    ],
)
def test_what_cannot_launch_is_refused_at_plan_time(
    project: Project, train: dict, words: str, capfd: pytest.CaptureFixture[str]
) -> None:
    lora_project(project, train)
    code, _ = project.run(command="check")
    err = " ".join(capfd.readouterr().err.split())
    assert code == 2 and words in err and "candidates[1].train." in err, err


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


# What `accelerate launch` would have failed on mid-build (with a traceback, after the models
# started), each written at the path the config names, and what `harness check` must say of it.
HOSTILE_LAUNCH_CONFIGS = {
    "a folder": (lambda path: path.mkdir(), "is a folder, not a file"),
    "a named pipe": (_fifo, "is not a regular file (a named pipe)"),
    "too large": (
        lambda path: path.write_text("x: 1\n" * 1_000_000),
        "larger than the 4,194,304 bytes",
    ),
    "binary": (lambda path: path.write_bytes(bytes(range(256)) * 4), "not UTF-8 text"),
    "control characters": (
        lambda path: path.write_bytes(b"a: 1\n\x00\x01\x02"),
        "control character #x00",
    ),
    "broken YAML": (
        lambda path: path.write_text("distributed_type: MULTI_GPU\nnum_processes: [2\n"),
        "not valid YAML",
    ),
    "an alias bomb": (lambda path: path.write_text(BOMB), "an alias bomb?"),
    "a list": (
        lambda path: path.write_text("- distributed_type: MULTI_GPU\n"),
        "holds a list, not a mapping",
    ),
    "empty": (lambda path: path.write_text(""), "holds nothing, not a mapping"),
}


@pytest.mark.parametrize("name", HOSTILE_LAUNCH_CONFIGS)
def test_an_accelerate_config_that_cannot_be_read_is_refused_at_its_key(
    project: Project, name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Read at plan time as configs are (core.yamlfile), each problem at the config's
    `accelerate_config` line."""
    write, words = HOSTILE_LAUNCH_CONFIGS[name]
    write(project.root / "launch.yaml")
    config = lora_project(project, {"processes": 2, "accelerate_config": "launch.yaml"})
    line = next(
        i
        for i, text in enumerate(config.read_text().splitlines(), 1)
        if "accelerate_config:" in text
    )
    code, _ = project.run(command="check")
    err = capfd.readouterr().err
    assert (
        code == 2
        and f"{config}:{line}: candidates[1].train.accelerate_config: accelerate config " in err
    ), err
    assert words in err and "\n  fix: " in err, err


def test_a_device_named_as_the_accelerate_config_is_not_read(
    project: Project, capfd: pytest.CaptureFixture[str]
) -> None:
    """/dev/zero was "not found"; read, it never ends."""
    lora_project(project, {"processes": 2, "accelerate_config": "/dev/zero"})
    assert project.run(command="check")[0] == 2
    assert (
        "accelerate config /dev/zero: is not a regular file (a character device)"
        in capfd.readouterr().err
    )


def test_an_accelerate_config_for_several_nodes_is_not_held_to_this_machine(
    project: Project,
) -> None:
    (project.root / "nodes.yaml").write_text(
        "distributed_type: MULTI_GPU\nnum_machines: 4\nnum_processes: 32\n"
    )
    lora_project(project, {"processes": 32, "accelerate_config": "nodes.yaml"})
    assert project.run(command="check")[0] == 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_error_in_a_training_process_is_raised_in_the_harness(
    model: ModelRef, tmp_path: Path
) -> None:
    long = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "word " * 200},
                {"role": "assistant", "content": "ok"},
            ]
        }
    )
    data = tmp_path / "data.jsonl"
    data.write_text(f"{long}\n" * 4)
    settings = TrainSettings(
        data="data.jsonl", max_length=16, val_fraction=0, max_steps=1, processes=2
    )
    with pytest.raises(ConfigError, match="max_length=16"):
        train_adapter(model, settings, data, cache_root=tmp_path / "adapters", log=lambda _: None)
    assert not [p for p in (tmp_path / "adapters").iterdir() if not p.name.startswith(".")]


def best_val(metrics: list[dict]) -> float:
    return min(m["val_loss"] for m in metrics if "val_loss" in m)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_two_cpu_processes_train_the_demo_adapter_as_one_does(
    model: ModelRef, tmp_path: Path
) -> None:
    """The demo's training settings on one process (the e2e demo's adapter, reused from the cache
    when it ran) and on two over gloo: the validation loss within 5%, and served by vLLM each passes
    (and fails) the demo's tickets gates as the other does."""
    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    lora = next(c for c in demo["candidates"] if c["name"] == "lora")
    one = TrainSettings(**{**lora["train"], "data": str(TICKETS)})
    single = train_adapter(model, one, TICKETS, log=silent, in_child=True)
    double = train_adapter(model, one.model_copy(update={"processes": 2}), TICKETS, log=silent)
    manifest = json.loads((double.path / "harness-adapter.json").read_text())
    assert manifest["processes"] == 2 and double.key != single.key
    assert abs(best_val(double.metrics) - best_val(single.metrics)) <= 0.05 * best_val(
        single.metrics
    ), (best_val(double.metrics), best_val(single.metrics))

    prompted = next(c for c in demo["candidates"] if c["name"] == "prompted")
    tickets_gates = [g for g in demo["gates"] if g["suite"] == "tickets"]
    config = {
        "name": "ddp",
        "model": demo["model"],
        "seed": 0,
        "generation": demo["generation"],
        "candidates": [
            prompted,
            {"name": "lora", "kind": "lora", "train": {"data": str(TICKETS)}},
            {"name": "lora_ddp", "kind": "lora", "train": {"data": str(TICKETS), "processes": 2}},
        ],
        "baseline": "prompted",
        "suites": [str(ROOT / "suites" / "tickets")],
        "gates": [{**g, "candidate": c} for g in tickets_gates for c in ("lora", "lora_ddp")],
        "output_dir": str(tmp_path / "reports"),
        "stats": {"resamples": 2000},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["compare", str(path), "--no-cache"]) in (
        0,
        1,
    )  # the demo's adapter fails one of them (exit 1)
    results = json.loads(next((tmp_path / "reports").glob("*/results.json")).read_text())
    gates = results["verdict"][
        "gates"
    ]  # in config order: each tickets gate on lora, then on lora_ddp
    assert [g["candidate"] for g in gates] == ["lora", "lora_ddp"] * len(tickets_gates)
    assert [g["passed"] for g in gates[::2]] == [g["passed"] for g in gates[1::2]], [
        (g["rule"], g["candidate"], g["value"], g["passed"]) for g in gates
    ]
    assert all(g["missing"] == 0 for g in gates)
    trained = {a["candidate"]: a for a in results["artifacts"] if a["kind"] == "training"}
    assert trained["lora_ddp"]["key"] == double.key and trained["lora_ddp"]["reused"]
