"""Reading a document set: a folder of .md/.txt/.html/.pdf files, or one .jsonl of {id, text,
metadata}.

Files are read as bytes once: the bytes feed the index's cache key, and are parsed only when the
index has to be built. A file that cannot be read or parsed is skipped and reported, never fatal;
an input with nothing usable left is a config error.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, ValidationError

from harness.core.errors import ConfigError
from harness.core.strict import Strict
from harness.core.textfiles import decode
from harness.core.yamlfile import key_path

JSONL_SHAPE = 'one JSON object per line: {"id": "...", "text": "...", "metadata": {...}}'


@dataclass(frozen=True)
class Source:
    """One input file's bytes (None when it could not be read, with the reason)."""

    name: str
    data: bytes | None
    error: str = ""


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


class JsonlDocument(Strict):
    id: str = Field(min_length=1)
    text: str
    metadata: dict[str, Any] = {}


def _text(data: bytes) -> str:
    return data.decode("utf-8-sig")


def _tidy(text: str) -> str:
    """Extracted HTML/PDF text carries runs of blank lines and trailing blanks that only waste
    tokens."""
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+\n", "\n", text)).strip()


def _html(data: bytes) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    return _tidy(soup.get_text("\n"))


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return _tidy("\n\n".join(page.extract_text() or "" for page in reader.pages))


PARSERS: dict[str, Callable[[bytes], str]] = {
    ".md": _text,
    ".markdown": _text,
    ".txt": _text,
    ".html": _html,
    ".htm": _html,
    ".pdf": _pdf,
}


def read_sources(path: Path) -> list[Source]:
    """The bytes behind `documents:`: every non-hidden file of a folder (sorted), or the one .jsonl."""
    if path.is_file() and path.suffix == ".jsonl":
        return [Source(path.name, path.read_bytes())]
    if not path.is_dir():
        problem = "not found" if not path.exists() else "is neither a folder nor a .jsonl file"
        raise ConfigError(
            str(path),
            "documents",
            problem,
            "point `documents:` at a folder of .md/.txt/.html/.pdf files or a .jsonl file "
            "(relative paths start at the config's folder)",
        )
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not files:
        raise ConfigError(
            str(path),
            "documents",
            "the folder has no files",
            f"add {', '.join(sorted(PARSERS))} files, or point `documents:` elsewhere",
        )
    sources = []
    for file in files:
        name = file.relative_to(path).as_posix()
        try:
            sources.append(Source(name, file.read_bytes()))
        except OSError as exc:
            sources.append(Source(name, None, exc.strerror or str(exc)))
    return sources


def parse_sources(path: Path, sources: list[Source]) -> tuple[list[Document], list[Skipped]]:
    """Documents (id = path relative to the folder, or the JSONL `id`) and the inputs skipped, with
    why."""
    if path.suffix == ".jsonl" and not path.is_dir():
        documents, skipped = _parse_jsonl(path, sources[0].data or b"")
    else:
        documents, skipped = _parse_files(sources)
    if not documents:
        raise ConfigError(
            str(path),
            "documents",
            f"no usable documents: {describe_skipped(skipped, len(skipped))}",
            f"give documents with text ({', '.join(sorted(PARSERS))}, or a .jsonl)",
        )
    return documents, skipped


def describe_skipped(skipped: list[Skipped], total: int, shown: int = 3) -> str:
    """'skipped 2 of 9: a.pdf (PdfReadError: ...), b.txt (not UTF-8)' with at most `shown` names."""
    names = ", ".join(f"{s.name} ({s.reason})" for s in skipped[:shown])
    more = f" and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return f"skipped {len(skipped)} of {total}: {names}{more}"


def _parse_files(sources: list[Source]) -> tuple[list[Document], list[Skipped]]:
    documents: list[Document] = []
    skipped: list[Skipped] = []
    for source in sources:
        suffix = Path(source.name).suffix.lower()
        parser = PARSERS.get(suffix)
        if parser is None:
            skipped.append(Skipped(source.name, f"unsupported type {suffix or '(no suffix)'}"))
            continue
        if source.data is None:
            skipped.append(Skipped(source.name, f"unreadable: {source.error}"))
            continue
        try:
            text = parser(source.data)
        except UnicodeDecodeError:
            skipped.append(Skipped(source.name, "not UTF-8 text"))
            continue
        except Exception as exc:  # noqa: BLE001 - pypdf and bs4 raise many types on damaged files; skip, never abort
            skipped.append(Skipped(source.name, f"{type(exc).__name__}: {str(exc)[:80]}"))
            continue
        if not text.strip():
            skipped.append(
                Skipped(source.name, "no text (a scanned PDF?)" if suffix == ".pdf" else "empty")
            )
            continue
        documents.append(Document(source.name, text))
    return documents, skipped


def _parse_jsonl(path: Path, data: bytes) -> tuple[list[Document], list[Skipped]]:
    # UTF-8, then a byte order mark dropped: the offset of a bad byte counts the mark, as a hex
    # editor does
    lines = decode(data, str(path)).removeprefix("\ufeff").splitlines()
    documents: list[Document] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                where, "", f"not valid JSON ({exc.msg} at column {exc.colno})", JSONL_SHAPE
            ) from None
        try:
            record = JsonlDocument.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(
                where, key_path(err["loc"]) or "(document)", err["msg"], JSONL_SHAPE
            ) from None
        if record.id in seen:
            raise ConfigError(
                where,
                "id",
                f"document id {record.id!r} repeats",
                "give every document a unique `id`",
            )
        seen.add(record.id)
        if record.text.strip():
            documents.append(Document(record.id, record.text, record.metadata))
        else:
            skipped.append(Skipped(record.id, "empty"))
    if not documents and not skipped:
        raise ConfigError(str(path), "documents", "no documents (the file is empty)", JSONL_SHAPE)
    return documents, skipped
