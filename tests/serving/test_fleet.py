"""Requests spread over several servers of one model: least outstanding requests, and a server that
dies mid-run loses nothing. The servers are real processes on loopback
(tests/support/chat_server.py), killed with SIGKILL.
"""

from __future__ import annotations

import threading
import time

import pytest
import yaml

from harness.core.request import Completion
from harness.core.urls import shown_url
from harness.serving.fleet import Replica, spread
from harness.serving.shapes import Unreachable
from support.fleet import chat_servers, responses
from support.scenarios import PROMPT, Project, answer


def echo(replica: Replica, item: int) -> str:
    return f"{replica.name}:{item}"


def test_every_item_once_and_what_a_dead_replica_held_moves() -> None:
    """A dies on its fourth item: that one and everything after it go to B; no item is answered
    twice."""
    calls = {"a": 0}

    def call(replica: Replica, item: int) -> str:
        if replica.name == "a":
            calls["a"] += 1
            if calls["a"] > 3:
                raise Unreachable("connection refused")
        time.sleep(0.01)
        return echo(replica, item)

    a, b = Replica("a", None, 2), Replica("b", None, 2)
    got = dict(spread(list(range(40)), [a, b], call, lambda item, why: f"none:{why}"))
    assert sorted(got) == list(range(40))
    assert sum(v.startswith("a:") for v in got.values()) == 3 == a.answered
    assert b.answered == 37 and a.down == "connection refused" and a.moved >= 1
    assert a.answered + b.answered == 40 and not any(v.startswith("none") for v in got.values())


def test_least_outstanding_requests_sends_less_to_the_slow_replica() -> None:
    def call(replica: Replica, item: int) -> str:
        time.sleep(0.05 if replica.name == "slow" else 0.005)
        return echo(replica, item)

    slow, fast = Replica("slow", None, 2), Replica("fast", None, 2)
    assert len(dict(spread(list(range(60)), [slow, fast], call, lambda item, why: why))) == 60
    assert fast.answered > 3 * slow.answered > 0


def test_no_two_items_beyond_a_replicas_capacity() -> None:
    held, peak, lock = {"a": 0, "b": 0}, {"a": 0, "b": 0}, threading.Lock()

    def call(replica: Replica, item: int) -> str:
        with lock:
            held[replica.name] += 1
            peak[replica.name] = max(peak[replica.name], held[replica.name])
        time.sleep(0.01)
        with lock:
            held[replica.name] -= 1
        return echo(replica, item)

    replicas = [Replica("a", None, 3), Replica("b", None, 3)]
    assert (
        len(
            dict(
                spread(list(range(50)), replicas, call, lambda item, why: why, capacity=lambda r: 1)
            )
        )
        == 50
    )
    assert peak == {"a": 1, "b": 1}


def test_when_every_replica_is_down_each_item_is_unanswered_with_the_reason() -> None:
    def call(replica: Replica, item: int) -> str:
        raise Unreachable(f"{replica.name} refused")

    got = dict(
        spread(
            list(range(7)),
            [Replica("a", None, 2), Replica("b", None, 2)],
            call,
            lambda item, why: f"none: {why}",
        )
    )
    assert sorted(got) == list(range(7)) and all(
        v.startswith("none: ") and "refused" in v for v in got.values()
    )


def test_a_shown_address_carries_no_credentials() -> None:
    assert (
        shown_url("https://bob:s3cret@host.example:8443/v1?key=abc#x")
        == "https://host.example:8443/v1"
    )
    assert shown_url(None) == "the provider's default address"


def fleet_project(project: Project, urls: list[str], cases: int, concurrency: int = 2) -> None:
    project.suite(
        "tickets",
        ["equals"],
        [
            {"id": f"c{i:02d}", "prompt": f"case {i:02d}", "reference": f"echo: case {i:02d}"}
            for i in range(cases)
        ],
    )
    fleet = {
        "name": "prod",
        "kind": "endpoint",
        "base_urls": urls,
        "model": "fleet-model",
        "max_retries": 1,
        "max_concurrency": concurrency,
    }
    project.config(
        [PROMPT, fleet],
        [{"candidate": "prod", "suite": "tickets", "metric": "equals", "min": 0.9}],
        [answer("unused")],
    )


def test_a_fleet_server_killed_mid_run_loses_no_row(project: Project) -> None:
    """Server A is SIGKILLed when its fifth request arrives (with others in flight): every case
    still has exactly one answer, the right one, and the report names A, that it was left, and how
    many requests moved off it.
    """
    with chat_servers(["--delay", "0.05", "--die-after", "5"], ["--delay", "0.05"]) as servers:
        (a_url, a_proc), (b_url, _) = servers
        fleet_project(project, [a_url, b_url], cases=40)
        code, results = project.run("--no-cache")
        assert a_proc.wait(timeout=5) == -9
    assert code == 0, results["verdict"]
    rows = responses(project, results["run"]["id"])
    assert sorted(case for case, _, _ in rows) == [f"c{i:02d}" for i in range(40)]
    assert all(error is None and output == f"echo: case {case[1:]}" for case, error, output in rows)
    serving = next(a for a in results["artifacts"] if a["kind"] == "serving")
    by_url = {r["url"]: r for r in serving["replicas"]}
    assert by_url[a_url]["down"] and by_url[b_url]["down"] is None
    # A answered what it finished before its fifth request arrived (3 or 4, two in flight at a
    # time); what it held then (one or two), and at most one sent as it died, moved
    assert by_url[a_url]["answered"] in (3, 4) and 1 <= by_url[a_url]["moved"] <= 2
    assert by_url[a_url]["answered"] + by_url[b_url]["answered"] == 40
    html = next((project.root / "reports").glob("*/report.html")).read_text()
    assert (
        a_url in html
        and f'<td class="num">{by_url[a_url]["moved"]}</td>' in html
        and "left: " in html
    )


def test_a_fleet_server_that_never_answers_is_left_at_once(project: Project) -> None:
    with chat_servers([]) as ((b_url, _),):
        dead = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
        fleet_project(project, [dead, b_url], cases=12)
        code, results = project.run("--no-cache")
    assert code == 0 and len(responses(project, results["run"]["id"])) == 12
    by_url = {
        r["url"]: r
        for r in next(a for a in results["artifacts"] if a["kind"] == "serving")["replicas"]
    }
    assert (
        by_url[dead]["answered"] == 0
        and by_url[dead]["moved"] >= 1
        and by_url[b_url]["answered"] == 12
    )


def test_a_fleet_of_dead_servers_is_no_verdict(project: Project) -> None:
    fleet_project(project, ["http://127.0.0.1:9/v1", "http://127.0.0.1:7/v1"], cases=3)
    code, results = project.run("--no-cache")
    assert code == 2 and results["verdict"]["decision"] == "error"
    assert all(error for _, error, _ in responses(project, results["run"]["id"]))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"base_url": "http://127.0.0.1:9/v1"}, "`base_url` and `base_urls` both set"),
        ({"base_urls": ["http://a/v1", "http://a/v1"]}, "http://a/v1 listed more than once"),
        ({"base_urls": []}, "base_urls"),
    ],
)
def test_a_fleet_is_checked_with_the_config(
    project: Project, extra: dict, message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    fleet_project(project, ["http://127.0.0.1:9/v1", "http://127.0.0.1:7/v1"], cases=2)
    config = yaml.safe_load((project.root / "config.yaml").read_text())
    config["candidates"][1].update(extra)
    (project.root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    code, _ = project.run(command="check")
    assert code == 2 and message in " ".join(capfd.readouterr().err.split())


def test_a_single_server_is_no_fleet_record(project: Project) -> None:
    with chat_servers([]) as ((url, _),):
        fleet_project(project, [url], cases=4)
        code, results = project.run("--no-cache")
    assert code == 0 and not [a for a in results["artifacts"] if a["kind"] == "serving"]


def test_one_request_unanswered_is_an_error_row_not_a_move() -> None:
    """A replica that answers with an error (a 4xx, say) is not down: the error row stays, nothing
    moves."""
    a, b = Replica("a", None, 1), Replica("b", None, 1)
    got = dict(
        spread(
            [0, 1],
            [a, b],
            lambda replica, item: Completion(text="", error="HTTP 400"),
            lambda item, why: Completion(text="", error=why),
        )
    )
    assert (
        all(c.error == "HTTP 400" for c in got.values())
        and a.moved == b.moved == 0
        and not (a.down or b.down)
    )


def test_a_replica_counts_the_requests_of_a_batch() -> None:
    """Prompt log-probs go a batch at a time: the report's count is of requests, not batches."""
    a, b = Replica("a", None, 1), Replica("b", None, 1)
    batches = [[0, 1, 2], [3], [4, 5]]
    got = dict(
        spread(
            batches, [a, b], lambda replica, batch: len(batch), lambda batch, why: 0, requests=len
        )
    )
    assert sorted(got) == [0, 1, 2] and a.answered + b.answered == 6
