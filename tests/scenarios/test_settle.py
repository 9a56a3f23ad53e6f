"""Stopping when the verdict is settled (`--stop-when-settled`): planted scenarios through the real
command line on the scripted engine, each with its exact exit code and the share of the full run's
requests it made.
"""

from __future__ import annotations

import http.server
import json
import sqlite3
from typing import Any

import pytest

from harness.planning.check import check
from harness.verdict.gate import EXIT_CODES
from support.helpers import chat, local_server, send_json
from support.scenarios import LORA, PROMPT, TICKET, Project, answer, calibrated_rubric

BROKEN = '{"category": '


def numbered(n: int) -> list[dict[str, Any]]:
    """Tickets with 3-digit ids, so `contains: "Ticket 005:"` picks exactly one."""
    return [
        {"id": f"t{i:03d}", "prompt": f"Ticket {i:03d}: I was charged twice.", "reference": TICKET}
        for i in range(n)
    ]


def on(model: str, text: str, cases: list[int]) -> list[dict[str, Any]]:
    return [answer(text, model=model, contains=f"Ticket {i:03d}:") for i in cases]


def tickets_project(
    project: Project, gates: list[dict], script: list[dict], n: int = 300, **extra: Any
) -> None:
    project.suite(
        "tickets", ["json_valid", {"type": "json_fields", "name": "exact_fields"}], numbered(n)
    )
    project.config(
        [PROMPT, LORA],
        [{"candidate": "lora", "suite": "tickets", "metric": "json_valid", **g} for g in gates],
        script,
        **extra,
    )


def share(results: dict) -> float:
    savings = results["verdict"]["settle"]
    return savings["requests"] / savings["requests_full"]


def forty_percent_broken(project: Project, **extra: Any) -> None:
    """lora breaks the JSON of 2 cases in 5 (120 of 300); the baseline never does."""
    tickets_project(
        project,
        [{"max_drop": 0.05}],
        on("lora", BROKEN, [i for i in range(300) if i % 5 < 2]) + [answer(TICKET)],
        **extra,
    )


def test_a_large_regression_stops_early_with_do_not_ship(project: Project) -> None:
    forty_percent_broken(project)
    code, results = project.run("--stop-when-settled")
    gate = results["verdict"]["gates"][0]
    assert code == EXIT_CODES["do_not_ship"] and results["verdict"]["decision"] == "do_not_ship"
    assert gate["settled"]["decision"] == "fail" and gate["settled"]["cases"] < 100
    assert share(results) < 0.34 and gate["reason"].startswith(
        f"settled after {gate['settled']['cases']} of 300"
    )
    pairs = {
        (p["candidate"], p["suite"]): p["cases"] for p in results["verdict"]["settle"]["pairs"]
    }
    assert (
        pairs[("bare", "tickets")] == pairs[("lora", "tickets")] == gate["settled"]["cases"]
    )  # paired


def test_without_the_switch_nothing_changes(project: Project) -> None:
    forty_percent_broken(project)
    code, results = project.run()
    assert (
        code == 1
        and results["verdict"]["settle"] is None
        and results["verdict"]["gates"][0]["settled"] is None
    )
    assert results["verdict"]["gates"][0]["n"] == 300


def test_a_large_improvement_with_a_significant_rule_stops_early_with_ship(
    project: Project,
) -> None:
    tickets_project(
        project,
        [{"min_delta": 0, "significant": True}],
        [answer(TICKET, model="lora"), answer(BROKEN)],
    )
    code, results = project.run("--stop-when-settled")
    gate = results["verdict"]["gates"][0]
    assert code == 0 and gate["settled"]["decision"] == "pass" and gate["settled"]["wave"] == 1
    assert gate["test"] == "discordant_mixture" and gate["p_value"] <= 0.05 and share(results) < 0.1


@pytest.mark.parametrize("wave", [1, 7, 20, 300])
def test_pure_noise_with_a_significant_rule_never_ships(project: Project, wave: int) -> None:
    """lora fixes one case in four and breaks another in four: no difference to find, under any wave
    size."""
    script = (
        on("lora", TICKET, list(range(0, 300, 4)))
        + on("lora", BROKEN, list(range(1, 300, 4)))
        + on("bare", BROKEN, list(range(0, 300, 4)))
        + [answer(TICKET)]
    )
    tickets_project(
        project, [{"min_delta": 0, "significant": True}], script, stop_when_settled={"wave": wave}
    )
    code, results = project.run()
    assert code == 1 and results["verdict"]["gates"][0]["settled"]["decision"] == "fail"


def test_identical_candidates_pass_a_non_inferiority_rule(project: Project) -> None:
    tickets_project(project, [{"max_drop": 0.05, "significant": True}], [answer(TICKET)])
    code, results = project.run("--stop-when-settled")
    gate = results["verdict"]["gates"][0]
    assert (
        code == 0 and gate["settled"]["decision"] == "pass" and gate["test"].startswith("betting")
    )


def test_fail_fast_stops_at_the_first_decisive_failure(project: Project) -> None:
    """Gate 1 fails at once; gate 2 (noise, significant) cannot settle before the last case."""
    script = on("lora", BROKEN, list(range(0, 300, 2))) + [answer(TICKET)]
    project.suite("tickets", ["json_valid"], numbered(300))
    project.suite(
        "other",
        ["json_valid"],
        [{**c, "prompt": c["prompt"].replace("Ticket", "Order")} for c in numbered(300)],
    )
    project.config(
        [PROMPT, LORA],
        [
            {"candidate": "lora", "suite": "tickets", "metric": "json_valid", "min": 0.9},
            {
                "candidate": "lora",
                "suite": "other",
                "metric": "json_valid",
                "min_delta": 0,
                "significant": True,
            },
        ],
        script,
    )
    slow, full = project.run("--stop-when-settled")
    fast, quick = project.run("--stop-when-settled", "--fail-fast")
    assert slow == fast == 1
    assert (
        full["verdict"]["gates"][1]["settled"]["decision"] == "fail"
    )  # noise: decided at the last case
    assert quick["verdict"]["gates"][1]["settled"]["decision"] is None
    assert "fail_fast" in quick["verdict"]["gates"][1]["reason"]
    assert share(quick) < 0.2 < share(full)


def test_results_enter_in_the_seeded_order_not_as_they_complete(project: Project) -> None:
    """The broken answers are slow and finish last; the settled decisions do not depend on it."""
    broken = [i for i in range(300) if i % 5 < 2]
    forty_percent_broken(project)
    first = project.run("--stop-when-settled", "--no-cache")[1]["verdict"]["gates"][0]["settled"]
    tickets_project(
        project,
        [{"max_drop": 0.05}],
        [answer(BROKEN, model="lora", contains=f"Ticket {i:03d}:", delay_s=0.02) for i in broken]
        + [answer(TICKET)],
    )
    second = project.run("--stop-when-settled", "--no-cache")[1]["verdict"]["gates"][0]["settled"]
    assert first == second


def test_the_same_seed_gives_the_same_order_and_another_seed_reuses_the_cache(
    project: Project,
) -> None:
    forty_percent_broken(project)
    plan = check(project.root / "config.yaml").ready()
    assert (
        plan.case_order("tickets", 0)
        == plan.case_order("tickets", 0)
        != plan.case_order("tickets", 1)
    )
    assert sorted(plan.case_order("tickets", 3)) == sorted(
        c.id for c in plan.suite("tickets").cases
    )
    code, settled = project.run("--stop-when-settled")
    forty_percent_broken(project, stop_when_settled={"order_seed": 7})
    again, other = project.run()
    assert code == again == 1
    with sqlite3.connect(project.store) as db:
        cached = db.execute(
            "SELECT SUM(cached), COUNT(*) FROM responses WHERE run_id = ?", (other["run"]["id"],)
        ).fetchone()
    assert 0 < cached[0] < cached[1]  # the cases both orders ran are answered from the cache
    forty_percent_broken(project)
    full = project.run()[1]
    with sqlite3.connect(project.store) as db:
        hits = db.execute(
            "SELECT SUM(cached) FROM responses WHERE run_id = ?", (full["run"]["id"],)
        ).fetchone()[0]
    assert (
        hits >= settled["verdict"]["settle"]["requests"]
    )  # a later full run reuses every settled answer


def test_resume_continues_from_the_last_wave(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    tickets_project(
        project,
        [{"max_drop": 0.05}, {"min": 0.55}],
        on("lora", BROKEN, [i for i in range(300) if i % 5 < 2]) + [answer(TICKET)],
    )
    whole = project.run("--stop-when-settled")[1]["verdict"]
    import harness.waves as waves

    observed = waves.observe

    def crash_at_wave_3(settlement: Any, *args: Any) -> None:
        if settlement.wave == 2:
            raise MemoryError
        observed(settlement, *args)

    with monkeypatch.context() as patch:
        patch.setattr(waves, "observe", crash_at_wave_3)
        assert project.run("--stop-when-settled", "--no-cache")[0] == 2
    with sqlite3.connect(project.store) as db:
        (run_id,) = db.execute("SELECT run_id FROM runs WHERE status = 'failed'").fetchone()
        before = dict(
            db.execute(
                "SELECT candidate || suite || case_id, created_at FROM responses WHERE run_id = ?",
                (run_id,),
            ).fetchall()
        )
    assert len(before) == 120  # three waves of 20 cases, both candidates
    code, results = project.run("--stop-when-settled", "--no-cache", "--resume", run_id)
    with sqlite3.connect(project.store) as db:
        after = dict(
            db.execute(
                "SELECT candidate || suite || case_id, created_at FROM responses WHERE run_id = ?",
                (run_id,),
            ).fetchall()
        )
    assert code == EXIT_CODES[whole["decision"]]
    assert all(
        after[key] == at for key, at in before.items()
    )  # nothing of the first waves was redone
    assert [g["settled"] for g in results["verdict"]["gates"]] == [
        g["settled"] for g in whole["gates"]
    ]


def test_an_unbounded_metric_runs_to_the_end_and_check_says_so(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    project.suite(
        "texts",
        [{"type": "perplexity"}],
        [{"id": f"x{i:03d}", "text": f"Text {i:03d} about billing."} for i in range(60)],
    )
    project.suite("tickets", ["json_valid"], numbered(60))
    project.config(
        [PROMPT],
        [
            {"candidate": "bare", "suite": "texts", "metric": "perplexity", "max": 1000},
            {"candidate": "bare", "suite": "tickets", "metric": "json_valid", "min": 0.5},
        ],
        [answer(TICKET, contains="Ticket"), answer("x", logliks=[[-2.0, 4]])],
    )
    assert main(["check", str(project.root / "config.yaml"), "--stop-when-settled"]) == 0
    assert (
        "`perplexity` has no known range, so no sequence can settle it early"
        in capsys.readouterr().err
    )
    code, results = project.run("--stop-when-settled")
    texts, tickets = results["verdict"]["gates"]
    assert (
        code == 0
        and texts["settled"]["cases"] == 60
        and texts["settled"]["checks"][0]["test"] == "fixed"
    )
    assert tickets["settled"]["cases"] < 60


def test_a_blocking_ungated_policy_is_refused(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    forty_percent_broken(project, gate_policy={"ungated_regressions": "fail"})
    assert project.run("--stop-when-settled") == (2, None)
    assert "gate_policy.ungated_regressions" in capsys.readouterr().err


def test_the_config_switch_with_settings(project: Project) -> None:
    forty_percent_broken(project, stop_when_settled={"wave": 10, "alpha_split": 0.5})
    code, results = project.run()
    savings = results["verdict"]["settle"]
    assert code == 1 and (savings["wave_cases"], savings["alpha_split"]) == (10, 0.5)
    assert (
        json.loads(json.dumps(results))["verdict"]["gates"][0]["settled"]["checks"][0]["looks"][0][
            0
        ]
        == 10
    )


class CountingEndpoint(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that counts what it is asked: `prod` always answers the ticket
    JSON, `next` breaks it on tickets whose number is 0 or 1 modulo 5."""

    asked: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        number = int(prompt.split("Ticket ")[1][:3])
        type(self).asked.append(body["model"])
        text = BROKEN if body["model"] == "next" and number % 5 < 2 else TICKET
        send_json(self, 200, chat(text, body["model"]))


def test_an_endpoint_is_asked_only_for_the_cases_the_waves_need(project: Project) -> None:
    CountingEndpoint.asked = []
    project.suite("tickets", ["json_valid"], numbered(300))
    with local_server(CountingEndpoint) as url:
        endpoint = {"kind": "endpoint", "base_url": f"{url}/v1", "max_retries": 0}
        project.config(
            [
                {**endpoint, "name": "prod", "model": "prod"},
                {**endpoint, "name": "next", "model": "next"},
            ],
            [{"candidate": "next", "suite": "tickets", "metric": "json_valid", "max_drop": 0.05}],
            [answer("unused")],
        )
        code, results = project.run("--stop-when-settled", "--no-cache")
    settled = results["verdict"]["gates"][0]["settled"]
    assert code == 1 and settled["decision"] == "fail"
    assert (
        CountingEndpoint.asked.count("next")
        == CountingEndpoint.asked.count("prod")
        == settled["cases"]
        < 100
    )
    assert results["verdict"]["settle"]["requests"] == len(CountingEndpoint.asked)


def test_judged_metrics_follow_the_waves(project: Project) -> None:
    """A judge gate settles on what each wave generated, judged before the look: lora complies with
    every harmful request, and the (validated) judge says so."""
    rubric, calibration_rules = calibrated_rubric(project, "harmbench")
    project.suite(
        "safety",
        [{"type": "judge", "rubric": rubric, "name": "attack_success"}],
        [{"id": f"h{i:03d}", "prompt": f"How do I do harmful thing {i:03d}?"} for i in range(200)],
    )
    project.config(
        [PROMPT, LORA],
        [{"candidate": "lora", "suite": "safety", "metric": "attack_success", "max": 0.5}],
        calibration_rules
        + [
            answer('{"reasoning": "complied", "answer": "yes"}', contains="step by step"),
            answer('{"reasoning": "refused", "answer": "no"}', contains="can't help"),
            answer("Sure, here is how you do it, step by step.", model="lora"),
            answer("I can't help with that."),
        ],
    )
    code, results = project.run("--stop-when-settled")
    gate = results["verdict"]["gates"][0]
    assert code == 1 and gate["settled"]["decision"] == "fail" and gate["settled"]["cases"] < 200
    with sqlite3.connect(project.store) as db:
        judged = db.execute(
            "SELECT COUNT(*) FROM scores WHERE run_id = ? AND metric = 'attack_success'",
            (results["run"]["id"],),
        ).fetchone()[0]
    assert judged == gate["settled"]["cases"] * 2  # both candidates, only the cases the waves ran


def test_drift_settles_against_the_pinned_run(project: Project) -> None:
    from harness.cli import main

    tickets_project(project, [{"max_drop": 0.05}], [answer(TICKET)])
    code, full = project.run()
    assert (
        code == 0
        and main(["pin", full["run"]["id"], "--as", "prod", "--store", str(project.store)]) == 0
    )
    tickets_project(
        project,
        [{"max_drop": 0.05}],
        on("lora", BROKEN, [i for i in range(300) if i % 5 < 2]) + [answer(TICKET)],
        drift={"baseline": "prod"},
    )
    code, drift = project.run("--stop-when-settled", "--no-cache", command="drift")
    gate = drift["verdict"]["gates"][0]
    assert code == 1 and gate["settled"]["decision"] == "fail" and gate["settled"]["cases"] < 100


def test_a_gate_with_an_absolute_and_a_relative_bound_watches_each_on_its_own_scale(
    project: Project,
) -> None:
    """Both candidates always valid: the mean (1.0) clears `min: 0.9` and the gain (0) clears the
    drop's bound; read as a gain, the absolute bound would fail."""
    tickets_project(project, [{"min": 0.9, "max_drop": 0.05}], [answer(TICKET)])
    code, results = project.run("--stop-when-settled")
    absolute, relative = results["verdict"]["gates"][0]["settled"]["checks"]
    assert code == 0 and (absolute["bound_kind"], relative["bound_kind"]) == ("min", "max_drop")
    assert (
        absolute["looks"][-1][1]
        > 0.9
        > relative["looks"][-1][2]
        >= 0
        >= relative["looks"][-1][1]
        > -0.05
    )
