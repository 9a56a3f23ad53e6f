"""How fast the command line answers, against the interpreter's own start in the same run.

Baseline: `python -c pass`. Against it, each in a fresh process, N times (the median shown, in seconds and as a
multiple of the baseline's): `harness --help`; `harness check` on a one-suite endpoint config (tests/support/helpers.py
writes it: the shipped tickets suite, one gate); and `harness compare` on that config against a loopback endpoint
that answers at once, until its first chat request arrives and to its exit. Goals on a 2-core box: --help under
0.5 s, check under 1.5 s, the first request within 3 s.

    .venv/bin/python bench/cli_startup.py [--n 5] [--smoke]
"""

from __future__ import annotations

import argparse
import http.server
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.helpers import (
    endpoint_config,
    local_server,
    send_json,
)  # noqa: E402 (tests/ is put on the path above)

HARNESS = [sys.executable, "-m", "harness.cli"]
ANSWER = (  # valid JSON, so the one gate passes and compare exits 0
    '{"category": "billing", "priority": "high"}'
)


class Endpoint:
    """A loopback OpenAI-compatible endpoint serving model `served`, answering every chat request at
    once with ANSWER; `first` is when the first chat request since `reset()` arrived
    (time.perf_counter)."""

    def __init__(self) -> None:
        self.first: float | None = None
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                send_json(
                    self, 200, {"object": "list", "data": [{"id": "served", "object": "model"}]}
                )

            def do_POST(self) -> None:  # noqa: N802
                endpoint.first = endpoint.first or time.perf_counter()
                self.rfile.read(int(self.headers["Content-Length"]))
                send_json(
                    self,
                    200,
                    {
                        "id": "c",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "served",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": ANSWER},
                            }
                        ],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
                    },
                )

        self.server = local_server(Handler)


def run_once(argv: list[str], endpoint: Endpoint | None = None) -> tuple[float, float | None]:
    """(seconds to exit, seconds to the endpoint's first chat request, if it got one); the command
    must exit 0."""
    if endpoint:
        endpoint.first = None
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, (
        f"{' '.join(argv[2:])}: exit {done.returncode}\n{done.stderr[-2000:]}"
    )
    return elapsed, endpoint.first - started if endpoint and endpoint.first else None


def median_of(n: int, argv: list[str], endpoint: Endpoint | None = None) -> list[float]:
    """The median seconds to exit (and to the first request, with an endpoint) over n runs."""
    runs = [run_once(argv, endpoint) for _ in range(n)]
    return [statistics.median(column) for column in zip(*runs) if None not in column]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=5, help="runs of each command (the median is shown)"
    )
    parser.add_argument("--smoke", action="store_true", help="one run of each (for the tests)")
    args = parser.parse_args()
    n = 1 if args.smoke else args.n
    endpoint = Endpoint()
    with tempfile.TemporaryDirectory() as folder, endpoint.server as url:
        config = str(endpoint_config(Path(folder), base_url=f"{url}/v1"))
        baseline = median_of(n, [sys.executable, "-c", "pass"])[0]
        rows = {
            "python -c pass (baseline)": baseline,
            "harness --help": median_of(n, [*HARNESS, "--help"])[0],
            "harness check (one-suite endpoint config)": median_of(n, [*HARNESS, "check", config])[
                0
            ],
        }
        whole, first = median_of(n, [*HARNESS, "compare", config, "--no-cache"], endpoint)
        rows["harness compare: to its first request"] = first
        rows["harness compare: to its exit (32 instant answers)"] = whole
    print(f"{'command':<52} {'s (median of ' + str(n) + ')':>16} {'x baseline':>11}")
    for name, seconds in rows.items():
        print(f"{name:<52} {seconds:16.3f} {seconds / baseline:11.1f}")


if __name__ == "__main__":
    main()
