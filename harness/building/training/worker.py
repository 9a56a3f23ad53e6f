"""One process of a launched training run: `python -m harness.building.training.worker JOB.json`,
started by torchrun or `accelerate launch` (see launch.py). Every process trains its share; the main
one writes the adapter, and an error it can name (a ConfigError, a diverged loss) goes to the file
the parent reads, as raised.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from harness.building.training.adapter import train
from harness.building.training.launch import TrainJob
from harness.core.errors import ConfigError, HarnessError


def main(spec: str) -> int:
    from accelerate import Accelerator

    job = TrainJob.from_json(Path(spec).read_text())
    accelerator = Accelerator()
    try:
        train(
            job.base,
            job.settings,
            job.data_path,
            job.data_sha256,
            job.key,
            job.out,
            print,
            accelerator,
        )
    except HarnessError as exc:
        if accelerator.is_main_process:
            record = (
                {"config": list(exc.__reduce__()[1])}
                if isinstance(exc, ConfigError)
                else {"message": str(exc)}
            )
            Path(os.environ["HARNESS_TRAIN_ERRORS"]).write_text(json.dumps(record))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
