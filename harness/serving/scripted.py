"""The scripted engine: answers from rules in the config instead of a model.

A config, its suites and its gates can then be tried end to end in milliseconds: the tests plant
answers (a real gain, a format break, a failed request, a judge that replies nonsense) and check the
verdict the whole pipeline gives, and a user can dry-run a new config before any model starts.
Inspect's `mockllm` provider is the model for this. Rules are tried in order; the first that matches
answers:

    engine:
      kind: scripted
      script:
        - {model: lora, contains: "Ticket:", answer: '{"category": "billing"}'}
        - {contains: "Ticket:", error: "HTTP 500", times: 1}    # the first such request fails
        - {loglik: choices, logliks: [[-1.0, 1], [-3.0, 1]]}    # multiple-choice probes
        - {contains: "[ANSWER", top_logprobs: [["4", -0.2], ["5", -1.9]]}  # a judge read by token probabilities
        - {answer: "I don't know", delay_s: 0.01}              # everything else
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from harness.core.request import Completion, Request, loglik_completion
from harness.serving.base import Engine, LocalTarget
from harness.serving.fleet import run_concurrently
from harness.serving.settings import ScriptedConfig, ScriptRule


def matches(rule: ScriptRule, request: Request) -> bool:
    text = "\n".join(content for _, content in request.messages)
    return (
        (rule.model is None or rule.model == request.model)
        and (rule.contains is None or rule.contains in text)
        and (rule.loglik is None or rule.loglik == request.loglik)
    )


class ScriptedEngine:
    def __init__(self, rules: Sequence[ScriptRule], max_concurrency: int) -> None:
        self.rules = list(rules)
        self.left = [rule.times for rule in self.rules]
        self.lock = threading.Lock()
        self.max_concurrency = max_concurrency

    def _rule(self, request: Request) -> ScriptRule | None:
        with self.lock:
            for i, rule in enumerate(self.rules):
                if matches(rule, request) and self.left[i] != 0:
                    if self.left[i] is not None:
                        self.left[i] -= 1
                    return rule
        return None

    def complete(self, request: Request) -> Completion:
        rule = self._rule(request)
        if rule is None:
            return Completion(
                text="", error=f"scripted engine: no rule answers this request to {request.model!r}"
            )
        time.sleep(rule.delay_s)
        if rule.error is not None:
            return Completion(text="", error=rule.error, latency_s=rule.delay_s)
        if request.loglik != "none":
            if rule.logliks is None:
                return Completion(
                    text="", error="scripted engine: the rule gives no `logliks` for a probe"
                )
            return loglik_completion(request, rule.logliks, rule.delay_s)
        text = rule.answer or ""
        top = (
            tuple((token, logprob) for token, logprob in rule.top_logprobs or ())
            if request.top_logprobs
            else ()
        )
        return Completion(
            text=text,
            prompt_tokens=sum(len(c.split()) for _, c in request.messages),
            completion_tokens=len(text.split()),
            latency_s=rule.delay_s,
            finish_reason="stop",
            top_logprobs=top[: request.top_logprobs],
        )

    def run(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion]]:
        return run_concurrently(self.complete, requests, self.max_concurrency)


SCRIPTED_CONCURRENCY = 8  # enough threads that planted delays overlap, as on a server


@contextmanager
def scripted_engine(
    target: LocalTarget, config: ScriptedConfig, run_dir: Path, seed: int
) -> Iterator[Engine]:
    yield ScriptedEngine(config.script, config.max_concurrency or SCRIPTED_CONCURRENCY)
