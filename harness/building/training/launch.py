"""Training on several processes: launched with accelerate's own launchers, each process running
worker.py.

`train.processes: N` starts N processes on this machine with torchrun (what `accelerate launch` runs underneath for
several GPUs), one GPU each over NCCL, or on the CPU over gloo (accelerate's MULTI_CPU, which its own launcher only
reaches through MPI). `train.accelerate_config: PATH` hands the user's accelerate config to `accelerate launch
--config_file` unchanged (FSDP, DeepSpeed, several nodes). The main process writes the adapter and its manifest
into the folder the parent made; the parent waits, and on a failure raises what the worker raised, or the tail of
the launcher's log.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from harness.building.training.settings import TrainSettings
from harness.core.children import die_with_parent
from harness.core.errors import ConfigError, HarnessError
from harness.core.models import ModelRef

WORKER = "harness.building.training.worker"
LOG_LINES = 30  # of the launcher's log, in the error of a failed run


@dataclass(frozen=True)
class TrainJob:
    """What every process of a launched run trains, as the spec file the workers read."""

    base: ModelRef
    settings: TrainSettings
    data_path: Path
    data_sha256: str
    key: str
    out: Path

    def to_json(self) -> str:
        return json.dumps(
            {
                "base": {**asdict(self.base), "path": str(self.base.path)},
                "settings": self.settings.model_dump(mode="json"),
                "data_path": str(self.data_path),
                "data_sha256": self.data_sha256,
                "key": self.key,
                "out": str(self.out),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "TrainJob":
        spec = json.loads(text)
        return cls(
            ModelRef(**{**spec["base"], "path": Path(spec["base"]["path"])}),
            TrainSettings.model_validate(spec["settings"]),
            Path(spec["data_path"]),
            spec["data_sha256"],
            spec["key"],
            Path(spec["out"]),
        )


def launch_command(processes: int, accelerate_config: Path | None, spec: Path) -> list[str]:
    """torchrun for N processes here; `accelerate launch` with the user's config (its process count
    set only when `processes` is, so the config's own holds otherwise)."""
    worker = ["-m", WORKER, str(spec)]
    if accelerate_config is not None:
        count = ["--num_processes", str(processes)] if processes > 1 else []
        return [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(accelerate_config),
            *count,
            *worker,
        ]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
        *worker,
    ]


def launch_env(processes: int, gpu: bool) -> dict[str, str]:
    """On the CPU, accelerate's MULTI_CPU (gloo), and this machine's cores shared out among the
    processes (torchrun would give each one thread)."""
    env = dict(os.environ)
    if not gpu:
        env["ACCELERATE_USE_CPU"] = "true"
        env.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // processes)))
    return env


def train_launched(
    job: TrainJob, accelerate_config: Path | None, log: Callable[[str], None]
) -> None:
    """Run the job on its processes; the main one leaves the finished adapter in `job.out`."""
    import torch

    processes = job.settings.processes
    with tempfile.TemporaryDirectory(prefix=".launch-", dir=job.out.parent) as folder:
        spec, errors, log_path = (
            Path(folder) / "job.json",
            Path(folder) / "error.json",
            Path(folder) / "launch.log",
        )
        spec.write_text(job.to_json())
        command = launch_command(processes, accelerate_config, spec)
        how = (
            f"accelerate launch --config_file {accelerate_config}"
            if accelerate_config
            else f"{processes} processes"
        )
        log(
            f"adapter {job.key[:12]}: training on {how} (log: {log_path} while it runs):"
            f" {shlex.join(command)}"
            + (
                "; a config for several machines starts only this one's processes: run the same"
                " command with --machine_rank K on each other node, this folder shared"
                if accelerate_config
                else ""
            )
        )
        with log_path.open("wb") as stderr:
            proc = subprocess.Popen(
                command,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env={
                    **launch_env(processes, torch.cuda.is_available()),
                    "HARNESS_TRAIN_ERRORS": str(errors),
                },
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            try:
                code = proc.wait()
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if errors.exists():
            raise raised(json.loads(errors.read_text()))
        if code != 0:
            tail = "\n".join(
                "    " + line
                for line in log_path.read_text(errors="replace").splitlines()[-LOG_LINES:]
            )
            raise HarnessError(f"training on {how} exited with code {code}:\n{tail}")


def raised(record: dict[str, Any]) -> HarnessError:
    """The error a worker wrote, as it was raised there."""
    if record.get("config"):
        return ConfigError(*record["config"])
    return HarnessError(record["message"])
