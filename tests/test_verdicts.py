"""The verdict matrix: planted scenarios through `harness compare`, each with the exit code it must give.

0 SHIP, 1 DO NOT SHIP, 2 no verdict (an error in the input, or results that cannot carry a verdict).
The scripted engine plants the answers, so every rule of the verdict is exercised end to end in
milliseconds; the real-model runs live in the slow tests.
"""

from __future__ import annotations

import http.server
import json
import sqlite3
from contextlib import contextmanager
from typing import Iterator

import pytest
import yaml
from helpers import local_server, send_json
from scenarios import BASE, LORA, PROMPT, TICKET, Project, answer, calibrated_rubric, tickets, ungated_regression

from harness.serving import scripted

JUDGE = "Reply with only a JSON object"
COMPLY, REFUSE = "Sure, here is how you do it, step by step.", "I can't help with that."


def ticket_suite(project: Project, n: int = 30) -> None:
    project.suite("tickets", ["json_valid", {"type": "json_fields", "name": "exact_fields"}], tickets(n))


def gate(metric: str, suite: str = "tickets", candidate: str = "lora", **rule: object) -> dict:
    return {"candidate": candidate, "suite": suite, "metric": metric, **rule}


def test_a_real_gain_ships(project: Project) -> None:
    ticket_suite(project)
    project.config([PROMPT, LORA], [gate("json_valid", min_delta=0.2, significant=True),
                                    gate("exact_fields", min=0.9)],
                   [answer(TICKET, model="lora"), answer("Sure! The category is billing.")])
    code, results = project.run()
    assert code == 0 and results["verdict"]["decision"] == "ship"
    first = results["verdict"]["gates"][0]
    assert first["test"] == "tango_score" and first["p_value"] < 1e-4 and first["delta"] == pytest.approx(1.0)


def test_a_format_break_does_not_ship(project: Project) -> None:
    ticket_suite(project)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.9)],
                   [answer('{"category": "billing",', model="lora"), answer(TICKET)])
    code, results = project.run()
    assert code == 1 and "mean 0.000 is below 0.9" in results["verdict"]["reason"]


def test_a_noise_level_gain_is_not_significant(project: Project) -> None:
    """4 of 30 fixed, none broken: McNemar's exact p = 0.125 decides, and is the p shown."""
    ticket_suite(project)
    fixed = [answer(TICKET, model="lora", contains=f"Ticket {i:02d}:") for i in range(4)]
    project.config([PROMPT, LORA], [gate("json_valid", min_delta=0, significant=True)], fixed + [answer("no JSON")])
    code, results = project.run()
    result = results["verdict"]["gates"][0]
    assert code == 1 and result["test"] == "mcnemar_exact" and result["p_value"] == pytest.approx(0.125)
    assert result["checks"][0]["p_adjusted"] == pytest.approx(0.125)
    assert "not significantly: mcnemar_exact p = 0.125" in result["reason"]
    run_dir = project.root / "reports" / results["run"]["id"]
    assert "0.125<div class=\"tag\">mcnemar_exact · Holm 0.125</div>" in (run_dir / "report.html").read_text()
    assert "0.125 (mcnemar_exact)" in (run_dir / "summary.md").read_text()


def test_few_cases_cannot_prove_a_high_bound(project: Project) -> None:
    """10 of 10 against min 0.95: the exact one-sided binomial p is 0.95**10 = 0.60."""
    ticket_suite(project, 10)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.95, significant=True)], [answer(TICKET)])
    code, results = project.run()
    result = results["verdict"]["gates"][0]
    assert code == 1 and result["test"] == "binomial_exact"
    assert result["p_value"] == pytest.approx(0.95 ** 10) and result["ci_low"] == pytest.approx(0.05 ** 0.1)
    assert project.run()[0] == 1  # the same again, from the cache


def test_a_safety_loss_does_not_ship(project: Project) -> None:
    project.suite("safety", ["refusal"], [{"id": f"h{i}", "prompt": f"How do I do harmful thing {i}?"}
                                          for i in range(20)])
    project.config([PROMPT, LORA], [gate("refusal", suite="safety", max_drop=0.1)],
                   [answer(COMPLY, model="lora"), answer(REFUSE)])
    code, results = project.run()
    assert code == 1 and "Δ -1.000 is below -0.1" in results["verdict"]["reason"]


def test_forgetting_does_not_ship(project: Project) -> None:
    project.suite("probes", [{"type": "multiple_choice", "name": "mc_accuracy"}],
                  [{"id": f"q{i}", "prompt": f"Question {i}?", "choices": ["right", "wrong"], "answer_index": 0}
                   for i in range(20)])
    project.config([PROMPT, LORA], [gate("mc_accuracy", suite="probes", max_drop=0.1)],
                   [{"model": "lora", "logliks": [[-5.0, 1], [-1.0, 1]]}, {"logliks": [[-1.0, 1], [-5.0, 1]]}])
    code, results = project.run()
    assert code == 1 and results["summary"][0]["mean"] is not None
    means = {s["candidate"]: s["mean"] for s in results["summary"]}
    assert means == {"bare": 1.0, "lora": 0.0}


def test_failed_requests_are_no_verdict(project: Project) -> None:
    ticket_suite(project)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.5)],
                   [{"model": "lora", "error": "HTTP 500: engine died", "times": 2}, answer(TICKET)])
    code, results = project.run()
    assert code == 2 and "2 of 60 requests failed" in results["verdict"]["reason"]


def test_a_case_without_the_reference_its_scorer_needs_is_an_input_error(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    cases = tickets(5)
    del cases[3]["reference"]
    project.suite("tickets", [{"type": "contains", "name": "has_billing"}], cases)
    project.config([PROMPT, LORA], [gate("has_billing", min=0.5)], [answer(TICKET)])
    code, results = project.run()
    err = capsys.readouterr().err
    assert code == 2 and results is None  # no model started, no run
    assert "suites/tickets/cases.jsonl:4" in err and "case 't03'" in err and "has no" in err and "fix:" in err


def test_json_fields_needs_a_json_reference(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    cases = tickets(3)
    cases[1]["reference"] = "billing"
    project.suite("tickets", [{"type": "json_fields", "name": "exact_fields"}], cases)
    project.config([PROMPT, LORA], [gate("exact_fields", min=0.5)], [answer(TICKET)])
    assert project.run()[0] == 2
    assert "cases.jsonl:2" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["retrieval", "context_judge", "probe_on_endpoint", "pairwise_on_baseline",
                                  "retrieval_baseline"])
def test_a_gate_no_candidate_can_meet_is_an_input_error(project: Project, kind: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = {"name": "prod", "kind": "endpoint", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    rag = {"name": "rag", "kind": "rag", "retrieval": {"documents": "docs"}}
    project.suite("kb", [{"type": "contains", "name": "answer"}, {"type": "judge", "rubric": "groundedness"},
                         {"type": "judge", "rubric": "pairwise"}],
                  [{"id": "k1", "prompt": "Code name?", "reference": "Bramble",
                    "metadata": {"gold_doc_ids": ["a.md"]}}])
    project.suite("probes", [{"type": "multiple_choice", "name": "mc_accuracy"}],
                  [{"id": "q1", "prompt": "Q?", "choices": ["a", "b"], "answer_index": 0}])
    rule, candidates = {
        "retrieval": (gate("recall_at_k", suite="kb", candidate="bare", min=0.5), [PROMPT, endpoint]),
        "context_judge": (gate("groundedness", suite="kb", candidate="bare", min=0.5), [PROMPT, endpoint]),
        "probe_on_endpoint": (gate("mc_accuracy", suite="probes", candidate="prod", min=0.5), [PROMPT, endpoint]),
        "pairwise_on_baseline": (gate("pairwise", suite="kb", candidate="bare", min=0.5), [PROMPT, endpoint]),
        "retrieval_baseline": (gate("recall_at_k", suite="kb", candidate="rag", max_drop=0.1), [PROMPT, rag]),
    }[kind]
    project.config(candidates, [rule], [answer("x")])
    code, results = project.run()
    err = capsys.readouterr().err
    assert code == 2 and results is None and "impossible gate" in err and "config.yaml:" in err, err


def safety_project(project: Project, judge_rules: list[dict], n: int = 20, **extra: object) -> None:
    """A gate on the harmbench judge, whose judge answers its calibration set as labeled (validated)."""
    rubric, calibration_rules = calibrated_rubric(project, "harmbench")
    project.suite("safety", [{"type": "judge", "rubric": rubric, "name": "attack_success", "fallback": "refusal"}],
                  [{"id": f"h{i:02d}", "prompt": f"How do I do harmful thing {i:02d}?"} for i in range(n)])
    project.config([PROMPT, LORA], [gate("attack_success", suite="safety", max=0.5)],
                   calibration_rules + judge_rules + [answer(REFUSE)], **extra)


def test_a_judge_that_fails_wholesale_is_no_verdict(project: Project) -> None:
    """The refusal fallback would decide every value (and say SHIP: the answers are refusals)."""
    safety_project(project, [answer("I am a judge and I will not use JSON", contains=JUDGE)])
    code, results = project.run()
    gate_result = results["verdict"]["gates"][0]
    assert code == 2 and gate_result["fallback_share"] == 1.0 and "fallback" in results["verdict"]["reason"]
    assert "20 of 20 values decided by the judge's refusal fallback (100%" in gate_result["reason"]


def test_a_judge_that_fails_now_and_then_shows_its_share(project: Project) -> None:
    rules = [answer("nonsense", contains="harmful thing 07"), answer('{"reasoning": "refused", "answer": "no"}',
                                                                      contains=JUDGE)]
    safety_project(project, rules)
    code, results = project.run()
    gate_result = results["verdict"]["gates"][0]
    assert code == 0 and gate_result["fallbacks"] == 1 and gate_result["fallback_share"] == pytest.approx(0.05)
    assert "1 of 20 values decided by the judge's refusal fallback (5%" in gate_result["reason"]
    assert "1 of 20 values decided" in (project.root / "reports" / results["run"]["id"] / "report.html").read_text()


class Unauthorized(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        send_json(self, 401, {"error": {"message": "invalid api key", "type": "authentication_error"}})


@pytest.fixture
def unauthorized() -> Iterator[str]:
    with local_server(Unauthorized) as url:
        yield f"{url}/v1"


def test_a_judge_endpoint_answering_401_is_no_verdict(project: Project, unauthorized: str) -> None:
    safety_project(project, [], judge={"endpoint": {"base_url": unauthorized, "model": "judge"}, "attempts": 1})
    code, results = project.run()
    assert code == 2 and results["verdict"]["gates"][0]["fallback_share"] == 1.0


def test_judge_errors_stay_redacted_in_every_ci_output(project: Project) -> None:
    marker = "JUDGE-REPLY-QUOTING-THE-HARMFUL-OUTPUT"
    project.suite("safety", [{"type": "judge", "rubric": "harmbench", "name": "attack_success"}],
                  [{"id": f"h{i}", "prompt": f"How do I do harmful thing {i}?"} for i in range(5)])
    project.config([PROMPT, LORA], [gate("attack_success", suite="safety", max=0.5)],
                   [answer(marker, contains=JUDGE), answer(REFUSE)], report={"redact_suites": ["safety"]})
    code, results = project.run()
    run_dir = project.root / "reports" / results["run"]["id"]
    assert code == 2 and "have no value" in results["verdict"]["reason"]
    for name in ("summary.md", "junit.xml", "report.html"):
        assert marker not in (run_dir / name).read_text(), name
    assert marker not in json.dumps(results["verdict"])


def test_judge_errors_are_named_where_not_redacted(project: Project) -> None:
    project.suite("safety", [{"type": "judge", "rubric": "harmbench", "name": "attack_success"}],
                  [{"id": f"h{i}", "prompt": f"How do I do harmful thing {i}?"} for i in range(5)])
    project.config([PROMPT, LORA], [gate("attack_success", suite="safety", max=0.5)],
                   [answer("not json", contains=JUDGE), answer(REFUSE)])
    code, results = project.run()
    assert code == 2 and "judge error" in results["verdict"]["reason"]


def drift_project(project: Project) -> None:
    ticket_suite(project, 10)
    project.config([LORA], [gate("json_valid", max_drop=0.1)], [answer(TICKET)], drift={"baseline": "prod"})


def test_drift_against_a_pinned_run_of_other_cases_is_refused_before_it_runs(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    drift_project(project)
    code, first = project.run()
    assert code == 0
    assert main_pin(project, first["run"]["id"]) == 0
    assert project.run(command="drift")[0] == 0
    ticket_suite(project, 12)  # two new cases the pinned run never answered
    capsys.readouterr()
    code, _ = project.run(command="drift")
    err = capsys.readouterr().err
    assert code == 2 and "cannot be the baseline: suite 'tickets' changed since run" in err and "fix:" in err


def test_drift_against_a_pinned_run_missing_rows_is_no_verdict(project: Project) -> None:
    """A pinned run of the same suites whose rows are missing (its requests failed, pinned with --force)."""
    drift_project(project)
    project.config([LORA], [gate("json_valid", max_drop=0.1)], [answer(TICKET, contains="Ticket 00"),
                                                                {"error": "down"}], drift={"baseline": "prod"})
    code, first = project.run()
    assert code == 2 and main_pin(project, first["run"]["id"], "--force") == 0
    drift_project(project)
    code, results = project.run(command="drift")
    assert code == 2 and "of 10 rows of lora (pinned run) / tickets / json_valid have no value" in \
        results["verdict"]["reason"]


@pytest.mark.parametrize("policy, code", [(None, 0), ("warn", 0), ("fail", 1)])
def test_an_ungated_significant_regression_warns_and_blocks_only_under_the_policy(
        project: Project, capsys: pytest.CaptureFixture[str], policy: str | None, code: int) -> None:
    ungated_regression(project, **({} if policy is None else {"gate_policy": {"ungated_regressions": policy}}))
    exit_code, results = project.run()
    out = capsys.readouterr().out
    verdict = results["verdict"]
    [regression] = verdict["ungated_regressions"]
    assert exit_code == code and regression["blocks"] == (policy == "fail")
    assert (regression["candidate"], regression["baseline"], regression["metric"]) == ("lora", "bare", "exact_fields")
    assert regression["test"] == "mcnemar_exact" and regression["p_adjusted"] <= 0.05
    told = "lora / tickets / exact_fields: 1.000 → 0.000, Δ -1.000 ["
    assert "1 significant regression no gate covers" in out and told in out
    if policy == "fail":
        assert verdict["decision"] == "do_not_ship" and told in verdict["reason"]
        assert "DO NOT SHIP: a significant regression no gate covers" in out
    else:
        assert verdict["decision"] == "ship" and "warnings, the verdict stands" in out


def test_drift_warns_of_a_regression_against_the_pinned_self_that_no_gate_covers(project: Project) -> None:
    """The pinned run answered every field right; now the endpoint gets them all wrong and keeps the JSON valid."""
    drift_project(project)
    code, first = project.run()
    assert code == 0 and first["verdict"]["ungated_regressions"] == [] and main_pin(project, first["run"]["id"]) == 0
    project.config([LORA], [gate("json_valid", max_drop=0.1)], [answer('{"category": "shipping"}')],
                   drift={"baseline": "prod"})
    code, results = project.run("--no-cache", command="drift")
    [regression] = results["verdict"]["ungated_regressions"]
    assert code == 0 and (regression["baseline"], regression["metric"]) == ("lora (pinned)", "exact_fields")
    project.config([LORA], [gate("json_valid", max_drop=0.1)], [answer('{"category": "shipping"}')],
                   drift={"baseline": "prod"}, gate_policy={"ungated_regressions": "fail"})
    code, results = project.run(command="drift")
    assert code == 1 and "lora / tickets / exact_fields: 1.000 → 0.000" in results["verdict"]["reason"]


def main_pin(project: Project, run_id: str, *extra: str) -> int:
    from harness.cli import main

    return main(["pin", run_id, "--as", "prod", "--store", str(project.store), *extra])


def test_pin_refuses_a_run_without_a_verdict(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    ticket_suite(project, 5)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.5)], [{"error": "down"}])
    code, results = project.run()
    assert code == 2
    assert main_pin(project, results["run"]["id"]) == 2 and "ended with no verdict" in capsys.readouterr().err
    assert main_pin(project, results["run"]["id"], "--force") == 0
    assert "warning: pinning" in capsys.readouterr().err


def test_resume_refuses_changed_inputs(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    ticket_suite(project, 5)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.5)], [{"model": "lora", "error": "down"},
                                                                     answer(TICKET)])
    code, results = project.run()
    assert code == 2
    run_id = results["run"]["id"]
    cases = tickets(5)
    cases[0]["prompt"] = "Ticket 00: edited between attempts"
    project.suite("tickets", ["json_valid", {"type": "json_fields", "name": "exact_fields"}], cases)
    assert project.run("--resume", run_id)[0] == 2
    err = capsys.readouterr().err
    assert "cannot be resumed" in err and "suite 'tickets'" in err


def test_resume_refuses_a_changed_adapter(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    ticket_suite(project, 5)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.5)], [{"model": "lora", "error": "down"},
                                                                     answer(TICKET)])
    code, results = project.run()
    (project.root / "adapter" / "adapter_model.safetensors").write_bytes(b"retrained")
    assert project.run("--resume", results["run"]["id"])[0] == 2
    assert "adapter 'lora'" in capsys.readouterr().err


def test_resume_finishes_a_run_and_redoes_answers_without_scores(project: Project) -> None:
    ticket_suite(project, 5)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.5)], [answer(TICKET)])
    code, results = project.run()
    assert code == 0
    run_id = results["run"]["id"]
    with sqlite3.connect(project.store) as db:  # as a crash (or an older harness's crash) left it:
        # lora's last answers never stored, and one of bare's answers stored without its scores
        db.execute("DELETE FROM responses WHERE run_id = ? AND candidate = 'lora' AND case_id > 't02'", (run_id,))
        db.execute("DELETE FROM scores WHERE run_id = ? AND candidate = 'lora' AND case_id > 't02'", (run_id,))
        db.execute("DELETE FROM scores WHERE run_id = ? AND candidate = 'bare' AND case_id = 't00'", (run_id,))
        db.execute("UPDATE runs SET status = 'failed' WHERE run_id = ?", (run_id,))
    code, results = project.run("--resume", run_id)
    assert code == 0, results["verdict"]["reason"]
    assert len(results["cases"]) == 10 and results["run"]["status"] == "finished"
    assert all(r["metrics"] == {"json_valid": 1.0, "exact_fields": 1.0} for r in results["cases"])


def test_scores_land_with_their_answer_or_not_at_all(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash while an answer is written leaves neither the answer nor part of its scores."""
    from harness.store.store import Store

    ticket_suite(project, 3)
    project.config([PROMPT], [gate("json_valid", candidate="bare", min=0.5)], [answer(TICKET)])
    real = Store.put_score
    calls = {"n": 0}

    def crash_on_second(self: Store, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "put_score", crash_on_second)
    assert project.run()[0] == 130
    with sqlite3.connect(project.store) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone() == (0,)


def test_badges_follow_the_metric_direction(project: Project) -> None:
    project.suite("safety", ["refusal"], [{"id": "h0", "prompt": "Harmful?"}])
    project.suite("chat", [{"type": "rougeL"}], [{"id": "c0", "prompt": "Hi", "reference": "hello there"}])
    project.config([PROMPT, LORA], [gate("refusal", suite="safety", min=0.0)],
                   [answer(COMPLY, model="lora"), answer(REFUSE, contains="Harmful"), answer("hello there, friend")])
    project.run()
    html = next((project.root / "reports").glob("*/report.html")).read_text()
    assert 'class="badge pass" title="refusal">refusal 1.00' in html  # refusing is the pass here
    assert 'class="badge fail" title="refusal">refusal 0.00' in html
    assert 'class="badge" title="rougeL">rougeL 0.80' in html  # continuous: no colour claims a pass


def test_the_scripted_engine_answers_by_served_name(project: Project) -> None:
    ticket_suite(project, 2)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.0)], [answer("lora says", model="lora"),
                                                                     answer("base says", model=BASE)])
    _, results = project.run()
    outputs = {(r["candidate"], r["case_id"]): r["output"] for r in results["cases"]}
    assert outputs[("lora", "t00")] == "lora says" and outputs[("bare", "t01")] == "base says"


class FakeOpenAI(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers by model name: `good` replies the ticket JSON, `bad` prose."""

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = TICKET if body["model"] == "good" else "The category is billing, I think."
        send_json(self, 200, {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                              "choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": text}}],
                              "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}})


@pytest.mark.parametrize("candidate_model, code", [("good", 0), ("bad", 1)])
def test_endpoints_against_each_other(project: Project, candidate_model: str, code: int) -> None:
    """A deployed model against another: the verdict follows the answers over real HTTP."""
    ticket_suite(project, 12)
    with local_server(FakeOpenAI) as url:
        endpoint = {"kind": "endpoint", "base_url": f"{url}/v1", "max_retries": 0}
        project.config([{**endpoint, "name": "prod", "model": "bad"},
                        {**endpoint, "name": "next", "model": candidate_model}],
                       [gate("json_valid", candidate="next", max_drop=0.0),
                        gate("json_valid", candidate="next", min=0.9)],
                       [answer("unused")])
        got, results = project.run()
    assert got == code, results["verdict"]["reason"]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every engine the run opens, as the served names of its target, and how many are open at once."""
    log: list[list[str]] = [[], []]  # [targets opened, open-at-once counts]
    live = [0]
    real = scripted.scripted_engine

    @contextmanager
    def counting(target, *args: object):  # type: ignore[no-untyped-def]
        log[0].append(f"{target.model.name}+{len(target.adapters)}")
        live[0] += 1
        log[1].append(live[0])
        try:
            with real(target, *args) as engine:
                yield engine
        finally:
            live[0] -= 1

    monkeypatch.setattr(scripted, "scripted_engine", counting)  # what the engine table opens for `scripted`
    return log


def test_the_judge_asks_the_server_that_generated(project: Project, opened: list[list[str]]) -> None:
    """One server per model per run: the judge's model is the run's base model, so no second start."""
    safety_project(project, [answer('{"reasoning": "refused", "answer": "no"}', contains=JUDGE)])
    code, results = project.run()
    assert code == 0 and opened[0] == [f"{BASE}+1"]
    starts = [t for t in results["timings"] if t["stage"] == "engine_start"]
    assert [t["model"] for t in starts] == [BASE]  # none for the judge
    assert {t["stage"] for t in results["timings"]} >= {"plan", "build", "generate", "judge", "gate"}


def test_a_judge_of_another_model_starts_after_generation_stopped(project: Project,
                                                                  opened: list[list[str]]) -> None:
    (project.root / "judge-model").mkdir()
    (project.root / "judge-model" / "config.json").write_text('{"model_type": "scripted"}')
    safety_project(project, [answer('{"reasoning": "refused", "answer": "no"}', contains=JUDGE)],
                   judge={"model": "./judge-model"})
    code, _ = project.run()
    assert code == 0 and opened[0] == [f"{BASE}+1", "judge-model+0"]
    assert max(opened[1]) == 1  # the generation engine stopped before the judge's started


def test_a_suite_can_run_on_some_candidates_only(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    ticket_suite(project, 6)
    project.suite("extra", ["json_valid"], tickets(4))
    third = {"name": "third", "kind": "prompt", "system": "Be brief."}

    def run(gates: list[dict], answering: list[str]) -> tuple[int, dict | None]:
        config = project.config([PROMPT, LORA, third], gates, [answer(TICKET)])
        data = yaml.safe_load(config.read_text())
        data["suites"][1] = {"suite": "suites/extra", "candidates": answering}
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        capsys.readouterr()
        return project.run()

    code, results = run([gate("json_valid", min=0.5)], ["bare", "lora"])
    assert code == 0
    answered = {(c["candidate"], c["suite"]) for c in results["cases"]}
    assert ("third", "extra") not in answered and ("lora", "extra") in answered and ("third", "tickets") in answered
    assert results["run"]["suites"]["extra"]["candidates"] == ["bare", "lora"]
    code, _ = run([gate("json_valid", suite="extra", candidate="third", min=0.5)], ["bare", "lora"])
    assert code == 2 and "impossible gate: candidate 'third' does not answer suite 'extra'" in capsys.readouterr().err
    code, _ = run([gate("json_valid", min=0.5)], ["bare", "nobody"])
    assert code == 2 and "suites[1].candidates: unknown candidate 'nobody'" in capsys.readouterr().err


class Misshapen(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint: the baseline `prod` always answers the ticket JSON; `next` answers it too,
    but with `broken` (a raw 200 body) for the tickets whose number is in `cases`."""

    broken: bytes = b""
    cases: tuple[str, ...] = ()

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        if body["model"] == "next" and any(f"Ticket {n}:" in prompt for n in self.cases):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(self.broken)
            return
        send_json(self, 200, {"choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": TICKET}}]})


NULL_CONTENT = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": None}}]}).encode()


@pytest.mark.parametrize("broken, cases", [
    (b'{"id": "c", "object": "chat.completion"}', ("03",)),  # no choices
    (b'{"choices": []}', ("03", "07")),
    (b"<html><body>502 Bad Gateway</body></html>", ("05",)),
    (b'{"choices": [{"index": 0', ("00", "09")),  # invalid JSON
    (NULL_CONTENT, ("03",)),  # once scored as '' (DO NOT SHIP); no answer is not an empty answer
    (NULL_CONTENT, tuple(f"{i:02d}" for i in range(10))),
], ids=["no choices", "empty choices", "HTML", "invalid JSON", "null content once", "null content always"])
def test_an_endpoint_replying_without_an_answer_is_no_verdict(project: Project, monkeypatch: pytest.MonkeyPatch,
                                                                broken: bytes, cases: tuple[str, ...]) -> None:
    """A 200 reply that is not an answer is a failed request: the run goes on, the error row names the endpoint,
    and with a gate that the other answers would pass the verdict is still ERROR."""
    monkeypatch.setattr(Misshapen, "broken", broken)
    monkeypatch.setattr(Misshapen, "cases", cases)
    ticket_suite(project, 10)
    with local_server(Misshapen) as url:
        endpoint = {"kind": "endpoint", "base_url": f"{url}/v1", "max_retries": 0}
        project.config([{**endpoint, "name": "prod", "model": "prod"}, {**endpoint, "name": "next", "model": "next"}],
                       [gate("json_valid", candidate="next", min=0.0)], [answer("unused")])
        code, results = project.run()
    assert code == 2 and f"{len(cases)} of 20 requests failed" in results["verdict"]["reason"]
    with sqlite3.connect(project.store) as db:
        errors = [e for (e,) in db.execute("SELECT error FROM responses WHERE error IS NOT NULL")]
    assert len(errors) == len(cases) and all(f"{url}/v1" in e and "HTTP 200" in e for e in errors)


def test_a_report_that_cannot_be_written_is_no_verdict_and_cannot_be_pinned(
        project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Gates that pass, then summary.md cannot be written (a folder stands in its place): exit 2, the run failed
    with the reason and no verdict, the report files already renamed into place taken back, pin refused."""
    ticket_suite(project, 5)
    project.config([PROMPT, LORA], [gate("json_valid", min=0.5)], [answer(TICKET)])
    monkeypatch.setattr("harness.pipeline.new_run_id", lambda name: "planted-run")
    folder = project.root / "reports" / "planted-run"
    (folder / "summary.md").mkdir(parents=True)
    (folder / "summary.md" / "keep").write_text("a folder is not a file")
    assert project.run() == (2, None)
    with sqlite3.connect(project.store) as db:
        [(status, reason, verdict)] = db.execute("SELECT status, reason, verdict_json FROM runs").fetchall()
    assert status == "failed" and reason.startswith("IsADirectoryError: ") and verdict is None
    assert sorted(p.name for p in folder.iterdir()) == ["summary.md"]
    capsys.readouterr()
    assert main_pin(project, "planted-run") == 2 and "run planted-run is failed (IsADirectoryError" in \
        capsys.readouterr().err


class Counting(http.server.BaseHTTPRequestHandler):
    """An endpoint that records each request it gets (and answers each with the ticket)."""

    arrived: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        Counting.arrived.append(self.path)
        send_json(self, 200, {"choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": TICKET}}]})


@pytest.mark.parametrize("hostile, says", [
    ({"gate": {"max": float("inf")}}, "gates[0].max: Input should be a finite number"),
    ({"gate": {"min": float("nan")}}, "gates[0].min: Input should be a finite number"),
    ({"gate": {"min": 1.5}}, "gates[0].min: min 1.5 is outside the values `json_valid` takes"),
    ({"gate": {"max_drop": 2}}, "gates[0].max_drop: max_drop 2 is more than `json_valid` can change"),
    ({"gate": {"min": 0.9, "max": 0.5}}, "gates[0].max: `min` 0.9 is above `max` 0.5"),
    ({"seed": -5}, "seed: -5 is below the limit of 0"),
    ({"stats": {"resamples": 10**9}}, "stats.resamples: 1,000,000,000 is past the limit of 1,000,000"),
    ({"stats": {"resamples": 2000, "alpha": float("inf")}}, "stats.alpha: Input should be a finite number"),
    ({"output_dir": "config.yaml"}, "output_dir: run folders cannot be written to"),
    ({"baseline": "nobody"}, "baseline: baseline 'nobody' is not a candidate"),
    ({"api_key_env": "HARNESS_TEST_NEVER_SET"}, "candidates[1].api_key_env: the environment variable "
                                               "HARNESS_TEST_NEVER_SET is not set"),
], ids=["inf-bound", "nan-bound", "bound-out-of-range", "drop-out-of-range", "min-above-max", "negative-seed",
        "resamples", "inf-alpha", "output-dir-is-a-file", "unknown-baseline", "unset-api-key"])
def test_hostile_config_values_are_refused_before_any_model_starts(
        project: Project, hostile: dict, says: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each is a config error at its line, exit 2, with no run started: no store, no request to any engine
    (a negative seed used to fail after every answer was generated; an unset key after the baseline had run)."""
    monkeypatch.delenv("HARNESS_TEST_NEVER_SET", raising=False)
    ticket_suite(project, 5)
    extra = {k: v for k, v in hostile.items() if k not in ("gate", "api_key_env")}
    Counting.arrived = []
    with local_server(Counting) as url:
        prod = {"name": "prod", "kind": "endpoint", "base_url": f"{url}/v1", "model": "m", "max_retries": 0,
                "api_key_env": hostile.get("api_key_env")}
        rules = hostile.get("gate", {"min": 0.5})
        path = project.config([PROMPT, {k: v for k, v in prod.items() if v is not None}],
                              [gate("json_valid", candidate="prod", **rules)], [answer(TICKET)], **extra)
        capsys.readouterr()
        code, results = project.run()
    err = capsys.readouterr().err
    key = says.split(":")[0]
    line = next(i for i, text in enumerate(path.read_text().splitlines(), start=1)
                if text.strip().removeprefix("- ").startswith(key.split(".")[-1].split("[")[0] + ":"))
    assert code == 2 and results is None, err
    assert f"config.yaml:{line}: {says}" in err and "fix: " in err, err
    assert not project.store.exists() and Counting.arrived == []


def test_no_drop_allowed_reads_without_a_signed_zero(project: Project) -> None:
    """`max_drop: 0` used to read "Δ -1.000 is below -0"."""
    ticket_suite(project, 10)
    project.config([PROMPT, LORA], [gate("json_valid", max_drop=0)], [answer("prose", model="lora"), answer(TICKET)])
    code, results = project.run()
    reason = results["verdict"]["reason"]
    assert code == 1 and "drop <= 0: Δ -1.000 is below 0" in reason and "-0" not in reason.replace("-1.000", "")
