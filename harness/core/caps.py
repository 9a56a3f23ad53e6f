"""How far the config's size-like numbers may go, each limit with the reason it sits where it does.

Each field's own `ge` / `gt` keeps a number from going below what makes sense (a type here carries
no lower bound, since pydantic keeps one `ge` per field and the inner would win); these keep it from
going past what any run can use. Past them a value was accepted at plan time and then hung or
crashed mid-run, after models had started: 10**9 bootstrap resamples ran for minutes and then raised
MemoryError (15 GB in), a socket timeout of 1e300 s raises OverflowError, and 2000 retries overflow
the backoff's float.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Callable

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

# numpy's legacy seeding (np.random.seed, which transformers' set_seed calls) takes 0..2**32-1: the
# narrowest of the libraries a run's seed reaches (torch takes 64 bits, default_rng any non-negative
# int).
MAX_SEED = 2**32 - 1
# A bootstrap p-value is resolved to about 1/resamples: at 10**6 that is 10**-6, far finer than any
# alpha a gate is decided at, while each comparison keeps every resampled mean (8 MB at 10**6; 10**9
# held 8 GB).
MAX_RESAMPLES = 1_000_000
# Each request in flight is a thread and an open connection: 1024 is the usual per-process open-file
# limit (ulimit -n), and no server batches that many (vLLM's default max_num_seqs is 256).
MAX_CONCURRENCY = 1024
# Retries back off up to 8 s each: 100 of them wait about 13 minutes on one request, long past the
# point where an endpoint is down rather than busy (and the backoff's 2**attempt no longer fits a
# float past 1024).
MAX_RETRIES = 100
# A day: a timeout past it is a hang, not a limit (and time.sleep / Event.wait overflow on huge
# values).
MAX_SECONDS = 86_400.0
# 2**20 tokens: no served model's context is longer (the longest offered are about a million
# tokens).
MAX_TOKENS = 1 << 20
# Devices of one model (parallel sizes, replicas, training processes): each is a worker process;
# 1024 is past any cluster one vLLM deployment or one training job spans, and a typo of 10**6 would
# fork until the machine stops.
MAX_DEVICES = 1024
# Prompts per forward batch: 4096 padded sequences already exceed the memory of any one device.
MAX_BATCH = 4096
# One request every 100 minutes: below that a pacer sleeps for days per suite (and 60/rpm overflows
# the clock).
MIN_REQUESTS_PER_MINUTE = 0.01


def _shown(number: float) -> str:
    """1,048,576 or 0.01; a huge value by its order of magnitude (an int of 400 digits fits no
    float)."""
    if isinstance(number, float) and not math.isfinite(number):
        return str(number)
    if abs(number) >= 1e15:
        return f"about 10**{len(str(abs(int(number)))) - 1}"
    return f"{int(number):,}" if number == int(number) else f"{number:,}"


def _limit(
    bound: float, why: str, beyond: Callable[[Any, float], bool], side: str
) -> AfterValidator:
    def check(value: Any) -> Any:
        if value is not None and beyond(value, bound):
            raise PydanticCustomError(
                "beyond_limit",
                "{value} is {side} the limit of {limit}: {why}",
                {
                    "value": _shown(value),
                    "side": side,
                    "limit": _shown(bound),
                    "why": why,
                    "fix": (
                        f"use a value {'at most' if side == 'past' else 'at least'} {_shown(bound)}"
                    ),
                },
            )
        return value

    return AfterValidator(check)


def at_most(bound: float, why: str) -> AfterValidator:
    return _limit(bound, why, lambda value, limit: value > limit, "past")


def at_least(bound: float, why: str) -> AfterValidator:
    return _limit(bound, why, lambda value, limit: value < limit, "below")


_SEEDS = "numpy's seeding takes 0..2**32-1"
Seed = Annotated[int, at_least(0, _SEEDS), at_most(MAX_SEED, _SEEDS)]
Resamples = Annotated[
    int,
    at_most(
        MAX_RESAMPLES,
        "a p-value is already resolved to 10**-6 there, and each comparison keeps every resample",
    ),
]
Concurrency = Annotated[
    int, at_most(MAX_CONCURRENCY, "each request in flight is a thread and an open connection")
]
Retries = Annotated[
    int, at_most(MAX_RETRIES, "100 backed-off retries wait ~13 minutes on one request")
]
Tries = Annotated[
    int, at_most(MAX_RETRIES, "a judge with no usable answer in 100 tries will not give one")
]
Seconds = Annotated[float, at_most(MAX_SECONDS, "a timeout past a day is a hang")]
Tokens = Annotated[int, at_most(MAX_TOKENS, "no served model's context is longer")]
Batch = Annotated[int, at_most(MAX_BATCH, "a padded batch that large fits no device's memory")]
DeviceCount = Annotated[
    int, at_most(MAX_DEVICES, "each is a worker process, and no one model spans more")
]
RequestsPerMinute = Annotated[
    float,
    at_least(
        MIN_REQUESTS_PER_MINUTE,
        "slower than one request every 100 minutes is a hang, not a rate limit",
    ),
]
