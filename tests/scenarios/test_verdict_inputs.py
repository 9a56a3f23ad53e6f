"""The verdict matrix, inputs: what cannot carry a verdict is exit 2 before any model starts (a case
without the reference its scorer needs, a gate no candidate can meet, hostile config values), and
failed requests are no verdict.
"""

from __future__ import annotations

import http.server

import pytest

from support.helpers import chat, local_server, send_json
from support.scenarios import (
    LORA,
    PROMPT,
    TICKET,
    Project,
    answer,
    gate,
    ticket_suite,
    tickets,
)


def test_failed_requests_are_no_verdict(project: Project) -> None:
    ticket_suite(project)
    project.config(
        [PROMPT, LORA],
        [gate("json_valid", min=0.5)],
        [{"model": "lora", "error": "HTTP 500: engine died", "times": 2}, answer(TICKET)],
    )
    code, results = project.run()
    assert code == 2 and "2 of 60 requests failed" in results["verdict"]["reason"]


def test_a_case_without_the_reference_its_scorer_needs_is_an_input_error(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = tickets(5)
    del cases[3]["reference"]
    project.suite("tickets", [{"type": "contains", "name": "has_billing"}], cases)
    project.config([PROMPT, LORA], [gate("has_billing", min=0.5)], [answer(TICKET)])
    code, results = project.run()
    err = capsys.readouterr().err
    assert code == 2 and results is None  # no model started, no run
    assert (
        "suites/tickets/cases.jsonl:4" in err
        and "case 't03'" in err
        and "has no" in err
        and "fix:" in err
    )


def test_json_fields_needs_a_json_reference(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = tickets(3)
    cases[1]["reference"] = "billing"
    project.suite("tickets", [{"type": "json_fields", "name": "exact_fields"}], cases)
    project.config([PROMPT, LORA], [gate("exact_fields", min=0.5)], [answer(TICKET)])
    assert project.run()[0] == 2
    assert "cases.jsonl:2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kind",
    [
        "retrieval",
        "context_judge",
        "probe_on_endpoint",
        "pairwise_on_baseline",
        "retrieval_baseline",
    ],
)
def test_a_gate_no_candidate_can_meet_is_an_input_error(
    project: Project, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = {
        "name": "prod",
        "kind": "endpoint",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "m",
    }
    rag = {"name": "rag", "kind": "rag", "retrieval": {"documents": "docs"}}
    project.suite(
        "kb",
        [
            {"type": "contains", "name": "answer"},
            {"type": "judge", "rubric": "groundedness"},
            {"type": "judge", "rubric": "pairwise"},
        ],
        [
            {
                "id": "k1",
                "prompt": "Code name?",
                "reference": "Bramble",
                "metadata": {"gold_doc_ids": ["a.md"]},
            }
        ],
    )
    project.suite(
        "probes",
        [{"type": "multiple_choice", "name": "mc_accuracy"}],
        [{"id": "q1", "prompt": "Q?", "choices": ["a", "b"], "answer_index": 0}],
    )
    rule, candidates = {
        "retrieval": (
            gate("recall_at_k", suite="kb", candidate="bare", min=0.5),
            [PROMPT, endpoint],
        ),
        "context_judge": (
            gate("groundedness", suite="kb", candidate="bare", min=0.5),
            [PROMPT, endpoint],
        ),
        "probe_on_endpoint": (
            gate("mc_accuracy", suite="probes", candidate="prod", min=0.5),
            [PROMPT, endpoint],
        ),
        "pairwise_on_baseline": (
            gate("pairwise", suite="kb", candidate="bare", min=0.5),
            [PROMPT, endpoint],
        ),
        "retrieval_baseline": (
            gate("recall_at_k", suite="kb", candidate="rag", max_drop=0.1),
            [PROMPT, rag],
        ),
    }[kind]
    project.config(candidates, [rule], [answer("x")])
    code, results = project.run()
    err = capsys.readouterr().err
    assert code == 2 and results is None and "impossible gate" in err and "config.yaml:" in err, err


class Counting(http.server.BaseHTTPRequestHandler):
    """An endpoint that records each request it gets (and answers each with the ticket)."""

    arrived: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        Counting.arrived.append(self.path)
        send_json(self, 200, chat(TICKET))


@pytest.mark.parametrize(
    "hostile, says",
    [
        ({"gate": {"max": float("inf")}}, "gates[0].max: Input should be a finite number"),
        ({"gate": {"min": float("nan")}}, "gates[0].min: Input should be a finite number"),
        ({"gate": {"min": 1.5}}, "gates[0].min: min 1.5 is outside the values `json_valid` takes"),
        (
            {"gate": {"max_drop": 2}},
            "gates[0].max_drop: max_drop 2 is more than `json_valid` can change",
        ),
        ({"gate": {"min": 0.9, "max": 0.5}}, "gates[0].max: `min` 0.9 is above `max` 0.5"),
        ({"seed": -5}, "seed: -5 is below the limit of 0"),
        (
            {"stats": {"resamples": 10**9}},
            "stats.resamples: 1,000,000,000 is past the limit of 1,000,000",
        ),
        (
            {"stats": {"resamples": 2000, "alpha": float("inf")}},
            "stats.alpha: Input should be a finite number",
        ),
        ({"output_dir": "config.yaml"}, "output_dir: run folders cannot be written to"),
        ({"baseline": "nobody"}, "baseline: baseline 'nobody' is not a candidate"),
        (
            {"api_key_env": "HARNESS_TEST_NEVER_SET"},
            "candidates[1].api_key_env: the environment variable HARNESS_TEST_NEVER_SET is not set",
        ),
    ],
    ids=[
        "inf-bound",
        "nan-bound",
        "bound-out-of-range",
        "drop-out-of-range",
        "min-above-max",
        "negative-seed",
        "resamples",
        "inf-alpha",
        "output-dir-is-a-file",
        "unknown-baseline",
        "unset-api-key",
    ],
)
def test_hostile_config_values_are_refused_before_any_model_starts(
    project: Project,
    hostile: dict,
    says: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each is a config error at its line, exit 2, with no run started: no store, no request to any
    engine (a negative seed used to fail after every answer was generated; an unset key after the
    baseline had run).
    """
    monkeypatch.delenv("HARNESS_TEST_NEVER_SET", raising=False)
    ticket_suite(project, 5)
    extra = {k: v for k, v in hostile.items() if k not in ("gate", "api_key_env")}
    Counting.arrived = []
    with local_server(Counting) as url:
        prod = {
            "name": "prod",
            "kind": "endpoint",
            "base_url": f"{url}/v1",
            "model": "m",
            "max_retries": 0,
            "api_key_env": hostile.get("api_key_env"),
        }
        rules = hostile.get("gate", {"min": 0.5})
        path = project.config(
            [PROMPT, {k: v for k, v in prod.items() if v is not None}],
            [gate("json_valid", candidate="prod", **rules)],
            [answer(TICKET)],
            **extra,
        )
        capsys.readouterr()
        code, results = project.run()
    err = capsys.readouterr().err
    key = says.split(":")[0]
    line = next(
        i
        for i, text in enumerate(path.read_text().splitlines(), start=1)
        if text.strip().removeprefix("- ").startswith(key.split(".")[-1].split("[")[0] + ":")
    )
    assert code == 2 and results is None, err
    assert f"config.yaml:{line}: {says}" in err and "fix: " in err, err
    assert not project.store.exists() and Counting.arrived == []
