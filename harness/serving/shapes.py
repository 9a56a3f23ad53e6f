"""What an HTTP engine takes for an answer, and what it does with any other reply.

The openai and anthropic clients retry connection errors, 408/409/429 and 5xx, but trust every 2xx body:
HTML, invalid JSON or JSON of another shape reached the run as a bare TypeError, and `message.content:
null` as an empty answer that was scored. So an engine reads the raw body itself and checks its shape
first: a reply that is not an answer is a failed request, asked again with backoff (as the clients back
off), then an error row naming the endpoint, the HTTP status and the first characters of the body.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import replace
from typing import Any, Callable, Protocol

from harness.core.credentials import url_secrets
from harness.core.request import Completion, Request
from harness.core.urls import shown_url
from harness.serving.limits import NO_KEY, RatePacer, capped, one_line, redact, redacted

INITIAL_DELAY_S, MAX_DELAY_S = 0.5, 8.0  # the openai and anthropic clients' own backoff
BODY_CHARS = 200  # of a malformed body, in its error row
JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number",
              bool: "a boolean", type(None): "null"}
NUMBER = (int, float)


class NotAnAnswer(ValueError):
    """A reply without the shape of an answer; the message says what is wrong with it."""


class Unreachable(Exception):
    """The server could not be reached at all; the request may be sent to another one (see fleet.spread). The
    message is the client's final error, one line, redacted."""


class MalformedReply(Exception):
    """A request whose every reply was malformed: `message` is its one-line error (see `describe`)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code, self.message = status_code, message


class HttpResponse(Protocol):
    """The HTTP response under an SDK's raw response, as far as we read it (read whole, within the SDK's
    retries: a connection closed mid-body is the client's error, not a reply)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...


class RawReply(Protocol):
    """What the SDKs' `with_raw_response` calls give back."""

    @property
    def http_response(self) -> HttpResponse: ...


def json_name(value: Any) -> str:
    return JSON_NAMES.get(type(value), type(value).__name__)


def checked(value: Any, kinds: type | tuple[type, ...], path: str) -> Any:
    """`value` when it is one of `kinds` (a boolean is never a number here, as in JSON), else NotAnAnswer.
    A string's lone surrogates (JSON can escape them, UTF-8 cannot hold them) become '?', so it can be stored."""
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise NotAnAnswer(f"{path} is a boolean")
    if not isinstance(value, kinds):
        raise NotAnAnswer(f"{path} is {json_name(value)}")
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def need(obj: dict, key: str, kinds: type | tuple[type, ...], path: str) -> Any:
    """obj[key], present, not null and of `kinds`. `path`: where obj is in the body, for the message."""
    where = f"{path}.{key}" if path else key
    if obj.get(key) is None:
        raise NotAnAnswer(f"{where} is {'null' if key in obj else 'missing'}")
    return checked(obj[key], kinds, where)


def may(obj: dict, key: str, kinds: type | tuple[type, ...], path: str, default: Any) -> Any:
    """obj[key] of `kinds`, or `default` when it is missing or null."""
    return default if obj.get(key) is None else need(obj, key, kinds, path)


def count(obj: dict, key: str, path: str) -> int:
    """A token count: a non-negative integer that fits the store's integers; 0 when absent."""
    value = may(obj, key, int, path, 0)
    if not 0 <= value < 2**63:
        raise NotAnAnswer(f"{path}.{key} is {'negative' if value < 0 else 'too large'} for a token count")
    return value


def logprob(obj: dict, key: str, path: str) -> float:
    """A log-probability: a number below +inf (NaN is none); -inf is a probability of 0."""
    value = need(obj, key, NUMBER, path)
    try:
        value = float(value)
    except OverflowError:
        value = math.inf  # an integer too large for a float: no log-probability either
    if not value < math.inf:
        raise NotAnAnswer(f"{path}.{key} is {value}, not a log-probability")
    return value


def json_object(text: str) -> dict:
    """The body as a JSON object (a body nested too deep to parse is no answer either)."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise NotAnAnswer("the body is not JSON") from None
    return checked(body, dict, "the body")


def backoff(attempt: int) -> float:
    """Seconds before try `attempt` (1, 2, ...): doubling from 0.5 s up to 8 s, less up to a quarter of jitter."""
    return min(INITIAL_DELAY_S * 2 ** min(attempt - 1, 8), MAX_DELAY_S) * (1 - 0.25 * random.random())


def well_formed(send: Callable[[], RawReply], read: Callable[[dict], Completion], endpoint: str, retries: int,
                secrets: tuple[str, ...]) -> Completion:
    """`read` of the first reply whose body it can read; a malformed one is sent again up to `retries` times.
    `send` raises what the client raises (its own retries done); after the last malformed reply, MalformedReply
    with the endpoint, the status, what is wrong and the body's first characters, redacted, on one line."""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff(attempt))
        reply = send().http_response
        try:
            return read(json_object(reply.text))
        except NotAnAnswer as exc:
            problem = str(exc)
    body = one_line(redact(reply.text, secrets), BODY_CHARS) if reply.text else "(empty)"
    tries = f" (every one of {retries + 1} tries)" if retries else ""
    raise MalformedReply(reply.status_code, f"{endpoint} answered HTTP {reply.status_code} with a reply that is not "
                                            f"an answer{tries}: {problem}; body starts: {body}")


class HttpEngine:
    """What the OpenAI and Anthropic engines share: how a reply becomes a completion, whatever comes back."""

    client: Any  # the SDK's client: `base_url`, and raises `client_errors`
    client_errors: tuple[type[Exception], ...]
    unreachable_errors: tuple[type[Exception], ...] = ()  # the client's: no server answered at all (refused, reset)
    timeout_errors: tuple[type[Exception], ...] = ()  # the client's: a server that may be alive, only slow
    failover = False  # raise Unreachable for an unreachable server, so a fleet sends the request elsewhere
    complete: Callable[[Request], Completion]  # one request (each engine's own)
    max_retries: int
    max_answer_chars: int | None  # cut longer answers (see limits.capped); None: as long as they come
    secrets: tuple[str, ...]
    pacer: RatePacer

    def answer(self, send: Callable[[], RawReply], read: Callable[[dict], Completion]) -> Completion:
        """`read` of a well-formed reply to `send`, redacted of the key this engine sends (the one secret an
        endpoint is given, so the one it can echo; see generate.run_secrets for the rest), then capped; or an
        error row: the client's final error, or the last malformed reply (see well_formed). Paced before the
        first try only, as the client's own retries are; the latency is the request's, retries included."""
        self.pacer.wait()
        started = time.perf_counter()
        try:
            completion = well_formed(send, read, shown_url(str(self.client.base_url)), self.max_retries, self.secrets)
        except (*self.client_errors, MalformedReply) as exc:
            if self.failover and isinstance(exc, self.unreachable_errors) and not isinstance(exc, self.timeout_errors):
                raise Unreachable(describe(exc, self.secrets)) from None
            return Completion(text="", latency_s=time.perf_counter() - started, error=describe(exc, self.secrets))
        completion = replace(completion, latency_s=time.perf_counter() - started)
        return capped(redacted(completion, self.secrets), self.max_answer_chars)

    def logliks(self, requests: list[Request]) -> list[Completion]:
        """Log-likelihood requests of one served name; an engine that cannot score prompts refuses each."""
        return [self.complete(request) for request in requests]


def own_secrets(api_key: str, base_url: object) -> tuple[str, ...]:
    """What an engine sends that is secret: its key, unless it is the placeholder sent when there is none, and the
    user and password of its URL (one read from a variable: see urls.resolved), as basic authentication sends
    them. `base_url`: text, the SDK's URL type, or None (the provider's default)."""
    return tuple(sorted(({api_key} - {NO_KEY}) | url_secrets(None if base_url is None else str(base_url))))


def describe(exc: Exception, secrets: tuple[str, ...]) -> str:
    """A one-line error: the kind, the status, the message; never request headers or the key."""
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    return one_line(redact(f"{type(exc).__name__}{f' {status}' if status else ''}: {message}", secrets), 500)
