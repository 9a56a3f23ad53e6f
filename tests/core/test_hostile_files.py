"""Hostile and broken files (issue 21, items 4 and 9): YAML whose aliases would expand without end,
text that is not UTF-8, a ragged CSV, a file the `datasets` library cannot read, a run store SQLite
cannot use. Each is exit 2 with one line naming the file, the place and the fix; `harness check`
finds what it can and keeps listing.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from harness.building.training.data import load_examples
from harness.cli import main
from harness.core.errors import ConfigError
from harness.scoring.rubrics import judges_dir
from support.paths import REPO
from support.scenarios import PROMPT, TICKET, Project, answer, tickets

REPO = REPO
MEMORY_LIMIT = (
    2 * 1024**3
)  # `harness check` needs a few hundred MB; an alias bomb that got through takes gigabytes
HANG_GUARD_S = (
    300  # only so that a regression that hangs (the bomb did, ignoring SIGTERM) fails instead
)
LATIN1 = "café".encode("latin-1")  # b"caf\xe9": not UTF-8
UTF8_FIX = "save the file as UTF-8"


def bomb(indent: str) -> tuple[list[str], int]:
    """Nine anchors, each a list of nine aliases of the one before (9^9 values), as YAML lines at
    `indent`, and the index of the line holding the aliases that copy the most (*h)."""
    lines = [f'{indent}a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [
        f"{indent}{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]"
        for prev, cur in zip("abcdefgh", "bcdefghi")
    ]
    return lines, len(lines) - 1


def harness_child(
    *args: str, cwd: Path, prepare: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """harness.cli.main(args) in a child process that may map at most MEMORY_LIMIT, so that a
    regression fails with a MemoryError instead of taking the test machine's memory; `prepare` runs
    in the child first.
    """

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
        if prepare is not None:
            prepare()

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    code = "import sys; from harness.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )


def write_suite(folder: Path, text: str, cases: list[dict[str, Any]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases or tickets(2)))
    (folder / "suite.yaml").write_text(text)
    return folder / "suite.yaml"


def rubric_copy(folder: Path, name: str = "correctness") -> Path:
    """A copy of a shipped rubric with its template and calibration set beside it, to break one of
    them."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (
        (judges_dir() / f"{name}.yaml")
        .read_text()
        .replace(f"calibration/{name}.jsonl", "calibration.jsonl")
    )
    (folder / f"{name}.yaml").write_text(text)
    shutil.copy(judges_dir() / f"{name}.j2", folder / f"{name}.j2")
    shutil.copy(judges_dir() / "calibration" / f"{name}.jsonl", folder / "calibration.jsonl")
    return folder / f"{name}.yaml"


def judged_suite(folder: Path, rubric: Path) -> Path:
    cases = [{"id": "a", "prompt": "Capital of France?", "reference": "Paris"}]
    return write_suite(
        folder,
        f"name: {folder.name}\ncases: cases.jsonl\nscorers:\n  - type: judge\n"
        f"    rubric: {rubric}\n",
        cases,
    )


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error: ")]


# ---- YAML without limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["suite", "config", "rubric"])
def test_an_alias_bomb_is_refused_at_its_line_before_it_expands(
    project: Project, where: str
) -> None:
    """The bomb in a suite's inline json_schema took `harness check` to 3.6 GB and a hang; in any
    YAML the harness reads it is now exit 2 at the alias that copies the most, with the fix."""
    project.suite("qa", [{"type": "json_schema", "schema": {"type": "object"}}], tickets(2))
    path = project.config(
        [PROMPT],
        [{"candidate": "bare", "suite": "qa", "metric": "json_schema", "min": 0.5}],
        [answer(TICKET)],
    )
    if where == "suite":
        lines, at = bomb("      ")
        file = write_suite(
            project.root / "suites" / "qa",
            "name: qa\ncases: cases.jsonl\nscorers:\n"
            "  - type: json_schema\n    schema:\n      type: object\n" + "\n".join(lines) + "\n",
        )
        line = 6 + at + 1
    elif where == "config":
        lines, at = bomb("    ")
        text = path.read_text().replace(
            "engine:\n", "engine:\n  bomb:\n" + "\n".join(lines) + "\n", 1
        )
        path.write_text(text)
        file, line = path, text.splitlines().index(lines[at]) + 1
    else:
        file = rubric_copy(project.root / "rubrics")
        lines, at = bomb("  ")
        base = file.read_text()
        file.write_text(base + "anchors:\n" + "\n".join(lines) + "\n")
        line = len(base.splitlines()) + 1 + at + 1
        judged_suite(project.root / "suites" / "qa", file)
    result = harness_child("check", str(path), cwd=project.root)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{file}:{line}: YAML aliases expand" in result.stderr and "*h" in result.stderr
    assert "fix: write the values out" in result.stderr and "Traceback" not in result.stderr


def test_anchors_aliases_and_merge_keys_of_an_ordinary_config_still_load(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.suite(
        "qa", ["contains"], [{"id": "a", "prompt": "Capital of France?", "reference": "Paris"}]
    )
    path = project.config([PROMPT], [], [answer("Paris")])
    config = yaml.safe_load(path.read_text())
    config.pop("gates")
    text = (
        yaml.safe_dump(config, sort_keys=False) + "gates:\n"
        "  - &gate {candidate: bare, suite: qa, metric: contains, min: 0.5}\n"
        "  - <<: *gate\n    min: 0.25\n"
        "  - *gate\n"
    )
    path.write_text(
        text.replace(
            "candidates:\n- name: bare\n  kind: prompt\n",
            "candidates:\n- name: bare\n  kind: prompt\n  system: &system Be brief.\n"
            "- name: terse\n  kind: prompt\n  system: *system\n",
        )
    )
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
    assert "2 candidates" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["recursive", "deep", "huge", "control"])
def test_yaml_that_never_ends_nests_without_bound_or_is_huge_is_refused(
    project: Project, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recursive alias, nesting deeper than any reader's stack, a file of many megabytes, a NUL
    byte: each is a ConfigError at the suite file (and its line), and the rest of the config is
    still checked."""
    project.suite(
        "qa", ["contains"], [{"id": "a", "prompt": "Capital of France?", "reference": "Paris"}]
    )
    project.suite("broken", ["contains"], [{"id": "a", "prompt": "q", "reference": "r"}])
    path = project.config(
        [PROMPT, {"name": "other", "kind": "prompt", "model": "./no-such-model"}],
        [{"candidate": "bare", "suite": "qa", "metric": "contains", "min": 0.5}],
        [answer("Paris")],
    )
    head = "name: broken\ncases: cases.jsonl\nscorers: [contains]\ndescription: "
    body, where, problem = {
        "recursive": ("&loop [1, *loop]\n", ":4:", "*loop stands inside its own anchor"),
        "deep": ("[" * 5000 + "]" * 5000 + "\n", ":4:", "nested too deeply"),
        "huge": ("big\n" + "# padding\n" * 500_000, ":", "bytes such a file may have"),
        "control": ("a\x00b\n", ":4:", "control character #x00"),
    }[case]
    suite = project.root / "suites" / "broken" / "suite.yaml"
    suite.write_text(head + body)
    assert main(["check", str(path)]) == 2
    errors = error_lines(capsys.readouterr().err)
    assert any(f"{suite}{where}" in e and problem in e for e in errors), errors
    assert any("no-such-model" in e for e in errors), (
        errors
    )  # the rest of the config is still checked


# ---- text that is not UTF-8 ---------------------------------------------------------------------------------


def latin1_line(path: Path, lines: list[str], bad: int) -> Path:
    """`lines` written with line `bad` (1-based) ending in Latin-1 bytes."""
    data = [line.encode() for line in lines]
    data[bad - 1] = data[bad - 1] + LATIN1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(data) + b"\n")
    return path


CASE = '{"id": "a", "prompt": "Capital of France?", "reference": "Paris"}'
BEHAVIORS = "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID"
# suite -> (its suite.yaml after `name:`, the file of its folder that is broken, that file's lines:
# the last one ends in Latin-1 bytes)
LATIN1_SUITES = {
    "yaml": (
        ["cases: cases.jsonl", "scorers: [contains]", "description: a suite by"],
        "suite.yaml",
        [],
    ),
    "jsonl": (
        ["cases: cases.jsonl", "scorers: [contains]"],
        "cases.jsonl",
        [CASE, '{"id": "b", "prompt": "by'],
    ),
    "csv": (
        [
            "cases: data.csv",
            "columns: {prompt: question, reference: answer}",
            "scorers: [contains]",
        ],
        "data.csv",
        ["question,answer", "Capital of France?,Paris", "Who wrote it?,"],
    ),
    "json": (
        ["cases: cases.json", "scorers: [contains]"],
        "cases.json",
        ['[{"id": "a", "prompt": "q"},', "{"],
    ),
    "harmbench": (
        ["cases: behaviors.csv", "scorers: [refusal]"],
        "behaviors.csv",
        [BEHAVIORS, "Do a bad thing,standard,harm,,,b1", "Do another,standard,harm,,,b2"],
    ),
    "schema": (
        ["cases: cases.jsonl", "scorers: [{type: json_schema, schema_file: schema.json}]"],
        "schema.json",
        ['{"type": "object",', '"description": "by"}'],
    ),
}


def latin1_suite(folder: Path, name: str) -> tuple[Path, int]:
    """The suite `name` of LATIN1_SUITES, and the file and line of its Latin-1 bytes."""
    suite, broken, lines = LATIN1_SUITES[name]
    folder.mkdir(parents=True)
    (folder / "cases.jsonl").write_text(CASE + "\n")
    (folder / "suite.yaml").write_text("\n".join([f"name: {name}", *suite]) + "\n")
    lines = lines or (folder / broken).read_text().splitlines()
    return latin1_line(folder / broken, lines, len(lines)), len(lines)


def latin1_rubric(folder: Path, part: str) -> tuple[Path, int]:
    """A suite judged by a rubric copy whose YAML, template or calibration set has Latin-1 bytes on
    line 5."""
    rubric = rubric_copy(folder / "rubric")
    broken = {
        "yaml": rubric,
        "template": rubric.with_suffix(".j2"),
        "calibration": folder / "rubric" / "calibration.jsonl",
    }[part]
    judged_suite(folder, rubric)
    return latin1_line(broken, broken.read_text().splitlines(), 5), 5


def test_bytes_that_are_not_utf8_name_the_file_line_and_fix_and_check_lists_every_one(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Latin-1 file of each kind the harness reads (suite, cases as JSONL, CSV, JSON and HarmBench
    CSV, a JSON Schema file, a rubric, its template and calibration set, training data, documents),
    in one config: `harness check` lists each at its line, and the other problems too."""
    suites = project.root / "suites"
    bad = [latin1_suite(suites / name, name) for name in LATIN1_SUITES]
    bad += [
        latin1_rubric(suites / f"rubric-{part}", part)
        for part in ("yaml", "template", "calibration")
    ]
    chat = (
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "by"}]}'
    )
    bad.append((latin1_line(project.root / "train.jsonl", [chat, chat], 2), 2))
    bad.append((latin1_line(project.root / "docs.jsonl", ['{"id": "d1", "text": "by"}'], 1), 1))
    path = project.config(
        [
            PROMPT,
            {"name": "tuned", "kind": "lora", "train": {"data": "train.jsonl"}},
            {"name": "rag", "kind": "rag", "retrieval": {"documents": "docs.jsonl"}},
            {"name": "other", "kind": "prompt", "model": "./no-such-model"},
        ],
        [],
        [answer("Paris")],
    )
    config = yaml.safe_load(path.read_text())
    config.update(
        suites=sorted(f"suites/{p.name}" for p in suites.iterdir()),
        gates=[{"candidate": "bare", "suite": "jsonl", "metric": "contains", "min": 0.5}],
    )
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["check", str(path)]) == 2
    errors = error_lines(capsys.readouterr().err)
    for file, line in bad:
        assert any(
            f"{file}:{line}: not UTF-8 text (byte 0xe9 at byte offset" in e for e in errors
        ), (file, errors)
    assert any("no-such-model" in e for e in errors), errors
    assert sum("not UTF-8" in e for e in errors) == len(bad), errors


def test_a_config_that_is_not_utf8_is_one_error_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = latin1_line(tmp_path / "config.yaml", ["# the release gate", "name: gate by "], 2)
    for command in ("check", "compare"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert (
            f"error: {path}:2: not UTF-8 text (byte 0xe9 at byte offset 36, line 2 column 18" in err
        )
        assert f"fix: {UTF8_FIX}" in err and "UnicodeDecodeError" not in err


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_training_data_that_is_not_utf8_names_its_line(tmp_path: Path, suffix: str) -> None:
    lines = {
        ".jsonl": [
            '{"instruction": "hi", "output": "hello"}',
            '{"instruction": "by", "output": "x"}',
        ],
        ".csv": ["instruction,output", "hi,hello", "by,x"],
        ".json": [
            '[{"instruction": "hi", "output": "hello"},',
            ' {"instruction": "by", "output": "x"}]',
        ],
    }[suffix]
    path = latin1_line(tmp_path / f"data{suffix}", lines, 2)
    with pytest.raises(ConfigError) as caught:
        load_examples(path)
    assert (
        caught.value.file == f"{path}:2"
        and "not UTF-8" in caught.value.problem
        and UTF8_FIX in caught.value.fix
    )


# ---- CSV and `datasets` -------------------------------------------------------------------------------------


def test_a_ragged_csv_names_its_line_and_the_fix(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unquoted comma gives a row more fields than the header: `datasets` said only
    DatasetGenerationError. Under `columns:`, as a HarmBench CSV, and as training data, the error is
    at the row's line."""
    root = project.root
    write_suite(
        root / "suites" / "mapped",
        "name: mapped\ncases: data.csv\ncolumns: {prompt: question, reference: "
        "answer}\nscorers: [contains]\n",
    )
    mapped = root / "suites" / "mapped" / "data.csv"
    mapped.write_text(
        'question,answer\n"Capital of France?",Paris\nCapital of Peru?,Lima, the capital\n'
    )
    write_suite(
        root / "suites" / "harmbench", "name: harmbench\ncases: behaviors.csv\nscorers: [refusal]\n"
    )
    harmbench = root / "suites" / "harmbench" / "behaviors.csv"
    harmbench.write_text(
        "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\n"
        "Do a bad thing,standard,harm,,,b1\nDo this, then that,standard,harm,,,b2\n"
    )
    path = project.config([PROMPT], [], [answer("Paris")])
    config = yaml.safe_load(path.read_text())
    config.update(
        suites=["suites/mapped", "suites/harmbench"],
        gates=[{"candidate": "bare", "suite": "mapped", "metric": "contains", "min": 0.5}],
    )
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["check", str(path)]) == 2
    errors = error_lines(capsys.readouterr().err)
    assert any(
        f"{mapped}:3: this row has 3 fields, the header 2 (question, answer)" in e for e in errors
    ), errors
    assert any(f"{harmbench}:3: this row has 7 fields, the header 6" in e for e in errors), errors
    assert "DatasetGenerationError" not in "\n".join(errors)
    data = root / "train.csv"
    data.write_text("instruction,output\nhi,hello\nsay hi, politely,hello there\n")
    with pytest.raises(ConfigError) as caught:
        load_examples(data)
    assert (
        caught.value.file == f"{data}:3"
        and "3 fields" in caught.value.problem
        and "quote" in caught.value.fix
    )


def test_any_error_of_the_datasets_library_names_the_file(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not only the errors `datasets` happens to subclass from ValueError: whatever it raises names
    the file."""
    write_suite(
        project.root / "suites" / "qa", "name: qa\ncases: cases.json\nscorers: [contains]\n"
    )
    cases = project.root / "suites" / "qa" / "cases.json"
    cases.write_text('[{"id": "a", "prompt": "q", "reference": "r"},, {"id": "b"}]\n')
    path = project.config([PROMPT], [], [answer("r")])
    config = yaml.safe_load(path.read_text())
    config.update(
        suites=["suites/qa"],
        gates=[{"candidate": "bare", "suite": "qa", "metric": "contains", "min": 0.5}],
    )
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["check", str(path)]) == 2
    errors = error_lines(capsys.readouterr().err)
    assert any(f"error: {cases}: `datasets` cannot read it (" in e for e in errors), errors
    data = project.root / "train.json"
    data.write_text('[{"instruction": "hi", "output": "hello"},,]\n')
    with pytest.raises(ConfigError) as caught:
        load_examples(data)
    assert caught.value.file == str(data) and "could not be read as json" in caught.value.problem


# ---- run stores SQLite cannot use ---------------------------------------------------------------------------


@pytest.fixture
def stored(project: Project) -> tuple[Project, str]:
    """A project with one finished run in its store (and a judge check config for `harness judge
    calibrate`)."""
    project.suite(
        "qa", ["contains"], [{"id": "a", "prompt": "Capital of France?", "reference": "Paris"}]
    )
    project.config(
        [PROMPT],
        [{"candidate": "bare", "suite": "qa", "metric": "contains", "min": 0.5}],
        [answer("Paris")],
    )
    code, results = project.run()
    assert code == 0 and results is not None
    return project, results["run"]["id"]


COMMANDS = ["runs", "pin", "report", "diff", "judge check", "compare", "drift"]


def store_command(project: Project, run_id: str, command: str) -> list[str]:
    """The command line of `command` on the project's store."""
    store = ["--store", str(project.store)]
    config = str(project.root / "config.yaml")
    return {
        "runs": ["runs", *store],
        "pin": ["pin", run_id, "--as", "prod", *store],
        "report": ["report", run_id, *store],
        "diff": ["diff", run_id, run_id, *store],
        "judge check": ["judge", "check", "correctness", "--config", config, *store],
        "compare": ["compare", config],
        "drift": ["drift", config],
    }[command]


def drift_ready(project: Project) -> None:
    config = yaml.safe_load((project.root / "config.yaml").read_text())
    config["drift"] = {"baseline": "prod"}
    (project.root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def assert_store_error(code: int, err: str, store: Path, problem: str) -> None:
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: run store {store} ") and problem in lines[0], err
    assert "\n  fix: " in err and "Traceback" not in err


@pytest.mark.parametrize("command", COMMANDS)
def test_a_store_that_is_not_a_database_names_its_path_and_fix(
    stored: tuple[Project, str], command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project, run_id = stored
    drift_ready(project)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{project.store}{suffix}").unlink(missing_ok=True)
    project.store.write_text("these are my notes, not a database\n" * 200)
    code = main(store_command(project, run_id, command))
    assert_store_error(code, capsys.readouterr().err, project.store, "is not a run store")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_damaged_store_names_its_path_and_fix(
    stored: tuple[Project, str], command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project, run_id = stored
    drift_ready(project)
    data = project.store.read_bytes()
    assert not Path(f"{project.store}-wal").exists()  # checkpointed when the run closed it
    project.store.write_bytes(data[: len(data) // 2])
    code = main(store_command(project, run_id, command))
    assert_store_error(code, capsys.readouterr().err, project.store, "is damaged")


PR_CAPBSET_DROP = 24
# CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: what lets root write a file whose mode says
# read-only
FILE_MODE_OVERRIDES = (1, 2, 3)


def file_modes_apply() -> None:
    """In the child, before it runs the harness: as root, drop the capabilities that ignore file
    modes from the bounding set (the harness then runs as root without them), so a read-only file is
    read-only, as for a user.
    """
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in FILE_MODE_OVERRIDES:
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("command, folder_too", [("pin", False), ("pin", True), ("compare", False)])
def test_a_read_only_store_names_its_path_and_fix(
    stored: tuple[Project, str], command: str, folder_too: bool
) -> None:
    """A read-only store file (or its folder too: SQLite writes a -wal and a -shm file beside it)."""
    project, run_id = stored
    project.store.chmod(0o444)
    if folder_too:
        project.store.parent.chmod(0o555)
    try:
        result = harness_child(
            *store_command(project, run_id, command), cwd=project.root, prepare=file_modes_apply
        )
    # the child could not drop them: root writes whatever the modes say
    except subprocess.SubprocessError as exc:
        pytest.skip(
            "running as root without CAP_SETPCAP, file modes cannot make a file read-only here"
            f" ({exc})"
        )
    finally:
        project.store.parent.chmod(0o755)
        project.store.chmod(0o644)
    assert_store_error(result.returncode, result.stderr, project.store, "cannot be")
    assert "writable by this user" in result.stderr


@pytest.mark.parametrize("command", ["pin", "compare", "drift"])
def test_a_store_locked_past_the_timeout_names_its_path_and_fix(
    stored: tuple[Project, str],
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Another process holds the store's write lock past HARNESS_STORE_TIMEOUT (30 s unless set); a
    reader is not kept waiting by it (WAL), so `harness runs` still answers."""
    project, run_id = stored
    drift_ready(project)
    assert main(["pin", run_id, "--as", "prod", "--store", str(project.store)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("HARNESS_STORE_TIMEOUT", "0.1")
    holder = sqlite3.connect(project.store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code = main(store_command(project, run_id, command))
        err = capsys.readouterr().err
        assert main(["runs", "--store", str(project.store)]) == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_store_error(code, err, project.store, "is locked by another process")
    assert "stayed locked for 0.1s" in err and "HARNESS_STORE_TIMEOUT=SECONDS" in err


def test_a_lock_timeout_that_is_not_a_number_of_seconds_is_an_error(
    stored: tuple[Project, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project, _ = stored
    monkeypatch.setenv("HARNESS_STORE_TIMEOUT", "soon")
    assert main(["runs", "--store", str(project.store)]) == 2
    assert "HARNESS_STORE_TIMEOUT='soon' is not a number of seconds" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["a folder", "under a file"])
def test_a_store_path_that_is_a_folder_or_lies_under_a_file_names_it(
    stored: tuple[Project, str], case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project, _ = stored
    if case == "a folder":
        store, problem = project.root / "reports", "cannot be opened"
    else:
        store = project.root / "config.yaml" / "harness.sqlite"
        problem = f"cannot be made in {store.parent}"
    config = str(project.root / "config.yaml")
    code = main(["judge", "check", "correctness", "--config", config, "--store", str(store)])
    assert_store_error(code, capsys.readouterr().err, store, problem)
