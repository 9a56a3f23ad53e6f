"""Errors the CLI maps to exit code 2, each carrying a message a user can act on."""

from __future__ import annotations

import math
import re
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
        """Rebuilt from its parts, so it crosses a process boundary (training runs in a child)
        intact."""
        return type(self), (self.file, self.key, self.problem, self.fix)


class ProblemsFound(HarnessError):
    """Every problem found in a config and what it names: `harness check` lists them, and a run
    refuses with the same list (the CLI prints each on its own, under a count)."""

    def __init__(self, source: str, problems: list[HarnessError]) -> None:
        self.source, self.problems = source, problems
        super().__init__(f"{len(problems)} problem{'s' * (len(problems) > 1)} in {source}")


class EngineError(HarnessError):
    """The model server could not be started or stopped answering."""


class Problems:
    """Every problem found, not only the first: `harness check` wraps each independent check in
    `unit()`, which records its HarnessError and carries on. With `collect=False` (a run) the first
    error is raised as usual.
    """

    def __init__(self, collect: bool = True) -> None:
        self.collect = collect
        self.found: list[
            tuple[HarnessError, str]
        ] = []  # each error, and the config's file:line its check was about

    @contextmanager
    def unit(self, at: str = "") -> Iterator[None]:
        """`at`: the config's file:line the check is about, which orders a problem found in a file
        it names (a suite's cases, a rubric) among the config's own."""
        try:
            yield
        except HarnessError as exc:
            if not self.collect:
                raise
            self.found.append((exc, at))

    def add(self, errors: list[HarnessError]) -> None:
        """Several errors at once (every pydantic error of a file); raised first-only when not
        collecting."""
        if errors and not self.collect:
            raise errors[0]
        self.found.extend((error, "") for error in errors)

    def listed(self, config: str) -> list[HarnessError]:
        """Each problem once, in the order of the lines of `config` they are at (or were found
        from); a problem with no such line comes last."""
        line = re.compile(rf"{re.escape(config)}:(\d+)\b")

        def order(found: tuple[int, tuple[HarnessError, str]]) -> tuple[float, int]:
            seen, (error, at) = found
            match = line.match(str(error)) or line.match(at)
            return (int(match[1]) if match else math.inf), seen

        unique: dict[str, tuple[HarnessError, str]] = {}
        for error, at in self.found:
            unique.setdefault(str(error), (error, at))
        return [error for _, (error, _) in sorted(enumerate(unique.values()), key=order)]
