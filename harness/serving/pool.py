"""The engines of one run, so that a later stage uses what an earlier one started: the judging stage
asks the server that generated with the judge's model instead of starting a second one (a vLLM start
costs 35-65 s on CPU). An engine a later stage still needs stays open; every other one stops when
its stage is done, so no two servers hold memory longer than they must.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from harness.serving.base import Engine, LocalTarget, Target, engine_name
from harness.serving.engines import ENGINES

if TYPE_CHECKING:
    from harness.serving.settings import EngineSettings


def open_engine(
    target: Target, config: EngineSettings, run_dir: Path, seed: int
) -> AbstractContextManager[Engine]:
    """Start what answers a target's requests: the configured local engine, or an endpoint's client."""
    return ENGINES.load(engine_name(target, config.kind)).factory()(target, config, run_dir, seed)


def covers(serving: Target, wanted: Target) -> bool:
    """Whether an engine opened for `serving` answers for `wanted`: the same target, or a local
    engine with the same base model and every adapter wanted. The adapters it serves besides do not
    touch requests for the base model: requests for different served names never share a batch (see
    vllm_server)."""
    if isinstance(serving, LocalTarget) and isinstance(wanted, LocalTarget):
        return serving.model == wanted.model and set(wanted.adapters) <= set(serving.adapters)
    return serving == wanted


class Engines:
    """`with Engines(keep=[...]) as engines: with engines.use(target, config, log_dir, seed) as
    engine: ...`

    `keep`: targets a later stage will ask for; an engine that covers one stays open after its `use`
    until the pool closes."""

    def __init__(self, keep: Sequence[Target] = ()) -> None:
        self.keep = tuple(keep)
        self._open: list[tuple[Target, Engine, ExitStack]] = []
        self.started = 0

    def hold(self, targets: Sequence[Target]) -> None:
        """Keep these open too until the pool closes: a run in waves asks each engine again after
        every wave."""
        self.keep = (*self.keep, *targets)

    def kept(self, target: Target) -> bool:
        return any(covers(target, wanted) for wanted in self.keep)

    def find(self, target: Target) -> Engine | None:
        return next((engine for serving, engine, _ in self._open if covers(serving, target)), None)

    @contextmanager
    def use(
        self, target: Target, config: EngineSettings, log_dir: Path, seed: int
    ) -> Iterator[Engine]:
        found = self.find(target)
        if found is not None:
            yield found
            return
        stack = ExitStack()
        engine = stack.enter_context(open_engine(target, config, log_dir, seed))
        self.started += 1
        entry = (target, engine, stack)
        self._open.append(entry)
        try:
            yield engine
        finally:
            if not self.kept(target):
                self._open.remove(entry)
                stack.close()

    def close(self) -> None:
        while self._open:
            self._open.pop()[2].close()

    def __enter__(self) -> "Engines":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
