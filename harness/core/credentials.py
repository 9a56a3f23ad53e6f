"""The credentials a run sends, in every form they may come back in, and taking them out of text.

A server echoes what it was sent, and it was sent more than the values themselves: `Authorization:
Basic` carries base64 of `user:password` (what an HTTP client makes of a URL's user and password), a
URL carries its password percent-encoded, a JSON body carries it escaped. Redacting the plain value
alone left each of these in the store.
"""

from __future__ import annotations

import base64
import json
from typing import Iterable
from urllib.parse import quote, quote_plus

from harness.core.urls import userinfo

SHORTEST = 4  # a value under this many characters is left alone: it would redact words


def forms(value: str) -> set[str]:
    """`value` as sent and as it may be echoed: stripped of padding whitespace, percent-encoded (in
    a path or a form), JSON-escaped."""
    out = set()
    for v in {value, value.strip()}:
        out |= {
            v,
            quote(v, safe=""),
            quote(v),
            quote_plus(v),
            json.dumps(v)[1:-1],
            json.dumps(v, ensure_ascii=False)[1:-1],
        }
    return out


def url_secrets(url: str | None) -> set[str]:
    """The secrets of the user and password `url` names (none for a URL that names neither or does
    not parse): the password (or, without one, the user, which then is the token), and base64 of
    `user:password` as HTTP basic authentication sends it."""
    try:
        user, password = userinfo(url) if url else ("", "")
    except ValueError:
        return set()
    if not (user or password):
        return set()
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {password or user, basic, basic.rstrip("=")}


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every form of every secret (see `forms`) replaced by ***: errors and answers from
    APIs and databases sometimes echo one; never let it reach a log, the store or a report. Longest
    first, so a secret that contains another is not left half shown."""
    values = {form for secret in secrets for form in forms(secret) if len(form) >= SHORTEST}
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "***")
    return text
