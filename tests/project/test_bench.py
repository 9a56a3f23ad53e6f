"""Benchmarks rot silently: each bench script runs here at a tiny size (`--smoke` or small
arguments).

The ones that need no server are fast tests; those that start vLLM or train are slow. A bench
asserts its own invariants (equal answers across the paths it times), so a smoke run that exits 0
checked them too.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.paths import REPO

BENCH = REPO / "bench"


def bench(script: str, *args: str, timeout: float) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_speed_bench_smoke() -> None:
    out = bench("speed.py", "--smoke", timeout=180)
    assert "stage" in out and "generate" in out and "rerun with nothing changed" in out


def test_probes_bench_smoke() -> None:
    out = bench("probes.py", "--smoke", timeout=180)
    assert "3 probe requests" in out and "baseline transformers in-process" in out


def test_judges_bench_smoke() -> None:
    out = bench("judges.py", "--smoke", timeout=180)
    assert (
        out.count("structured") >= 5
        and out.count("logprobs") >= 5
        and "the time of structured output" in out
    )


def test_sequential_bench_smoke() -> None:
    """Every rule kind has its lines, and every null line's rates (each policy's cell) are numbers:
    loosely bounded, as 200 runs measure a rate near alpha only to a few points."""
    out = bench("sequential.py", "--smoke", timeout=180)
    assert all(f"| ({kind}) " in out for kind in "abcdef"), out
    nulls = [line for line in out.splitlines() if line.startswith("| (") and "| null" in line]
    cells = [
        line.strip("|").split("|")[3:] for line in nulls
    ]  # a mean rule's rate, or a cell per policy
    rates = [
        float(cell.split("·")[0]) for row in cells for cell in (row if "·" in row[0] else row[:1])
    ]
    assert len(nulls) == 2 * 2 + 4 and len(rates) == 2 * 2 + 4 * 4
    assert all(0 <= rate <= 0.2 for rate in rates), nulls


def test_retrieval_bench_smoke() -> None:
    assert bench("retrieval.py", "--queries", "20", "--baseline-queries", "5", timeout=180)


def test_cli_startup_bench_smoke() -> None:
    """Every command's row, each with its seconds and ratio (the bench asserts each command exited
    0)."""
    out = bench("cli_startup.py", "--smoke", timeout=180)
    rows = [line for line in out.splitlines()[1:] if line.strip()]
    assert [row.split()[0:2] for row in rows] == [
        ["python", "-c"],
        ["harness", "--help"],
        ["harness", "check"],
        ["harness", "compare:"],
        ["harness", "compare:"],
    ], out
    assert all(float(row.split()[-1]) > 0 for row in rows), out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_startup_bench_smoke() -> None:
    out = bench("startup.py", "--smoke", timeout=840)
    assert "answers: identical across server settings" in out and "probes s" in out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_evalcli_bench_smoke(vllm_url: str) -> None:
    out = bench("evalcli.py", "--server", vllm_url, "--n", "2", timeout=540)
    assert (
        "2 answers (2 ticket cases x 1 candidates), identical between the tools" in out
        and "lm-eval @8" in out
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_generation_bench_smoke(shared_vllm: str) -> None:
    """The harness path attaches to the session's server (it times generation, not the start)."""
    assert "raw vllm" in bench("generation.py", "--n", "4", "--max-tokens", "8", timeout=840)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_train_throughput_bench_smoke() -> None:
    assert "ratio ours/stock" in bench(
        "train_throughput.py", "--steps", "2", "--rounds", "1", timeout=840
    )


def test_store_bench_smoke() -> None:
    out = bench("store.py", "--smoke", timeout=180)
    assert "sqlite (baseline)" in out and "postgresql" in out and "store copy: 201 rows" in out


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_scale_bench_smoke(vllm_url: str) -> None:
    """On the session's server as the baseline: the replicas and the fleet path answer as it does
    (the bench asserts it), and one and two training processes both train."""
    out = bench("scale.py", "--smoke", "--server", vllm_url, timeout=900)
    assert (
        "2 managed replicas" in out and "fleet path" in out and "2, DDP through accelerate" in out
    )
