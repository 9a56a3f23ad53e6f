"""User files read as text: UTF-8, or an error naming the file, the line and the byte; a CSV whose
rows are no wider than its header, or an error at the row. Configs, suites, cases, rubrics,
calibration sets, training data and documents are read through here, so a file saved as Latin-1 or a
CSV with an unquoted comma names its place and the fix instead of surfacing as a bare
UnicodeDecodeError or a library's DatasetGenerationError. Files the harness writes for others to
read (reports, a cached model's json files) are written whole or not at all (write_atomic)."""

from __future__ import annotations

import csv
import io
import os
import secrets
from pathlib import Path

from harness.core.errors import ConfigError

UTF8_FIX = "save the file as UTF-8 (in an editor: save with the encoding UTF-8)"
CSV_FIX = 'quote a field that holds a comma ("a, b"), or remove the extra fields from the row'


def read_text(path: Path, limit: int | None = None, too_big: str = "") -> str:
    """The file's text; a ConfigError naming it when it cannot be read or is not UTF-8."""
    return decode(read_bytes(path, limit, too_big), str(path))


def read_bytes(path: Path, limit: int | None = None, too_big: str = "") -> bytes:
    """The file's bytes, at most `limit` of them (else a ConfigError with the fix `too_big`): read
    up to the limit, never past it, so a device file or a file still growing cannot fill the memory.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read() if limit is None else handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(
            str(path),
            "",
            f"cannot be read ({exc.strerror or exc})",
            "check that the path is a file this user may read",
        ) from None
    if limit is not None and len(data) > limit:
        raise ConfigError(
            str(path), "", f"larger than the {limit:,} bytes such a file may have", too_big
        )
    return data


def decode(data: bytes, name: str) -> str:
    """`data` as text; a ConfigError at the line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, _ = _line_and_column(data, exc.start)
        raise ConfigError(
            f"{name}:{line}", "", f"not UTF-8 text ({_utf8_place(data, exc)})", UTF8_FIX
        ) from None


def _utf8_place(data: bytes, exc: UnicodeDecodeError) -> str:
    """Where decoding stopped, in words a user can find in a hex editor or `grep -nP
    '[^\\x00-\\x7F]'`."""
    line, column = _line_and_column(data, exc.start)
    return (
        f"byte 0x{data[exc.start]:02x} at byte offset {exc.start}, line {line} column {column}:"
        f" {exc.reason}"
    )


def _line_and_column(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and byte column of a byte offset."""
    return data.count(b"\n", 0, offset) + 1, offset - (data.rfind(b"\n", 0, offset) + 1) + 1


def csv_text(path: Path) -> str:
    """A CSV's text, checked: UTF-8, and no row wider than the header (pandas and `datasets` refuse
    such a row with a message that names neither the file nor, through `datasets`, the line)."""
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((row for row in reader if row), [])  # pandas skips blank lines before it too
        start = reader.line_num + 1
        for row in reader:
            if len(row) > len(header):
                columns = ", ".join(header)
                raise ConfigError(
                    f"{path}:{start}",
                    "",
                    f"this row has {len(row)} fields, the header {len(header)} "
                    f"({columns if len(columns) < 200 else columns[:200] + '...'})",
                    CSV_FIX,
                )
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ConfigError(
            f"{path}:{reader.line_num}",
            "",
            f"not a readable CSV ({exc})",
            "save it as a plain comma-separated CSV with a header row",
        ) from None
    return text


def check_text(path: Path) -> None:
    """A text file (CSV, JSON, JSON Lines) is UTF-8 and a CSV has no row wider than its header,
    checked before a library reads it: the error names the line, which `datasets` does not."""
    suffix = path.suffix.lower()
    if suffix == ".csv" and path.is_file():
        csv_text(path)
    elif suffix in (".json", ".jsonl") and path.is_file():
        read_text(path)


def cause(exc: BaseException) -> str:
    """The innermost cause of a library's error, on one line: `datasets` wraps the error that says
    what is wrong (pandas' ParserError, a JSON error) in a DatasetGenerationError that does not."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None or id(inner) in seen:
            break
        exc = inner
        seen.add(id(exc))
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def write_atomic(path: Path, text: str, scratch: Path | None = None) -> None:
    """`text` in `path`, whole or not at all: a new temporary file in the same folder (a rename is
    atomic only within one file system; its mode follows the umask, as a plain write's would),
    flushed to disk, then renamed over `path`; on any failure it is removed. `scratch`: a folder on
    the same file system for the temporary instead, where the folder's own listing must never show
    it (a model folder is fingerprinted by its files).
    """
    temporary = (scratch or path.parent) / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
