"""A deadline for each try of an HTTP request, and one for the request as a whole.

httpx's timeouts (and so the openai and anthropic clients') bound each operation, not the reply:
`read` is the longest wait for the next chunk, so a server that sends a byte every second held each
request ~130 s against a 3 s timeout, and a slower one holds it for hours. httpx has no total
timeout (encode/httpx#1450, still open); its maintainers' answer is to cancel the request, which
only an async client can be made to do wherever it waits (connecting, sending, in the headers, in
the body). So the HTTP engines call the SDKs' async clients, on one event loop on a thread of its
own:

- each try (the client's retries are tries too) is cancelled `request_timeout_s` after it starts, its connection
  closed, and the client sees a timeout, which it retries as it retries its own (see `TryDeadline`);
- a request as a whole, its tries and the backoff before each, is cancelled after (max_retries + 1) x
  (request_timeout_s + 8 s), a bound only a request sent again and again meets (see `run`, and
  shapes.HttpEngine.most_s; HttpEngine.answer says what the error row then says).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
from typing import Any, Awaitable, TypeVar

T = TypeVar("T")
TIMEOUT = (  # request_timeout_s
    "a deadline for each try of a request, however slowly the server sends (serving/deadline.py); a"
    " request's tries and the backoff before each take (max_retries + 1) x (this + 8 s) at most"
)

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def event_loop() -> asyncio.AbstractEventLoop:
    """The loop the HTTP engines' requests run on, started with its thread on first use (a daemon
    thread: a request still waiting when the process ends is given up, as a blocked socket read
    was)."""
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="harness-http", daemon=True).start()
            _loop = loop
        return _loop


def _forget_loop() -> None:
    """A forked child has the loop but not its thread: it starts its own."""
    global _loop
    _loop = None


os.register_at_fork(after_in_child=_forget_loop)


def run(work: Awaitable[T], within_s: float) -> T:
    """The result of `work`, run on the engines' loop from any other thread; past `within_s` seconds
    it is cancelled (its connection closed) and TimeoutError raised. If the caller is interrupted
    while it waits, the work is cancelled too, so nothing keeps a connection for a caller that has
    gone."""
    future = asyncio.run_coroutine_threadsafe(_within(work, within_s), event_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


async def _within(work: Awaitable[T], seconds: float) -> T:
    try:
        return await asyncio.wait_for(work, max(seconds, 0.0))
    except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
        raise TimeoutError(f"not done within {seconds:g} s") from None


class TryDeadline:
    """Mixed into an SDK's async httpx client class (`class Http(TryDeadline,
    openai.DefaultAsyncHttpxClient)`, which keeps the SDK's defaults and the environment's proxies):
    every `send`, that is every try, must have its whole reply, body read, within `deadline_s`, or
    it is cancelled and raises the httpx ReadTimeout of the client's own httpx, so that the SDK
    counts it as a timeout and retries it as such."""

    def __init__(self, deadline_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline_s = deadline_s

    async def send(self, request: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.wait_for(self._whole(request, **kwargs), self.deadline_s)
        except asyncio.TimeoutError:
            httpx = importlib.import_module(
                type(request).__module__.partition(".")[0]
            )  # httpx, or the SDK's fork
            raise httpx.ReadTimeout(
                f"no complete reply within {self.deadline_s:g} s", request=request
            ) from None

    async def _whole(self, request: Any, **kwargs: Any) -> Any:
        """The reply with its body read, even when the caller asked to stream it, so the deadline
        covers it."""
        response = await super().send(request, **kwargs)  # type: ignore[misc]
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response
