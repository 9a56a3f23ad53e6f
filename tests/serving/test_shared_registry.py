"""A shared-server record is a claim about where a run may send its prompts, trusted only once
checked (harness/serving/shared.py, vllm_server.attached): the registry is this user's own folder, a
record has the shape `harness serve` writes, and its pid is the very vLLM server this run would
start, listening on the record's port. Anything else is ignored with a warning naming the file, and
the run starts its own server.

The impostor is a real server on loopback that claims to be ours (its /v1/models lists our model
loaded from our folder, and it answers every chat request), run by a live process of this user: a
check of a pid's liveness and of the model listing, which is all there was, attached to it and sent
it every prompt of a run.
"""

from __future__ import annotations

import http.server
import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.cli import main
from harness.core.errors import HarnessError
from harness.core.models import ModelRef
from harness.serving import shared
from harness.serving.settings import VllmConfig
from harness.serving.vllm_server import attached, server_key
from support.helpers import chat, local_server, send_json
from support.scenarios import PROMPT, TICKET, Project, answer, tickets


class Impostor:
    """A loopback server answering /v1/models as our server would and every chat request with a
    valid ticket; `asked` records each path it was sent."""

    def __init__(self, model: ModelRef) -> None:
        self.asked: list[str] = []
        impostor = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                impostor.asked.append(self.path)
                send_json(
                    self,
                    200,
                    {"object": "list", "data": [{"id": model.name, "root": str(model.path)}]},
                )

            def do_POST(self) -> None:  # noqa: N802
                impostor.asked.append(self.path)
                asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                send_json(self, 200, chat(TICKET, asked["model"]))

        self.server = local_server(Handler)
        self.port = self.server.port


@pytest.fixture
def served(tmp_path: Path) -> ModelRef:
    """A model as a run names it: what the key and the impostor's claim are made of (nothing loads
    it here)."""
    (tmp_path / "model").mkdir()
    return ModelRef("model", tmp_path / "model", "a" * 64)


@pytest.fixture
def impostor(served: ModelRef) -> Iterator[Impostor]:
    fake = Impostor(served)
    with fake.server:
        yield fake


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "servers"
    shared.prepare(folder)
    monkeypatch.setenv(shared.REGISTRY_ENV, str(folder))
    return folder


def record(
    model: ModelRef, pid: int, port: int, config: VllmConfig | None = None
) -> dict[str, Any]:
    """A record of the shape `harness serve` writes, naming `pid` and `port`."""
    return {
        "key": server_key(model, config or VllmConfig(), 0),
        "pid": pid,
        "port": port,
        "command": ["python", "-m", "vllm.entrypoints.openai.api_server"],
        "model": model.name,
        "fingerprint": model.fingerprint,
    }


def plant(
    model: ModelRef,
    registry: Path,
    content: dict | list | str | bytes,
    config: VllmConfig | None = None,
) -> Path:
    """Write `content` (JSON of a value, or the text or bytes as they are) as the record of this
    run's key."""
    path = registry / f"{server_key(model, config or VllmConfig(), 0)}.json"
    data = content if isinstance(content, (str, bytes)) else json.dumps(content)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def warned(capsys: pytest.CaptureFixture, path: Path) -> str:
    """The warning that names `path` (the console wraps long lines: compared with its blanks
    joined)."""
    err = " ".join(capsys.readouterr().err.split())
    assert (
        f"the shared-server record {path} is ignored: " in err
        and "this run starts its own server" in err
    )
    return err


@pytest.mark.parametrize("whose", ["this test's process, which listens on the port", "pid 1"])
def test_a_live_process_that_is_not_our_server_is_never_attached(
    whose: str, served: ModelRef, registry: Path, impostor: Impostor, capsys: pytest.CaptureFixture
) -> None:
    """Both pass a liveness check and the listing is the impostor's: only the process's command line
    tells."""
    pid = 1 if whose == "pid 1" else os.getpid()
    path = plant(served, registry, record(served, pid, impostor.port))
    assert attached(served, VllmConfig(), 0) is None
    assert "is not the vLLM server this run would start" in warned(capsys, path)
    assert impostor.asked == []  # checked before a single request went to its port


def test_the_address_is_the_checked_port_on_loopback_never_a_recorded_url(
    served: ModelRef, registry: Path, impostor: Impostor, capsys: pytest.CaptureFixture
) -> None:
    path = plant(
        served,
        registry,
        {**record(served, os.getpid(), impostor.port), "url": "http://10.9.9.9:1/v1"},
    )
    assert attached(served, VllmConfig(), 0) is None
    assert "url: Extra inputs are not permitted" in warned(capsys, path)
    checked = shared.SharedServer.model_validate(record(served, os.getpid(), impostor.port))
    assert checked.base_url == f"http://127.0.0.1:{impostor.port}/v1"
    assert impostor.asked == []


SHAPES = {
    "a JSON list": ([], "the record: Input should be an object"),
    "no pid": ({"pid": None}, "pid: Field required"),
    "no port": ({"port": None}, "port: Field required"),
    "a pid as text": ({"pid": "1"}, "pid: Input should be a valid integer"),
    "a pid as a boolean": ({"pid": True}, "pid: Input should be a valid integer"),
    "pid 0": ({"pid": 0}, "pid: Input should be greater than 0"),
    "port 0": ({"port": 0}, "port: Input should be greater than or equal to 1"),
    "port 70000": ({"port": 70000}, "port: Input should be less than or equal to 65535"),
    "a port as text": ({"port": "x"}, "port: Input should be a valid integer"),
    "a port as a boolean": ({"port": True}, "port: Input should be a valid integer"),
    "a port with a fraction": ({"port": 80.5}, "port: Input should be a valid integer"),
    "a command of numbers": ({"command": [1, 2]}, "command[0]: Input should be a valid string"),
    "half a record": ('{"pid": 1, "po', "the record: Invalid JSON"),
    "an empty file": ("", "the record: Invalid JSON"),
    "not UTF-8": (b'{"pid": "\xff"}', "the record: Invalid JSON"),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_record_of_another_shape_is_ignored_with_a_warning(
    shape: str, served: ModelRef, registry: Path, impostor: Impostor, capsys: pytest.CaptureFixture
) -> None:
    change, reason = SHAPES[shape]
    if isinstance(change, dict):
        fields = {**record(served, os.getpid(), impostor.port), **change}
        change = {key: value for key, value in fields.items() if value is not None}
    path = plant(served, registry, change)
    assert attached(served, VllmConfig(), 0) is None
    assert reason in warned(capsys, path)
    assert impostor.asked == []


def loosen_folder(registry: Path, path: Path) -> None:
    registry.chmod(0o777)


def loosen_record(registry: Path, path: Path) -> None:
    path.chmod(0o664)


def give_folder_away(registry: Path, path: Path) -> None:
    os.chown(registry, 65534, 65534)


WRITERS = {
    "a folder others may write": (
        loosen_folder,
        "its folder may be written by group or other users",
    ),
    "a record the group may write": (loosen_record, "it may be written by group or other users"),
    "a folder of another user": (
        give_folder_away,
        "its folder is owned by user id 65534, not by this user",
    ),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_a_registry_another_user_could_write_is_not_trusted(
    writer: str, served: ModelRef, registry: Path, impostor: Impostor, capsys: pytest.CaptureFixture
) -> None:
    loosen, reason = WRITERS[writer]
    if loosen is give_folder_away and os.getuid() != 0:
        pytest.skip("only root can give a folder to another user")
    path = plant(served, registry, record(served, os.getpid(), impostor.port))
    loosen(registry, path)
    assert attached(served, VllmConfig(), 0) is None
    assert f"{reason} (only this user may write the registry)" in warned(capsys, path)
    assert impostor.asked == []


def test_the_registry_is_made_for_this_user_alone_whatever_the_umask(
    served: ModelRef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "home" / "servers"
    monkeypatch.setenv(shared.REGISTRY_ENV, str(folder))
    before = os.umask(0o002)  # a user-private-group umask: files the group may write
    try:
        shared.prepare(folder)
        path = shared.register(shared.SharedServer.model_validate(record(served, 1, 8000)), folder)
    finally:
        os.umask(before)
    assert folder.stat().st_mode & 0o777 == 0o700 and path.stat().st_mode & 0o777 == 0o600
    assert shared.lookup(path.stem) == shared.SharedServer.model_validate(record(served, 1, 8000))


def test_serve_refuses_a_registry_others_may_write(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    with pytest.raises(HarnessError, match="may be written by group or other users"):
        shared.prepare(folder)
    project.suite("tickets", ["json_valid"], tickets(2))
    project.config(
        [PROMPT],
        [{"candidate": "bare", "suite": "tickets", "metric": "json_valid", "min": 0.5}],
        [answer(TICKET)],
        engine={"kind": "vllm"},
    )
    monkeypatch.setenv(shared.REGISTRY_ENV, str(folder))
    assert main(["serve", str(project.root / "config.yaml")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"the shared-server registry {folder} may be written by group or other users" in err
    assert f"fix: `chmod 700 {folder}` if it is yours" in err
    assert list(folder.iterdir()) == []  # refused before a server started


@pytest.mark.parametrize(
    "planted", ["as the issue planted it, with a url", "as `harness serve` writes one"]
)
def test_a_planted_record_gets_none_of_a_runs_prompts(
    planted: str, project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Through the command line: a run whose server would be the planted record's sends the impostor
    nothing (trusting it, the run scored the impostor's answers and said SHIP). It starts its own
    server instead, here on a folder vLLM cannot load, given a second to be ready: ERROR, exit 2."""
    from harness.planning.config import load_config
    from harness.planning.plan import make_plan

    project.suite("tickets", ["json_valid"], tickets(4))
    project.config(
        [PROMPT],
        [{"candidate": "bare", "suite": "tickets", "metric": "json_valid", "min": 0.5}],
        [answer(TICKET)],
        engine={"kind": "vllm", "startup_timeout_s": 1},
    )
    plan = make_plan(load_config(project.root / "config.yaml"))
    ((model, _),) = plan.by_model()
    folder = project.root / "servers"
    shared.prepare(folder)
    monkeypatch.setenv(shared.REGISTRY_ENV, str(folder))
    fake = Impostor(model)
    with fake.server:
        planted_record = record(model, os.getpid(), fake.port, plan.config.engine)
        if "url" in planted:
            planted_record["url"] = f"http://127.0.0.1:{fake.port}/v1"
        path = plant(model, folder, planted_record, plan.config.engine)
        code, _ = project.run()
    assert fake.asked == []
    warned(capsys, path)
    assert code == 2
