"""Names declared once and loaded when first used: the candidate kinds, engines, scorers and store
backends.

Each registry is a table of name -> "module:attr" (as Inspect AI's providers and lm-eval's model
mapping are), so reading a config or answering `--help` imports no engine's client library: a name's
module is imported when that name is used. An installed package adds names through the table's
entry-point group (`harness.kinds`, `harness.engines`, `harness.scorers`: see docs/plugins.md), with
no harness file edited.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Callable, Collection, Generic, Iterable, Iterator, Mapping, TypeVar

from harness.core.errors import HarnessError

T = TypeVar("T")


@cache
def _installed(group: str) -> tuple[EntryPoint, ...]:
    """The group's entry points in every installed distribution (read once: the scan takes ~70 ms)."""
    return tuple(entry_points(group=group))


def imported(reference: str) -> object:
    """What "module:attr" names, its module imported now."""
    module, _, attr = reference.partition(":")
    return getattr(importlib.import_module(module), attr)


class Table(Generic[T]):
    """name -> what it names, for the names shipped here (`shipped`: name -> "module:attr") and
    those installed packages declare in `group` (None: shipped only). A plugin may not take a
    shipped name: which one a config meant would depend on what is installed."""

    def __init__(self, group: str | None, shipped: Mapping[str, str]) -> None:
        self.group = group
        self.shipped = dict(shipped)
        self._loaded: dict[str, T] = {}

    def _references(self) -> dict[str, str | EntryPoint]:
        found: dict[str, str | EntryPoint] = dict(self.shipped)
        for point in _installed(self.group) if self.group else ():
            if point.name in self.shipped:
                raise HarnessError(
                    f"the installed package {point.value.partition(':')[0]!r} declares "
                    f"{point.name!r} in entry-point group {self.group}, a name harness ships\n"
                    "  fix: rename it in that package's entry points"
                )
            found[point.name] = point
        return found

    def names(self) -> list[str]:
        """Every name, sorted: shipped and installed (no module is imported)."""
        return sorted(self._references())

    def __contains__(self, name: object) -> bool:
        return name in self.shipped or name in self._references()

    def load(self, name: str) -> T:
        """What `name` names, its module imported now (KeyError: no such name)."""
        if name not in self._loaded:
            reference = self._references()[name]
            self._loaded[name] = (
                imported(reference)
                if isinstance(reference, str)  # type: ignore[assignment]
                else reference.load()
            )
        return self._loaded[name]

    def get(self, name: str) -> T | None:
        return self.load(name) if name in self else None

    def loaded(self) -> dict[str, T]:
        """Every name with what it names, each module imported (for a union of config models, say)."""
        return {name: self.load(name) for name in self.names()}


class Names(Collection[str]):
    """Names computed when first asked for: argparse asks its `choices` only when a command is
    parsed or its help shown, so a table's names cost `harness --help` nothing."""

    def __init__(self, compute: Callable[[], Iterable[str]]) -> None:
        self.compute = cache(lambda: tuple(compute()))

    def __contains__(self, name: object) -> bool:
        return name in self.compute()

    def __iter__(self) -> Iterator[str]:
        return iter(self.compute())

    def __len__(self) -> int:
        return len(self.compute())
