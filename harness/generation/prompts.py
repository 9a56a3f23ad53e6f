"""How a case becomes a request for a candidate: its prompt, few-shot turns, what its kind adds
(retrieved context) and merged settings. Pure: what to send is decided here, who answers it is
decided by serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.building.kinds import CandidateBase, kind_of
from harness.core.request import Request
from harness.core.sampling import DEFAULT_GENERATION
from harness.planning.config import Config
from harness.planning.suites import Case, Suite
from harness.serving.loglik import mc_continuations, mc_prompt


@dataclass(frozen=True)
class Prepared:
    request: Request
    context: list[dict] | None = (
        None  # retrieved chunks (id, doc_id, score), for the store and report
    )


def prepare(
    config: Config,
    candidate: CandidateBase,
    suite: Suite,
    case: Case,
    served_name: str,
    artifact: Any = None,
) -> Prepared:
    """Settings merge from general to specific: defaults < config < suite < candidate. `artifact`:
    what the candidate's kind built (a RAG index, say)."""
    if case.loglik != "none":
        return Prepared(_loglik_request(config, case, served_name))
    gen = candidate.generation.over(
        suite.generation.over(config.generation.over(DEFAULT_GENERATION))
    )
    messages: list[dict[str, str]] = []
    if candidate.system:
        messages.append({"role": "system", "content": candidate.system})
    for shot in candidate.few_shot:
        messages += [
            {"role": "user", "content": shot.user},
            {"role": "assistant", "content": shot.assistant},
        ]
    turns = [m.model_dump() for m in case.messages]
    context = None
    add = kind_of(candidate).context
    if add is not None and artifact is not None:
        turns, context = add(candidate, artifact, turns)
    messages += turns
    request = Request(
        model=served_name,
        messages=tuple((m["role"], m["content"]) for m in messages),
        max_tokens=gen.max_tokens or 256,
        temperature=gen.temperature or 0.0,
        top_p=gen.top_p if gen.top_p is not None else 1.0,
        stop=tuple(gen.stop or ()),
        seed=config.seed,
    )
    return Prepared(request, context)


def _loglik_request(config: Config, case: Case, served_name: str) -> Request:
    """Log-likelihood probes ask what the weights know: the raw text, without the candidate's system
    prompt, few-shot turns, retrieval or chat template, so every candidate is scored on the same
    tokens.
    """
    question = case.messages[-1].content
    if case.choices is None:
        return Request(
            model=served_name,
            messages=(("user", question),),
            max_tokens=1,
            temperature=0.0,
            top_p=1.0,
            stop=(),
            seed=config.seed,
            loglik="text",
        )
    return Request(
        model=served_name,
        messages=(("user", mc_prompt(question)),),
        max_tokens=1,
        temperature=0.0,
        top_p=1.0,
        stop=(),
        seed=config.seed,
        loglik="choices",
        choices=tuple(mc_continuations(case.choices)),
    )
