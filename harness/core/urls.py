"""URLs as a config or the environment gives them: read with SQLAlchemy's parser (RFC 1738), the one
the store connects with, never with a pattern of our own.

That parser reads a password up to its `@`, whatever it holds; an HTTP library cuts a password at an
unencoded `#`, `/` or `?` and then sees neither user nor password, and a pattern misses a space. So
the credentials of a URL are found however they are written, and a URL whose parts do not add up is
shown by its scheme alone: the rest may be a password.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from harness.core.errors import HarnessError

ENV = "env:"  # `env:NAME`: the URL is in that environment variable (where a password may be)
ENCODE_FIX = (
    "percent-encode what is special in a URL (@ as %40, # as %23, a space as %20), above all in a"
    " password"
)
DEFAULT_PORTS = {"http": 80, "https": 443}


def parsed(text: str) -> URL:
    """`text` as a URL; ValueError (its message free of the text) when it is none, or when an `@` or
    a space lands outside the user and password: an unencoded `@` in a password, whose rest would be
    read as the host or path."""
    try:
        url = make_url(text.strip())
    except (ArgumentError, ValueError):
        raise ValueError(f"{scheme_only(text)} does not parse as a URL") from None
    host, path = url.host or "", url.database or ""
    if "@" in host + path or any(c.isspace() for c in host):
        raise ValueError(
            f"{scheme_only(text)} does not parse as a URL: an '@' or a space outside its user and "
            "password"
        )
    if not _host_and_port(host, url.port):
        raise ValueError(
            f"{scheme_only(text)} does not parse as a URL: its host or its port is not one"
        )
    return url


def _host_and_port(host: str, port: int | None) -> bool:
    """Whether the standard library reads `host` and `port` as a host and a port, as an HTTP client
    will (a stray bracket, a port past 65535 or under 1 are not); no host at all is a local
    socket's."""
    try:
        return (
            not host or urlsplit(f"//{f'[{host}]' if ':' in host else host}").hostname is not None
        ) and (port is None or 0 < port < 65536)
    except ValueError:
        return False


def userinfo(text: str) -> tuple[str, str]:
    """(user, password) that `text` names, each "" where none (a `password` query parameter is a
    password too); ValueError when it is no URL (see `parsed`)."""
    url = parsed(text)
    password = url.password or url.query.get("password") or ""
    return url.username or "", password if isinstance(password, str) else ",".join(password)


def scheme_only(text: str) -> str:
    """What may be shown of a URL that does not parse: its scheme, when it is a plain word."""
    head, sep, _ = text.strip().partition("://")
    return f"{head}://..." if sep and head.replace("+", "").isalnum() else "(not a URL)"


def shown_url(text: str | None) -> str:
    """A server's address without user, password, query or fragment: what a message, a row or a
    report may show (a URL that does not parse: its scheme)."""
    if not text:
        return "the provider's default address"
    try:
        url = parsed(text)
    except ValueError:
        return scheme_only(text)
    host = url.host or ""
    path = "" if url.database is None else "/" + url.database.split("#")[0]
    return f"{url.drivername}://{f'[{host}]' if ':' in host else host}{f':{url.port}' if url.port else ''}{path}"


def normal(text: str) -> str:
    """One server's URL written one way, so that two spellings of it are seen to be one: scheme and
    host in lower case, the scheme's default port dropped, no trailing slash. A URL already so comes
    back as it is (it is part of cache keys); `env:NAME` too (what it holds is read at run time)."""
    if text.startswith(ENV):
        return text
    parts = urlsplit(text)
    host = parts.hostname or ""
    port = None if parts.port == DEFAULT_PORTS.get(parts.scheme.lower()) else parts.port
    netloc = f"[{host}]" if ":" in host else host
    netloc = f"{netloc}:{port}" if port is not None else netloc
    return urlunsplit(
        (parts.scheme.lower(), netloc, parts.path.rstrip("/"), parts.query, parts.fragment)
    )


def variable(text: str) -> str | None:
    """The environment variable an `env:NAME` URL names; None for a URL written out."""
    return text[len(ENV) :].strip() if text.startswith(ENV) else None


def held(text: str | None) -> str | None:
    """The URL `text` stands for: itself, or what its variable holds (None when that is not set)."""
    name = variable(text) if text else None
    return text if name is None else os.environ.get(name, "").strip() or None


def resolved(text: str | None, key: str) -> str | None:
    """`held(text)`, which must be there: HarnessError naming `key` when its variable is not set."""
    url = held(text)
    if text and url is None:
        raise HarnessError(
            f"{key} names the variable {variable(text)}, which is not set\n"
            f"  fix: export {variable(text)}=https://USER:PASSWORD@HOST/v1 (from the CI's secrets)"
        )
    return url
