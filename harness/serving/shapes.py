"""What an HTTP engine takes for an answer, and what it does with any other reply.

The openai and anthropic clients retry connection errors, 408/409/429 and 5xx, but trust every 2xx
body: HTML, invalid JSON or JSON of another shape reached the run as a bare TypeError, and
`message.content: null` as an empty answer that was scored. So an engine reads the raw body itself
and checks its shape first: a reply that is not an answer is a failed request, asked again with
backoff (as the clients back off), then an error row naming the endpoint, the HTTP status and the
first characters of the body.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from dataclasses import replace
from typing import Any, Awaitable, Callable, Iterable, Protocol

from harness.core.console import console
from harness.core.credentials import url_secrets
from harness.core.request import Completion, Request
from harness.core.urls import shown_url
from harness.serving import deadline
from harness.serving.limits import NO_KEY, RatePacer, capped, one_line, redact, redacted

INITIAL_DELAY_S, MAX_DELAY_S = 0.5, 8.0  # the openai and anthropic clients' own backoff
BODY_CHARS = 200  # of a malformed body, in its error row
LISTED_SHOWN = 5  # model names shown of a server that lists others than the one asked
# A dated snapshot, as providers name the one an alias points to: -2024-08-06, -20250219, -0613
SNAPSHOT = r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4})"
ALIAS_TAIL = re.compile(r"-(?:latest|0)$")  # an alias's word in a snapshot date's place
UNREAD = object()  # a model list not asked for yet
JSON_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}
NUMBER = (int, float)


class NotAnAnswer(ValueError):
    """A reply without the shape of an answer; the message says what is wrong with it."""


class Unreachable(Exception):
    """The server could not be reached at all; the request may be sent to another one (see
    fleet.spread). The message is the client's final error, one line, redacted."""


class Unanswered(Exception):
    """A request a server took and did not answer: an error row, its message naming the server; not
    sent to another server (this one may have acted on it). What a fleet makes of the server is each
    subclass's.
    """


class TimedOut(Unanswered):
    """No complete answer within the request's deadline (see serving.deadline): counted as timed out
    in the server's record; the server stays (it may be slow only)."""


class AnotherModel(Unanswered):
    """The server answered as another model than the one asked (see `serves`): its answer is no
    answer of ours, and the server is left (see fleet.spread)."""


class MalformedReply(Exception):
    """A request whose every reply was malformed: `message` is its one-line error (see `describe`)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code, self.message = status_code, message


class HttpResponse(Protocol):
    """The HTTP response under an SDK's raw response, as far as we read it (read whole, within the
    SDK's retries: a connection closed mid-body is the client's error, not a reply)."""

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
    """`value` when it is one of `kinds` (a boolean is never a number here, as in JSON), else
    NotAnAnswer. A string's lone surrogates (JSON can escape them, UTF-8 cannot hold them) become
    '?', so it can be stored.
    """
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise NotAnAnswer(f"{path} is a boolean")
    if not isinstance(value, kinds):
        raise NotAnAnswer(f"{path} is {json_name(value)}")
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def need(obj: dict, key: str, kinds: type | tuple[type, ...], path: str) -> Any:
    """obj[key], present, not null and of `kinds`. `path`: where obj is in the body, for the
    message."""
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
        raise NotAnAnswer(
            f"{path}.{key} is {'negative' if value < 0 else 'too large'} for a token count"
        )
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
    """Seconds before try `attempt` (1, 2, ...): doubling from 0.5 s up to 8 s, less up to a quarter
    of jitter."""
    return min(INITIAL_DELAY_S * 2 ** min(attempt - 1, 8), MAX_DELAY_S) * (
        1 - 0.25 * random.random()
    )


def well_formed(
    send: Callable[[], RawReply],
    read: Callable[[dict], Completion],
    endpoint: str,
    retries: int,
    secrets: tuple[str, ...],
) -> Completion:
    """`read` of the first reply whose body it can read; a malformed one is sent again up to
    `retries` times. `send` raises what the client raises (its own retries done); after the last
    malformed reply, MalformedReply with the endpoint, the status, what is wrong and the body's
    first characters, redacted, on one line.
    """
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
    raise MalformedReply(
        reply.status_code,
        f"{endpoint} answered HTTP {reply.status_code} with a reply that is not "
        f"an answer{tries}: {problem}; body starts: {body}",
    )


def serves(asked: str, named: str) -> bool:
    """Whether a server that names `named` (a reply's `model`, an entry of its model list) answers
    for the model `asked`: the same name in any letter case, or the dated snapshot that `asked` is
    the alias of, as providers name it: `asked` and a date (gpt-4o -> gpt-4o-2024-08-06, gpt-4 ->
    gpt-4-0613), or in place of an alias's `-latest` or `-0` (claude-3-7-sonnet-latest ->
    claude-3-7-sonnet-20250219, claude-sonnet-4-0 -> claude-sonnet-4-20250514). Nothing else:
    gpt-4o-mini-2024-07-18 is not gpt-4o, nor is a model of the same name under another owner's
    prefix."""
    asked, named = asked.casefold(), named.casefold()
    return (
        named == asked
        or re.fullmatch(re.escape(ALIAS_TAIL.sub("", asked)) + SNAPSHOT, named) is not None
    )


class HttpEngine:
    """What the OpenAI and Anthropic engines share: how a reply becomes a completion, whatever comes
    back, within the deadlines of serving.deadline, from a server of the model asked.

    The model is checked twice: a server's model list (GET /models, read once) that lacks a model
    asked for leaves the server before it is sent a request (see `other_models`), and a reply that
    names another model is an error row and leaves it (AnotherModel). A server that lists no models
    (no such route: every OpenAI-compatible server we know has one, so this is said in the log) or a
    reply without a `model` is taken on the other check; a deployment name that is neither listed
    nor answered as (Azure, a LiteLLM router) is refused unless the config names what it answers as
    (`answers_as`)."""

    client: Any  # the SDK's async client: `base_url`, and raises `client_errors`
    client_errors: tuple[type[Exception], ...]
    unreachable_errors: tuple[
        type[Exception], ...
    ] = ()  # the client's: no server answered at all (refused, reset)
    timeout_errors: tuple[
        type[Exception], ...
    ] = ()  # the client's: a server that may be alive, only slow
    failover = (
        False  # raise Unreachable for an unreachable server, so a fleet sends the request elsewhere
    )
    complete: Callable[[Request], Completion]  # one request (each engine's own)
    max_retries: int
    timeout_s: float  # each try's deadline (request_timeout_s; see serving.deadline)
    max_answer_chars: (
        int | None
    )  # cut longer answers (see limits.capped); None: as long as they come
    secrets: tuple[str, ...]
    pacer: RatePacer
    _listed: tuple[str, ...] | None | object = UNREAD  # the server's model list (see `listed`)
    answers_as: tuple[
        str, ...
    ] = ()  # names taken for the model asked, beyond `serves` (the config's answers_as)

    @property
    def endpoint(self) -> str:
        """The server, as messages and rows name it: as the config does, without the slash the
        client adds."""
        return shown_url(str(self.client.base_url).rstrip("/"))

    def list_models(self) -> Awaitable[RawReply]:
        """GET the server's model list, once, without retries (each engine's own)."""
        raise NotImplementedError

    def answer(
        self,
        send: Callable[[], Awaitable[RawReply]],
        read: Callable[[dict], Completion],
        model: str,
    ) -> Completion:
        """`read` of a well-formed reply to `send` from a server of `model`, redacted of the key
        this engine sends (the one secret an endpoint is given, so the one it can echo; see
        generate.run_secrets for the rest), then capped; or an error row: the client's final error,
        or the last malformed reply (see well_formed); or TimedOut when each try ran out of its
        time, or the request of `most_s`; or AnotherModel. Paced before the first try only, as the
        client's own retries are; the latency is the request's, retries included.
        """
        self.pacer.wait()
        started = time.perf_counter()
        ends = started + self.most_s
        try:
            completion = well_formed(
                lambda: deadline.run(send(), ends - time.perf_counter()),
                lambda body: self.as_asked(read(body), body, model),
                self.endpoint,
                self.max_retries,
                self.secrets,
            )
        except (*self.timeout_errors, TimeoutError) as exc:
            raise TimedOut(self.timed_out(isinstance(exc, TimeoutError))) from None
        except (*self.client_errors, MalformedReply) as exc:
            if self.failover and isinstance(exc, self.unreachable_errors):
                raise Unreachable(describe(exc, self.secrets)) from None
            return Completion(
                text="", latency_s=time.perf_counter() - started, error=describe(exc, self.secrets)
            )
        completion = replace(completion, latency_s=time.perf_counter() - started)
        return capped(redacted(completion, self.secrets), self.max_answer_chars)

    @property
    def most_s(self) -> float:
        """The most a request may take, its tries and the backoff before each: (max_retries + 1) x
        (request_timeout_s + the longest backoff). Each try keeps its own time; only a request that
        is sent again and again (malformed replies, a long Retry-After) meets this bound."""
        return (self.max_retries + 1) * (self.timeout_s + MAX_DELAY_S)

    def timed_out(self, in_all: bool) -> str:
        """The error row of a request past its deadline: each try's (the client's tries all ended
        there), or the request's as a whole (`in_all`, see `most_s`)."""
        if in_all:
            return (
                f"no complete answer from {self.endpoint} within {self.most_s:g} s, the most a"
                f" request may take ((max_retries + 1) x (request_timeout_s + {MAX_DELAY_S:g} s of"
                " backoff))"
            )
        tries = self.max_retries + 1
        return (
            f"no complete answer from {self.endpoint} within {self.timeout_s:g} s"
            f" (request_timeout_s), {tries} {'try' if tries == 1 else 'tries'}"
        )

    def as_asked(self, completion: Completion, body: dict, model: str) -> Completion:
        """The completion, when the reply names `model` or names none (no `model`, or ""; see
        `serves`); else AnotherModel."""
        named = may(body, "model", str, "", None)
        if not named or self.names(model, named):
            return completion
        raise AnotherModel(
            f"{self.endpoint} answers as model {self.shown(named)}, not {model}: a server of"
            " another model"
        )

    def names(self, asked: str, named: str) -> bool:
        """Whether `named` (a reply's model, an entry of the model list) is the model `asked` on
        this server: by `serves`, or as one of the names the config says it answers as (a deployment
        name behind a router that answers as the model it routes to, which no rule can guess)."""
        return any(serves(name, named) for name in (asked, *self.answers_as))

    def other_models(self, asked: Iterable[str]) -> str | None:
        """Why this server is no server of the models `asked`: its list (read once, see `listed`)
        lacks one of them; None when it lists them all, or lists none that can be read."""
        listed = self.listed()
        missing = [
            model
            for model in asked
            if listed is not None and not any(self.names(model, n) for n in listed)
        ]
        if not missing:
            return None
        names = ", ".join(self.shown(name) for name in listed[:LISTED_SHOWN]) or "no model"
        more = f" and {len(listed) - LISTED_SHOWN} more" if len(listed) > LISTED_SHOWN else ""
        return f"serves {names}{more}, not {', '.join(missing)}"

    def listed(self) -> tuple[str, ...] | None:
        """The ids of the server's model list, read on first use; None where it lists none that can
        be read (no such route, an error, a body of another shape or one page of several), which the
        log says. A fleet asks each of its servers from one thread."""
        if self._listed is UNREAD:
            self._listed = self.read_listing()
        return self._listed  # type: ignore[return-value]

    def read_listing(self) -> tuple[str, ...] | None:
        try:
            body = json_object(deadline.run(self.list_models(), self.timeout_s).http_response.text)
            if body.get("has_more") is True:
                raise NotAnAnswer("it is one page of several")
            entries = need(body, "data", list, "")
            return tuple(
                need(checked(entry, dict, f"data[{i}]"), "id", str, f"data[{i}]")
                for i, entry in enumerate(entries)
            )
        except (*self.client_errors, NotAnAnswer, TimeoutError) as exc:
            status = getattr(
                exc, "status_code", None
            )  # a body of an error status is only noise here
            why = f"HTTP {status}" if status else describe(exc, self.secrets)
            console.log(
                f"{self.endpoint} gives no model list ({why}): the model each of its replies names"
                " is checked instead"
            )
            return None

    def shown(self, name: str) -> str:
        """A model name a server gave, as a message may show it: redacted, on one short line."""
        return one_line(redact(name, self.secrets), 80)

    def close(self) -> None:
        """Close the client's connections."""
        deadline.run(self.client.close(), self.timeout_s)

    def logliks(self, requests: list[Request]) -> list[Completion]:
        """Log-likelihood requests of one served name; an engine that cannot score prompts refuses
        each."""
        return [self.complete(request) for request in requests]


def own_secrets(api_key: str, base_url: object) -> tuple[str, ...]:
    """What an engine sends that is secret: its key, unless it is the placeholder sent when there is
    none, and the user and password of its URL (one read from a variable: see urls.resolved), as
    basic authentication sends them. `base_url`: text, the SDK's URL type, or None (the provider's
    default)."""
    return tuple(
        sorted(({api_key} - {NO_KEY}) | url_secrets(None if base_url is None else str(base_url)))
    )


def describe(exc: Exception, secrets: tuple[str, ...]) -> str:
    """A one-line error: the kind, the status, the message; never request headers or the key."""
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    return one_line(
        redact(f"{type(exc).__name__}{f' {status}' if status else ''}: {message}", secrets), 500
    )
