"""Forgetting probes answered by log-likelihood: case shapes, suite checks, scorers, requests,
engines."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import pytest

from harness.core.errors import ConfigError, EngineError
from harness.core.models import ModelRef
from harness.core.request import Request
from harness.generation.prompts import prepare
from harness.planning.config import Config
from harness.planning.suites import Case, load_suite
from harness.scoring.likelihood import ChoiceParams, multiple_choice, perplexity
from harness.scoring.registry import Params, ScoreInput
from harness.serving.anthropic_client import AnthropicEngine
from harness.serving.loglik import (
    LOGLIK_BATCH,
    LogLik,
    LoglikScorer,
    Span,
    answer_all,
    loglik_batches,
    mc_prompt,
)
from harness.serving.openai_client import OpenAIEngine
from harness.serving.transformers_engine import TransformersEngine
from support.helpers import probe
from support.paths import REPO

ROOT = REPO
MC = {
    "id": "q1",
    "prompt": "What is 9 + 6?",
    "choices": ["13", "15", "16"],
    "answer_index": 1,
    "tags": ["arithmetic"],
}


def test_a_multiple_choice_case_takes_its_reference_from_the_right_choice() -> None:
    case = Case.model_validate(MC)
    assert (
        case.loglik == "choices"
        and case.reference == "15"
        and case.messages[0].content == "What is 9 + 6?"
    )
    assert (
        Case.model_validate(case.model_dump()).loglik == "choices"
    )  # validating again changes nothing
    text = Case.model_validate({"id": "t", "text": "Plain words here."})
    assert (
        text.loglik == "text" and Case.model_validate(text.model_dump()).text == "Plain words here."
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"answer_index": 3}, "past the last of 3 choices"),
        ({"answer_index": None}, "both `choices` and `answer_index`"),
        ({"text": "also text"}, "exactly one of"),
        ({"choices": ["only one"], "answer_index": 0}, "at least 2"),
    ],
)
def test_bad_multiple_choice_cases_say_what_is_wrong(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Case.model_validate({**MC, **change})


def suite(tmp_path: Path, scorers: str, cases: list[dict]) -> Path:
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    path = tmp_path / "suite.yaml"
    path.write_text(f"name: probes\ncases: cases.jsonl\nscorers:\n{scorers}")
    return path


@pytest.mark.parametrize(
    "scorers, cases, message",
    [
        (
            "  - multiple_choice\n",
            [{"id": "a", "prompt": "hi", "reference": "x"}],
            "needs cases with `prompt`, `choices`",
        ),
        ("  - perplexity\n", [MC], "needs cases with `text`"),
        (
            "  - {type: equals, name: exact}\n",
            [MC],
            "scores generated text, but case 'q1' is a log-likelihood probe",
        ),
    ],
)
def test_probe_scorers_and_cases_must_match(
    tmp_path: Path, scorers: str, cases: list[dict], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_suite(suite(tmp_path, scorers, cases))
    assert "suite.yaml:4" in str(info.value) and "scorers[0]" in str(info.value)


def test_scorers_read_the_engine_numbers() -> None:
    logliks = ((-4.0, 1), (-5.0, 4), (-9.0, 2))
    right = multiple_choice(
        ChoiceParams(type="multiple_choice"), ScoreInput("", "15", logliks, answer_index=0)
    )
    assert right.value == 1.0 and right.passed and "picked choice 0 by sum" in right.detail
    by_mean = multiple_choice(
        ChoiceParams(type="multiple_choice", normalise="mean"),
        ScoreInput("", "15", logliks, answer_index=0),
    )
    assert by_mean.value == 0.0 and "picked choice 1 by mean" in by_mean.detail
    ppl = perplexity(Params(type="perplexity"), ScoreInput("", None, ((-20.0, 10),)))
    assert ppl.value == pytest.approx(math.exp(2.0)) and ppl.passed is None


def test_probe_requests_are_the_raw_text_for_every_candidate() -> None:
    config = Config.model_validate(
        {
            "name": "t",
            "suites": ["s"],
            "gates": [{"candidate": "a", "suite": "s", "metric": "m", "min": 0}],
            "candidates": [
                {
                    "name": "a",
                    "kind": "prompt",
                    "system": "Be terse.",
                    "few_shot": [{"user": "1+1?", "assistant": "2"}],
                }
            ],
        }
    )
    loaded = load_suite(ROOT / "suites" / "forgetting_mc" / "suite.yaml")
    case = loaded.cases[0]
    request = prepare(config, config.candidates[0], loaded, case, "served").request
    assert request.loglik == "choices" and request.messages == (
        ("user", mc_prompt(case.messages[0].content)),
    )
    assert request.choices == tuple(" " + c for c in case.choices)


def test_endpoints_refuse_log_likelihood_requests_as_error_rows() -> None:
    request = Request("m", (("user", "Some text."),), 1, 0.0, 1.0, (), 0, loglik="text")
    for engine in (
        OpenAIEngine("http://127.0.0.1:9/v1", "k", 1, 1, 0),
        AnthropicEngine("http://127.0.0.1:9", "k", 1, 1, 0),
    ):
        completion = engine.complete(request)
        assert completion.error and "cannot score log-likelihood probes" in completion.error


@pytest.mark.slow
def test_vllm_with_lora_and_transformers_answer_probes_alike(
    tmp_path: Path, model: ModelRef
) -> None:
    """Both local engines answer probe requests with the same numbers (float32 on CPU), for the base
    model and an adapter, on a LoRA-enabled server also generating at the time: the demo's shape,
    which once crashed vLLM's engine (prompt log-probs of several requests in one step with LoRA
    enabled)."""
    from harness.building.training import TrainSettings, train_adapter
    from harness.serving.base import Adapter, LocalTarget
    from harness.serving.pool import open_engine
    from harness.serving.settings import VllmConfig

    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            line + "\n"
            for line in (ROOT / "suites" / "tickets" / "train.jsonl").read_text().splitlines()[:8]
        )
    )
    trained = train_adapter(
        model,
        TrainSettings(data="train.jsonl", max_steps=2, batch_size=4, lr=1e-2, val_fraction=0),
        data,
        cache_root=tmp_path / "adapters",
        log=lambda _: None,
    )
    adapter = Adapter("tuned", trained.path, trained.rank, trained.key)

    loaded = load_suite(ROOT / "suites" / "forgetting_mc" / "suite.yaml")
    config = Config.model_validate(
        {
            "name": "t",
            "suites": ["s"],
            "gates": [{"candidate": "a", "suite": "s", "metric": "m", "min": 0}],
            "candidates": [{"name": "a", "kind": "prompt"}],
        }
    )
    reqs = []
    for name in (model.name, adapter.name):
        reqs += [
            prepare(config, config.candidates[0], loaded, c, name).request for c in loaded.cases[:4]
        ]
        reqs.append(
            Request(
                name,
                (("user", "The Sun rises in the east and sets in the west."),),
                1,
                0.0,
                1.0,
                (),
                0,
                loglik="text",
            )
        )
        reqs += [
            Request(name, (("user", f"Count from {n} to {n + 5}."),), 24, 0.0, 1.0, (), 0)
            for n in range(4)
        ]
    hf = dict(TransformersEngine(model, 8, "auto", (adapter,)).run(reqs))
    with open_engine(LocalTarget(model, (adapter,)), VllmConfig(), tmp_path, 0) as engine:
        served = dict(engine.run(reqs))
    probes = [i for i, r in enumerate(reqs) if r.loglik != "none"]
    for i in probes:
        a, b = hf[i], served[i]
        assert (
            a.error is None and b.error is None and a.finish_reason == b.finish_reason == "loglik"
        ), (a.error, b.error)
        assert len(a.logliks) == len(b.logliks) == (len(reqs[i].choices) or 1)
        for (lp_a, n_a), (lp_b, n_b) in zip(a.logliks, b.logliks):
            assert n_a == n_b and abs(lp_a - lp_b) / n_a < 1e-3
    assert all(
        served[i].error is None and served[i].text for i in range(len(reqs)) if i not in probes
    )
    half = (
        len(reqs) // 2
    )  # the same probes on the base model, then on the adapter: the adapter changes them
    assert any(served[i].logliks != served[i + half].logliks for i in probes if i < half)


class CountingScorer(LoglikScorer):
    """A scorer on a toy tokenizer (one id per character) that records each call it gets, and fails
    any call holding a span of the id 0 (a NUL in the text), as an engine error."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode(self, text: str, special: bool) -> list[int]:
        return [ord(c) for c in text]

    def score(self, spans: Sequence[Span]) -> list[LogLik]:
        self.calls.append(len(spans))
        if any(0 in span.ids for span in spans):
            raise EngineError("the engine fell over")
        return [
            LogLik(-float(len(span.ids) - span.start), len(span.ids) - span.start) for span in spans
        ]


def test_probe_requests_are_scored_together_and_a_failure_stays_with_its_request() -> None:
    scorer = CountingScorer()
    requests = [
        probe("Question: a?\nAnswer:", (" x", " yy")),
        probe("some text"),
        probe("Q:", ("",)),
        probe("more text"),
    ]
    out = answer_all(scorer, requests)
    assert scorer.calls == [4]  # every span of the three good requests in one call
    assert out[0].logliks == ((-2.0, 2), (-3.0, 3)) and out[1].logliks == ((-8.0, 8),)
    assert out[2].error and "no tokens to score" in out[2].error and out[3].error is None
    scorer.calls.clear()
    broken = answer_all(scorer, [probe("fine text"), probe("bad\0text"), probe("also fine")])
    assert scorer.calls == [3, 1, 1, 1]  # the whole call failed, then each request alone
    assert [c.error is None for c in broken] == [True, False, True] and "fell over" in broken[
        1
    ].error


def test_probe_batches_hold_one_served_name_and_at_most_loglik_batch_requests() -> None:
    requests = [probe(f"t{i}", model="base" if i % 3 else "lora") for i in range(40)]
    requests.insert(5, Request("base", (("user", "chat"),), 8, 0.0, 1.0, (), 0))
    batches = loglik_batches(requests)
    assert all(len({requests[i].model for i in b}) == 1 and len(b) <= LOGLIK_BATCH for b in batches)
    assert sorted(i for b in batches for i in b) == [
        i for i, r in enumerate(requests) if r.loglik != "none"
    ]
