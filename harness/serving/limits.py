"""Client-side limits shared by the HTTP engines: a requests-per-minute pacer, secret redaction (see
core.credentials) and the size of an answer."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from harness.core.credentials import redact
from harness.core.request import Completion

NO_KEY = "EMPTY"  # what is sent when no key is configured (our own vLLM server): not a secret
MAX_ANSWER_CHARS = 200_000  # an endpoint answer longer than this is cut (see `capped`)
LENGTH_CAP = "length_cap"  # the finish reason of a cut answer


class RatePacer:
    """Spaces request starts at least 60/rpm seconds apart across threads (no bursts past the
    limit).

    Endpoints enforce per-minute quotas; pacing below them avoids 429s instead of retrying through
    them.
    """

    def __init__(self, requests_per_minute: float | None) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def redacted(completion: Completion, secrets: tuple[str, ...]) -> Completion:
    """The completion with every secret out of each text of it that is stored or shown: the answer
    (so it is scored redacted, too), the error, the finish reason and the alternatives of its first
    token."""
    if not secrets:
        return completion

    def clean(text: str | None) -> str | None:
        return None if text is None else redact(text, secrets)

    return replace(
        completion,
        text=redact(completion.text, secrets),
        error=clean(completion.error),
        finish_reason=clean(completion.finish_reason),
        top_logprobs=tuple((redact(token, secrets), lp) for token, lp in completion.top_logprobs),
    )


def capped(completion: Completion, max_chars: int | None) -> Completion:
    """An answer cut at `max_chars`, its finish reason saying so: an endpoint owes no heed to
    `max_tokens`, and one 10 MB answer would otherwise be stored, cached and rendered whole."""
    if max_chars is None or len(completion.text) <= max_chars:
        return completion
    return replace(completion, text=completion.text[:max_chars], finish_reason=LENGTH_CAP)


def one_line(text: str, limit: int) -> str:
    """The first `limit` characters of `text` on one line, newlines and other unprintable characters
    escaped as Python writes them (\\n, \\x1b, \\u2028), "..." after them when there was more: an
    error row that is safe in a log line, a terminal or a CI annotation."""
    head = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return head + ("..." if len(text) > limit else "")
