"""Errors the CLI maps to exit code 2, each carrying a message a user can act on."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class HarnessError(Exception):
    """A failure the user can fix; the CLI prints it without a traceback and exits 2."""


class ConfigError(HarnessError):
    """Bad input: names the file, the key path and how to fix it."""

    def __init__(self, file: str, key: str, problem: str, fix: str) -> None:
        self.file, self.key, self.problem, self.fix = file, key, problem, fix
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}\n  fix: {fix}")

    def __reduce__(self) -> tuple:
        """Rebuilt from its parts, so it crosses a process boundary (training runs in a child) intact."""
        return type(self), (self.file, self.key, self.problem, self.fix)


class EngineError(HarnessError):
    """The model server could not be started or stopped answering."""


class Problems:
    """Every problem found, not only the first: `harness check` wraps each independent check in `unit()`, which
    records its HarnessError and carries on. With `collect=False` (a run) the first error is raised as usual."""

    def __init__(self, collect: bool = True) -> None:
        self.collect = collect
        self.found: list[HarnessError] = []

    @contextmanager
    def unit(self) -> Iterator[None]:
        try:
            yield
        except HarnessError as exc:
            if not self.collect:
                raise
            self.found.append(exc)

    def add(self, errors: list[HarnessError]) -> None:
        """Several errors at once (every pydantic error of a file); raised first-only when not collecting."""
        if errors and not self.collect:
            raise errors[0]
        self.found.extend(errors)
