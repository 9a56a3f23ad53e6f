"""Shared fixtures. Integration tests use the real embedded model and one real vLLM server per
session: a test that runs the harness on it asks for `shared_vllm`, and its runs attach to that
server (harness/serving/shared.py) instead of starting their own. Only tests of a server's own start
or stop start one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from harness.core.models import DEFAULT_MODEL, ModelRef, pull
from harness.serving.settings import VllmConfig
from harness.serving.shared import REGISTRY_ENV
from harness.store.location import STORE_ENV, Location, parse, sqlite_file
from support.helpers import copy_demo
from support.postgres import Cluster
from support.scenarios import Project

# No test attaches to a server it did not ask for (a developer's `harness serve`, or this session's
# server in a test of a server's start or stop): attaching is on only inside `shared_vllm`.
os.environ[REGISTRY_ENV] = ""
# Nor does any test write to a store it did not make (a developer's team store in HARNESS_STORE).
os.environ.pop(STORE_ENV, None)


@pytest.fixture(scope="session")
def model() -> ModelRef:
    """The embedded default model (pulled once into the cache; `make test` has already done it)."""
    return pull(DEFAULT_MODEL, log=lambda *_: None)


@pytest.fixture(scope="session")
def vllm_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared-servers")


@pytest.fixture(scope="session")
def vllm_url(
    model: ModelRef, vllm_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One real vLLM server for the whole session (the default engine settings, seed 0), stopped at
    the end."""
    from harness.serving.vllm_server import shared_server

    run_dir = tmp_path_factory.mktemp("vllm-session")
    with shared_server(model, run_dir, VllmConfig(), seed=0, registry=vllm_registry) as url:
        yield url


@pytest.fixture
def shared_vllm(vllm_url: str, vllm_registry: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session's server, for runs of the harness in this test (in-process or children): a run
    whose server would be the same command and weights attaches to it."""
    monkeypatch.setenv(REGISTRY_ENV, str(vllm_registry))
    return vllm_url


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    return copy_demo(tmp_path)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A planted scenario's project folder (tests/support/scenarios.py), run by the scripted engine."""
    return Project(tmp_path)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """One real PostgreSQL server for the session (tests/support/postgres.py); each test makes its
    own database in it."""
    cluster = Cluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """A new, empty store on each engine: the store's tests run against both."""
    if request.param == "sqlite":
        return sqlite_file(tmp_path / "harness.sqlite")
    cluster: Cluster = request.getfixturevalue("postgres")
    return parse(cluster.create_database(f"t{uuid.uuid4().hex[:12]}"), "the test")
