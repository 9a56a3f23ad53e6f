"""vLLM's own parallelism from the config: the flags each setting puts on the server's command line,
the devices replicas are given, and the plan's refusals (exit 2 before any model starts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.core.models import ModelRef
from harness.serving import devices as devices_module
from harness.serving.devices import Devices, placement_problem, shares, visible_gpus
from harness.serving.settings import VllmConfig
from harness.serving.vllm_server import concurrency, server_command, server_env

MODEL = ModelRef(name="m", path=Path("/models/m"), fingerprint="f")
GPUS4 = Devices("gpu", ("0", "1", "2", "3"))
CORES2 = Devices("cpu", ("0", "1"))


def flags(config: VllmConfig, cpu: bool) -> list[str]:
    command = server_command(MODEL, 8000, config, 0, cpu)
    return command[command.index("--seed") + 2 :]


@pytest.mark.parametrize(
    ("settings", "cpu", "expected"),
    [
        ({}, False, []),
        ({}, True, ["--enforce-eager", "--distributed-executor-backend", "uni"]),
        ({"tensor_parallel_size": 4}, False, ["--tensor-parallel-size", "4"]),
        ({"pipeline_parallel_size": 2}, False, ["--pipeline-parallel-size", "2"]),
        ({"data_parallel_size": 2}, False, ["--data-parallel-size", "2"]),
        (
            {
                "tensor_parallel_size": 8,
                "pipeline_parallel_size": 2,
                "distributed_executor_backend": "ray",
            },
            False,
            [
                "--tensor-parallel-size",
                "8",
                "--pipeline-parallel-size",
                "2",
                "--distributed-executor-backend",
                "ray",
            ],
        ),
        ({"distributed_executor_backend": "mp"}, False, ["--distributed-executor-backend", "mp"]),
        ({"tensor_parallel_size": 1, "replicas": 3}, False, []),
    ],
)
def test_each_parallel_setting_is_vllms_own_flag(
    settings: dict, cpu: bool, expected: list[str]
) -> None:
    assert flags(VllmConfig(**settings), cpu) == expected


def test_the_default_concurrency_grows_with_the_data_parallel_size() -> None:
    one, four = concurrency(VllmConfig()), concurrency(VllmConfig(data_parallel_size=4))
    assert four == 4 * one
    assert concurrency(VllmConfig(data_parallel_size=4, max_concurrency=8)) == 8


@pytest.mark.parametrize(
    ("settings", "devices", "key", "words"),
    [
        (
            {"tensor_parallel_size": 8},
            GPUS4,
            "engine.tensor_parallel_size",
            "need 8 GPUs, and 4 are visible",
        ),
        (
            {"tensor_parallel_size": 2, "data_parallel_size": 2, "replicas": 2},
            GPUS4,
            "engine.tensor_parallel_size",
            "tensor_parallel_size 2, data_parallel_size 2, replicas 2 need 8 GPUs",
        ),
        (
            {"pipeline_parallel_size": 2},
            Devices("gpu", ()),
            "engine.pipeline_parallel_size",
            "none",
        ),
        (
            {"replicas": 2, "distributed_executor_backend": "ray"},
            GPUS4,
            "engine.replicas",
            "Ray cluster",
        ),
        ({"tensor_parallel_size": 2}, CORES2, "engine.tensor_parallel_size", "CPU build"),
        ({"data_parallel_size": 2}, CORES2, "engine.data_parallel_size", "CPU build"),
        (
            {"distributed_executor_backend": "mp"},
            CORES2,
            "engine.distributed_executor_backend",
            "one process",
        ),
        ({"replicas": 3}, CORES2, "engine.replicas", "2 are available"),
    ],
)
def test_what_does_not_fit_the_devices_is_refused(
    settings: dict, devices: Devices, key: str, words: str
) -> None:
    problem = placement_problem(VllmConfig(**settings), devices)
    assert problem is not None and problem[0] == key and words in problem[1], problem


@pytest.mark.parametrize(
    ("settings", "devices"),
    [
        ({}, GPUS4),
        ({}, Devices("gpu", ())),
        ({"tensor_parallel_size": 4}, GPUS4),
        ({"tensor_parallel_size": 2, "replicas": 2}, GPUS4),
        (
            {
                "tensor_parallel_size": 16,
                "pipeline_parallel_size": 2,
                "distributed_executor_backend": "ray",
            },
            GPUS4,
        ),
        ({"replicas": 2}, CORES2),
        ({"distributed_executor_backend": "uni"}, CORES2),
    ],
)
def test_what_fits_is_accepted(settings: dict, devices: Devices) -> None:
    assert placement_problem(VllmConfig(**settings), devices) is None


def test_replicas_get_disjoint_devices() -> None:
    assert shares(VllmConfig(tensor_parallel_size=2, replicas=2), GPUS4) == [("0", "1"), ("2", "3")]
    assert shares(VllmConfig(replicas=4), GPUS4) == [("0",), ("1",), ("2",), ("3",)]
    assert shares(VllmConfig(replicas=2), Devices("cpu", ("0", "1", "2"))) == [("0", "1"), ("2",)]
    assert server_env(True, ("1",))["VLLM_CPU_OMP_THREADS_BIND"] == "1"
    assert server_env(False, ("2", "3"))["CUDA_VISIBLE_DEVICES"] == "2,3"


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert visible_gpus() == ("2", "5")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == ()


def write_config(tmp_path: Path, engine: dict) -> Path:
    config = {
        "name": "t",
        "model": "./m",
        "engine": engine,
        "candidates": [{"name": "base", "kind": "prompt"}],
        "suites": ["builtin:safety"],
        "gates": [{"candidate": "base", "suite": "safety", "metric": "refusal", "min": 0.5}],
    }
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_a_run_refuses_a_tensor_parallel_size_on_this_cpu_before_any_model_starts(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, {"kind": "vllm", "tensor_parallel_size": 2})
    assert main(["compare", str(path)]) == 2
    err = " ".join(capfd.readouterr().err.split())
    assert (
        f"{path}:5: engine.tensor_parallel_size: tensor_parallel_size is 2, and the CPU build"
        in err
    )
    assert "fix: remove it (1)" in err and not list(tmp_path.glob("reports/*/vllm-*.log"))


def test_the_check_reads_the_gpus_visible_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """On a GPU build the count is CUDA_VISIBLE_DEVICES' (the build is this machine's fact; here it
    is the CPU's)."""
    monkeypatch.setattr(devices_module, "vllm_is_cpu_build", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    path = write_config(tmp_path, {"kind": "vllm", "tensor_parallel_size": 4})
    assert main(["check", str(path)]) == 2
    assert "need 4 GPUs, and 2 are visible here (CUDA_VISIBLE_DEVICES=0,1)" in " ".join(
        capfd.readouterr().err.split()
    )
    path.write_text(path.read_text().replace("tensor_parallel_size: 4", "tensor_parallel_size: 2"))
    assert main(["check", str(path)]) == 0
