"""Where the store is: a SQLite file (the default) or a PostgreSQL database a team shares, and how
to name it without its password.

A store is named by a path, a URL (`postgresql://user@host:5432/db`, `sqlite:///path`) or `env:NAME`
(the URL is in that variable, so a password in it is never on a command line or in a config file).
The first of these that is given wins: the command's `--store`, then `HARNESS_STORE`, then the
config's `store:`, then the default file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL

from harness.core.errors import HarnessError
from harness.core.paths import STORE_ENV
from harness.core.urls import ENCODE_FIX, parsed, scheme_only

DEFAULT_FOLDER = Path("reports")
SERVER_SCHEMES = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


@dataclass(frozen=True)
class Location:
    """`url`: what SQLAlchemy connects to; `shown`: the same without its password, for every
    message; `folder`: where files that belong beside the store go (a SQLite file's folder, else
    ./reports).
    """

    url: URL
    shown: str
    folder: Path
    path: Path | None = None  # the SQLite file
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def engine(self) -> str:
        return self.url.get_backend_name()


def sqlite_file(path: Path) -> Location:
    return Location(URL.create("sqlite", database=str(path)), str(path), path.parent, path)


def parse(value: str, source: str, base_dir: Path | None = None) -> Location:
    """A store named by `value`, which came from `source` (for the error); a relative path starts at
    `base_dir`."""
    value = value.strip()
    if value.startswith("env:"):
        return from_env(value[4:], source, base_dir)
    if "://" not in value:
        path = Path(value).expanduser()
        return sqlite_file(
            base_dir / path if base_dir is not None and not path.is_absolute() else path
        )
    try:
        url = parsed(value)
    except ValueError as exc:
        raise HarnessError(
            f"{source}: {exc}, so it is not a store URL\n  fix: give a path (a SQLite file), "
            "postgresql://USER@HOST:PORT/DATABASE, or env:NAME (a variable holding the URL); "
            f"{ENCODE_FIX}"
        ) from None
    scheme = url.drivername
    if scheme == "sqlite":
        if not url.database or url.database == ":memory:":
            raise HarnessError(
                f"{source}: {scheme_only(value)!r} names no file\n  fix: sqlite:///PATH, or just"
                " the PATH"
            )
        return parse(url.database, source, base_dir)
    if scheme not in SERVER_SCHEMES:
        raise HarnessError(
            f"{source}: a store on {scheme!r} is not supported\n"
            "  fix: give a path (SQLite) or a postgresql://USER@HOST:PORT/DATABASE URL"
        )
    query = dict(url.query)
    password = url.password or query.pop("password", None)
    url = url.set(drivername=SERVER_SCHEMES[scheme], password=password, query=query)
    if not url.database:
        raise HarnessError(
            f"{source}: {url.render_as_string(hide_password=True)!r} names no database\n"
            "  fix: end the URL with /DATABASE"
        )
    shown = url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)
    return Location(url, shown, DEFAULT_FOLDER, secrets=(str(password),) if password else ())


def from_env(name: str, source: str, base_dir: Path | None = None) -> Location:
    value = os.environ.get(name, "").strip()
    if not value:
        raise HarnessError(
            f"{source} names the variable {name}, which is not set\n"
            f"  fix: export {name}=postgresql://USER:PASSWORD@HOST:PORT/DATABASE (from the CI's "
            "secrets)"
        )
    return parse(value, f"${name} (named by {source})", base_dir)


def locate(flag: str | None, default: Path, configured: Location | None = None) -> Location:
    """`--store`, else HARNESS_STORE, else the config's `store:`, else the default SQLite file."""
    if flag:
        return parse(flag, "--store")
    if os.environ.get(STORE_ENV, "").strip():
        return parse(os.environ[STORE_ENV], STORE_ENV)
    return configured if configured is not None else sqlite_file(default)
