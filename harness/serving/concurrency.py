"""Bounded concurrency for HTTP engines: at most N requests in flight, results yielded as they finish."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterator, Sequence

from harness.core.request import Completion, Request


def run_concurrently(complete: Callable[[Request], Completion], requests: Sequence[Request],
                     max_concurrency: int) -> Iterator[tuple[int, Completion]]:
    """Keep at most `max_concurrency` requests in flight; yield (index, completion) as each finishes.

    Pending work is cancelled when the consumer stops (an exception, Ctrl-C, SIGTERM), so shutdown
    never waits for a queue of requests nobody will read.
    """
    pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="harness-request")
    pending: dict[Future[Completion], int] = {}
    queue = iter(enumerate(requests))
    try:
        for index, request in queue:
            pending[pool.submit(complete, request)] = index
            if len(pending) >= max_concurrency:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                yield index, future.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(complete, nxt[1])] = nxt[0]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
