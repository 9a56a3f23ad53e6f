"""Shared fixtures. Integration tests use the real embedded model and one real vLLM server per session."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest
from scenarios import Project

from harness.config import EngineConfig
from harness.models import DEFAULT_MODEL, ModelRef, pull

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def model() -> ModelRef:
    """The embedded default model (pulled once into the cache; `make test` has already done it)."""
    return pull(DEFAULT_MODEL, log=lambda *_: None)


@pytest.fixture(scope="session")
def vllm_url(model: ModelRef, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real vLLM server for the whole session, stopped at the end."""
    from harness.serving.vllm_server import managed_server

    run_dir = tmp_path_factory.mktemp("vllm-session")
    with managed_server(model, run_dir, EngineConfig(), seed=0) as url:
        yield url


def copy_demo(folder: Path) -> Path:
    """configs/ and suites/ copied into a folder, so a test can edit them and write reports beside them."""
    shutil.copytree(ROOT / "configs", folder / "configs")
    shutil.copytree(ROOT / "suites", folder / "suites")
    return folder


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    return copy_demo(tmp_path)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A planted scenario's project folder (tests/scenarios.py), run by the scripted engine."""
    return Project(tmp_path)
