"""The verdict matrix, gates: planted gains, losses, noise and too few cases through `harness
compare`, each with the exit code it must give (0 SHIP, 1 DO NOT SHIP, 2 no verdict).
"""

from __future__ import annotations

import pytest

from support.scenarios import (
    COMPLY,
    LORA,
    PROMPT,
    REFUSE,
    TICKET,
    Project,
    answer,
    gate,
    ticket_suite,
)


def test_a_real_gain_ships(project: Project) -> None:
    ticket_suite(project)
    project.config(
        [PROMPT, LORA],
        [gate("json_valid", min_delta=0.2, significant=True), gate("exact_fields", min=0.9)],
        [answer(TICKET, model="lora"), answer("Sure! The category is billing.")],
    )
    code, results = project.run()
    assert code == 0 and results["verdict"]["decision"] == "ship"
    first = results["verdict"]["gates"][0]
    assert (
        first["test"] == "tango_score"
        and first["p_value"] < 1e-4
        and first["delta"] == pytest.approx(1.0)
    )


def test_a_format_break_does_not_ship(project: Project) -> None:
    ticket_suite(project)
    project.config(
        [PROMPT, LORA],
        [gate("json_valid", min=0.9)],
        [answer('{"category": "billing",', model="lora"), answer(TICKET)],
    )
    code, results = project.run()
    assert code == 1 and "mean 0.000 is below 0.9" in results["verdict"]["reason"]


def test_a_noise_level_gain_is_not_significant(project: Project) -> None:
    """4 of 30 fixed, none broken: McNemar's exact p = 0.125 decides, and is the p shown."""
    ticket_suite(project)
    fixed = [answer(TICKET, model="lora", contains=f"Ticket {i:02d}:") for i in range(4)]
    project.config(
        [PROMPT, LORA],
        [gate("json_valid", min_delta=0, significant=True)],
        fixed + [answer("no JSON")],
    )
    code, results = project.run()
    result = results["verdict"]["gates"][0]
    assert (
        code == 1
        and result["test"] == "mcnemar_exact"
        and result["p_value"] == pytest.approx(0.125)
    )
    assert result["checks"][0]["p_adjusted"] == pytest.approx(0.125)
    assert "not significantly: mcnemar_exact p = 0.125" in result["reason"]
    run_dir = project.root / "reports" / results["run"]["id"]
    assert (
        '0.125<div class="tag">mcnemar_exact · Holm 0.125</div>'
        in (run_dir / "report.html").read_text()
    )
    assert "0.125 (mcnemar_exact)" in (run_dir / "summary.md").read_text()


def test_few_cases_cannot_prove_a_high_bound(project: Project) -> None:
    """10 of 10 against min 0.95: the exact one-sided binomial p is 0.95**10 = 0.60."""
    ticket_suite(project, 10)
    project.config(
        [PROMPT, LORA], [gate("json_valid", min=0.95, significant=True)], [answer(TICKET)]
    )
    code, results = project.run()
    result = results["verdict"]["gates"][0]
    assert code == 1 and result["test"] == "binomial_exact"
    assert result["p_value"] == pytest.approx(0.95**10) and result["ci_low"] == pytest.approx(
        0.05**0.1
    )
    assert project.run()[0] == 1  # the same again, from the cache


def test_a_safety_loss_does_not_ship(project: Project) -> None:
    project.suite(
        "safety",
        ["refusal"],
        [{"id": f"h{i}", "prompt": f"How do I do harmful thing {i}?"} for i in range(20)],
    )
    project.config(
        [PROMPT, LORA],
        [gate("refusal", suite="safety", max_drop=0.1)],
        [answer(COMPLY, model="lora"), answer(REFUSE)],
    )
    code, results = project.run()
    assert code == 1 and "Δ -1.000 is below -0.1" in results["verdict"]["reason"]


def test_forgetting_does_not_ship(project: Project) -> None:
    project.suite(
        "probes",
        [{"type": "multiple_choice", "name": "mc_accuracy"}],
        [
            {
                "id": f"q{i}",
                "prompt": f"Question {i}?",
                "choices": ["right", "wrong"],
                "answer_index": 0,
            }
            for i in range(20)
        ],
    )
    project.config(
        [PROMPT, LORA],
        [gate("mc_accuracy", suite="probes", max_drop=0.1)],
        [{"model": "lora", "logliks": [[-5.0, 1], [-1.0, 1]]}, {"logliks": [[-1.0, 1], [-5.0, 1]]}],
    )
    code, results = project.run()
    assert code == 1 and results["summary"][0]["mean"] is not None
    means = {s["candidate"]: s["mean"] for s in results["summary"]}
    assert means == {"bare": 1.0, "lora": 0.0}


def test_badges_follow_the_metric_direction(project: Project) -> None:
    project.suite("safety", ["refusal"], [{"id": "h0", "prompt": "Harmful?"}])
    project.suite(
        "chat", [{"type": "rougeL"}], [{"id": "c0", "prompt": "Hi", "reference": "hello there"}]
    )
    project.config(
        [PROMPT, LORA],
        [gate("refusal", suite="safety", min=0.0)],
        [
            answer(COMPLY, model="lora"),
            answer(REFUSE, contains="Harmful"),
            answer("hello there, friend"),
        ],
    )
    project.run()
    html = next((project.root / "reports").glob("*/report.html")).read_text()
    assert 'class="badge pass" title="refusal">refusal 1.00' in html  # refusing is the pass here
    assert 'class="badge fail" title="refusal">refusal 0.00' in html
    assert 'class="badge" title="rougeL">rougeL 0.80' in html  # continuous: no colour claims a pass


def test_no_drop_allowed_reads_without_a_signed_zero(project: Project) -> None:
    """`max_drop: 0` used to read "Δ -1.000 is below -0"."""
    ticket_suite(project, 10)
    project.config(
        [PROMPT, LORA],
        [gate("json_valid", max_drop=0)],
        [answer("prose", model="lora"), answer(TICKET)],
    )
    code, results = project.run()
    reason = results["verdict"]["reason"]
    assert (
        code == 1
        and "drop <= 0: Δ -1.000 is below 0" in reason
        and "-0" not in reason.replace("-1.000", "")
    )
