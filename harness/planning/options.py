"""How one `harness compare` or `harness drift` runs: every option merged once, before anything
starts.

Each option is the first of: the command line (or a library caller's keyword), the config, the
default.

| option | command line | config | default |
| --- | --- | --- | --- |
| `out` | `--out` | `output_dir` (from the config's folder) | `./reports` |
| `store` | `--store`, then `$HARNESS_STORE` | `store:` | `<out>/harness.sqlite` |
| `against` | `--against` | `drift: {baseline}`, for `harness drift` | none: the baseline side is this run's |

A `harness compare` of a drift config makes the run to pin: each candidate is its own baseline there, in that run.
| `stop_when_settled` | `--stop-when-settled`, `--fail-fast` | `stop_when_settled:` | none: the fixed-size run |
| `resume` | `--resume` | none | a new run |
| `retrain` | `--retrain` | none | a cached adapter that matches is used |
| `use_cache` | `--no-cache` | none | cached answers are used |

`--fail-fast` asks for a settled run and turns its `fail_fast` on over the config's settings;
`--stop-when-settled` alone keeps the config's settings, or takes the defaults where the config has
none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.core.errors import HarnessError
from harness.core.progress import quiet_library_bars
from harness.planning.check import check
from harness.planning.config import SettleConfig
from harness.planning.plan import Plan
from harness.store.location import Location, locate

Mode = Literal["compare", "drift"]  # drift: `against` must come from the config's `drift:` pin
STORE_NAME = "harness.sqlite"


@dataclass(frozen=True)
class RunOptions:
    """A run's options, merged as the module says; `plan` is the checked config they were merged
    with."""

    plan: Plan
    mode: Mode
    out: Path  # the output root: run folders, and the store unless one is named
    store: Location
    against: (
        str | None
    )  # a stored run (id or pin) whose scores are the baseline side of relative gates
    stop_when_settled: SettleConfig | None  # None: the fixed-size run
    resume: str | None = None  # the run to continue
    retrain: bool = False
    use_cache: bool = True
    started: float = 0.0  # perf_counter when the run was asked for: the plan stage is timed from it

    @property
    def config_path(self) -> Path:
        return self.plan.loaded.path

    @classmethod
    def from_cli(
        cls,
        config_path: str | Path,
        mode: Mode = "compare",
        *,
        out: str | None = None,
        store: str | None = None,
        against: str | None = None,
        stop_when_settled: bool = False,
        fail_fast: bool = False,
        resume: str | None = None,
        retrain: bool = False,
        use_cache: bool = True,
    ) -> RunOptions:
        """The options of a run of the config at `config_path`, the keywords being the command
        line's. The config is checked first, with the command line's `out`, `against` and settling
        in it: a run refuses every problem `harness check` would list."""
        quiet_library_bars()  # for library users; the command line did it already
        started = time.perf_counter()
        settle_asked = stop_when_settled or fail_fast
        plan = check(config_path, out=out, against=against, stop_when_settled=settle_asked).ready()
        pin = plan.config.drift.baseline if plan.config.drift is not None else None
        if mode == "drift" and pin is None:
            raise HarnessError(
                f"{plan.loaded.path}: `harness drift` needs a `drift:` block naming the pinned "
                "baseline\n  fix: add `drift: {baseline: NAME}` after `harness pin RUN --as NAME`"
            )
        root = plan.output
        assert root is not None  # a plan that is ready had every check run, this one too
        return cls(
            plan,
            mode,
            out=root,
            store=locate(store, root / STORE_NAME, plan.store_location()),
            against=against or (pin if mode == "drift" else None),
            stop_when_settled=_settling(plan.config.stop_when_settled, settle_asked, fail_fast),
            resume=resume,
            retrain=retrain,
            use_cache=use_cache,
            started=started,
        )


def _settling(configured: SettleConfig | None, asked: bool, fail_fast: bool) -> SettleConfig | None:
    """The config's stop_when_settled settings, else the defaults when the command line asks for a settled run;
    --fail-fast turns fail_fast on."""
    settings = configured or (SettleConfig() if asked else None)
    return (
        settings.model_copy(update={"fail_fast": True})
        if settings is not None and fail_fast
        else settings
    )
