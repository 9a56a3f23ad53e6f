"""The docs beside the code stay true: the MkDocs site builds strictly (a broken link, a missing
anchor or a page left out of the nav fails it), README's links reach files, and every config example
in README.md and docs/ passes `harness check` as a reader would save it.

Each fenced YAML block says what it is on its first line, so that no config example escapes the
check: `# config: PATH` (a whole config, checked at PATH of a copy of the repository's configs/,
suites/ and judges/), `# suite.yaml ...` or `# fragment ...` (part of another file, read by the
page's prose)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from support.paths import REPO

ROOT = REPO
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```yaml\n(.*?)^\1```", re.M | re.S)
MARKS = ("# config: ", "# suite.yaml", "# fragment")


def yaml_blocks() -> list[tuple[str, str]]:
    """(page:line, text) of every fenced YAML block in README.md and docs/, its indentation taken
    off."""
    blocks = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            indent = len(match.group(1))
            body = "".join(line[indent:] for line in match.group(2).splitlines(keepends=True))
            blocks.append(
                (f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}", body)
            )
    return blocks


CONFIGS = [(where, body) for where, body in yaml_blocks() if body.startswith(MARKS[0])]


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of the site `config` describes, as the docs' readers and CI build it."""
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",
    }  # a banner about MkDocs 2, not about these docs
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_site_builds_strictly_and_fetches_nothing(tmp_path: Path) -> None:
    result = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    pages = {p.name for p in (tmp_path / "site").glob("*.html")}
    assert {p.with_suffix(".html").name for p in PAGES[1:]} <= pages
    html = "".join(p.read_text() for p in (tmp_path / "site").glob("*.html"))
    assert (
        "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html
    )  # `theme: font: false`


@pytest.mark.parametrize(
    "broken", ["[a page](no-such-page.md)", "[an anchor](configs.md#no-such-heading)"]
)
def test_a_broken_link_fails_the_build(tmp_path: Path, broken: str) -> None:
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    with (tmp_path / "docs" / "index.md").open("a") as index:
        index.write(f"\nSee {broken}.\n")
    result = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0 and broken.split("(")[1].rstrip(")") in result.stderr, (
        result.stderr
    )


def test_every_relative_link_of_the_readme_reaches_a_file() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    local = [t for t in targets if "://" not in t]
    assert local and [t for t in local if not (ROOT / t).exists()] == []


def test_every_yaml_example_says_what_it_is() -> None:
    blocks = yaml_blocks()
    assert len(blocks) >= 6 and len(CONFIGS) >= 2
    unmarked = [where for where, body in blocks if not body.startswith(MARKS)]
    assert unmarked == [], "start each with one of " + ", ".join(MARKS)
    hidden = [
        where for where, body in blocks if "\ncandidates:" in body and not body.startswith(MARKS[0])
    ]
    assert hidden == [], "a block with `candidates:` is a config: mark it `# config: PATH`"


@pytest.mark.parametrize(("where", "body"), CONFIGS, ids=[where for where, _ in CONFIGS])
def test_a_config_example_passes_harness_check(
    where: str,
    body: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for folder in ("configs", "suites", "judges"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    path = tmp_path / body.splitlines()[0].removeprefix(MARKS[0]).split()[0]
    path.write_text(body)
    for name in re.findall(r"api_key_env: (\w+)", body):  # the keys a reader exports before a run
        monkeypatch.setenv(name, "example-key")
    assert main(["check", str(path)]) == 0, f"{where}: {capsys.readouterr().err}"
    assert "ok: " in capsys.readouterr().out
