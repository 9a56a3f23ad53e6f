"""YAML loading that remembers where each key sits, so validation errors can name the line."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any, Iterator

import yaml
from pydantic import BaseModel, ValidationError

from harness.core.errors import ConfigError
from harness.core.textfiles import read_text

# A config, suite or rubric is kilobytes. A hostile or broken one is refused before anything walks
# it: an alias bomb (nine anchors, each a list of nine aliases of the one before) expands a few
# hundred bytes into 9^9 values, and every step after the parse (pydantic, JSON Schema checks,
# hashing) would take gigabytes over them.
MAX_YAML_BYTES = 4 * 1024 * 1024
# Aliases may grow a document to MAX_EXPANSION times its own size, or to MIN_EXPANSION_BUDGET,
# whichever is larger; a size counts each value once and each character of text once, aliases
# expanded.
MAX_EXPANSION = 10
MIN_EXPANSION_BUDGET = 1_000_000
MAX_DEPTH = 100  # levels of nesting, aliases expanded (recursive readers and checks run out of stack far past it)
_HUGE = 1 << 62  # sizes are capped here: far past any limit, and the sums stay machine-sized
_SPECIAL = {
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "named pipe",
    stat.S_IFSOCK: "socket",
}
_TOO_BIG = (
    "keep cases and data in their own files (JSONL, CSV, Parquet), which have no such limit; "
    "a config, suite or rubric needs a few kilobytes"
)


class _Reader(yaml.SafeLoader):
    """The safe loader, reading a number with an exponent (`1e-4`, `2.5e3`) as the number: YAML 1.1,
    which PyYAML reads, takes one only with a dot and a signed exponent (`1.0e-4`), and reads `lr:
    1e-4` as the string "1e-4". Every value keeps its own type (core.strict), so that string would
    be refused where a number belongs.
    """


_Reader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


class _Loader(_Reader):
    """The reader, remembering where each alias is and the node it stands for."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases: list[tuple[yaml.Mark, str, yaml.Node]] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        node = super().compose_node(parent, index)
        if isinstance(event, yaml.AliasEvent):
            self.aliases.append((event.start_mark, event.anchor, node))
        return node


def load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The parsed document and its node tree (for line numbers). Every YAML file the harness reads
    comes through here, so every one has the same limits: its size, its aliases' expansion and its
    depth.
    """
    _check_regular(path)
    text = read_text(path, limit=MAX_YAML_BYTES, too_big=_TOO_BIG)
    try:
        node = _compose(text, path)
        data = yaml.load(
            text, Loader=_Reader
        )  # parsed again: constructing from `node` would rewrite its merge keys
    except yaml.reader.ReaderError as exc:  # it has a position, not a mark
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            f"{path}:{line}",
            "",
            f"not valid YAML (control character #x{exc.character:02x})",
            "remove it: YAML allows no control characters but tab and line breaks",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(
            where,
            "",
            f"not valid YAML ({getattr(exc, 'problem', exc)})",
            "fix the YAML syntax at that line",
        ) from None
    return data, node


def _check_regular(path: Path) -> None:
    """A ConfigError unless `path` is a regular file, told before it is opened: a folder cannot be
    read, and a device or a pipe is no file of settings (/dev/zero never ends, opening a named pipe
    waits for a writer).
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(
            str(path),
            "",
            "file not found",
            "check the path (relative paths start at the file that names them)",
        ) from None
    except OSError as exc:
        raise ConfigError(
            str(path),
            "",
            f"cannot be read ({exc.strerror or exc})",
            "check that the path is a file this user may read",
        ) from None
    if stat.S_ISDIR(mode):
        raise ConfigError(
            str(path), "", "is a folder, not a file", "name the YAML file itself, not its folder"
        )
    if not stat.S_ISREG(mode):
        kind = _SPECIAL.get(stat.S_IFMT(mode), "special file")
        raise ConfigError(
            str(path), "", f"is not a regular file (a {kind})", "name a YAML file saved on disk"
        )


def _compose(text: str, path: Path) -> yaml.Node | None:
    """The node graph (an anchored node once, however many aliases name it), checked against the
    limits before any Python object is built from it."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except RecursionError:
        raise ConfigError(
            f"{path}:{loader.get_mark().line + 1}",
            "",
            "nested too deeply to read",
            f"flatten the structure (at most {MAX_DEPTH} levels)",
        ) from None
    finally:
        loader.dispose()
    if node is not None:
        _check_expansion(node, loader.aliases, path)
    return node


def _check_expansion(
    root: yaml.Node, aliases: list[tuple[yaml.Mark, str, yaml.Node]], path: Path
) -> None:
    """A ConfigError at the alias that copies the most when the expanded document is past the limit,
    at the first too deep value when it nests past MAX_DEPTH, at an alias inside its own anchor."""
    sizes, heights, own = _measure(root, aliases, path)
    limit = max(MIN_EXPANSION_BUDGET, MAX_EXPANSION * own)
    if sizes[id(root)] > limit:
        mark, anchor, node = max(aliases, key=lambda alias: sizes[id(alias[2])])
        total = f"over {_HUGE:,}" if sizes[id(root)] >= _HUGE else f"{sizes[id(root)]:,}"
        raise ConfigError(
            f"{path}:{mark.line + 1}",
            "",
            f"YAML aliases expand the document to {total} values and characters, past the limit of"
            f" {limit:,} ({MAX_EXPANSION}x the {own:,} of the file itself, at least"
            f" {MIN_EXPANSION_BUDGET:,}); each *{anchor} here copies {sizes[id(node)]:,} (an alias"
            " bomb?)",
            f"write the values out instead of aliasing them: each *{anchor} copies everything "
            f"under &{anchor}",
        )
    if heights[id(root)] > MAX_DEPTH:
        node = root
        for _ in range(MAX_DEPTH):
            node = max(_children(node), key=lambda child: heights[id(child)])
        raise ConfigError(
            f"{path}:{node.start_mark.line + 1}",
            "",
            f"nested {heights[id(root)]} levels deep (aliases expanded), past the limit of"
            f" {MAX_DEPTH}",
            "flatten the structure",
        )


def _measure(
    root: yaml.Node, aliases: list[tuple[yaml.Mark, str, yaml.Node]], path: Path
) -> tuple[dict[int, int], dict[int, int], int]:
    """(size, height) per node with aliases expanded, and the document's own size (each node once):
    one walk over the graph, each node measured once, without recursion (a document may nest deeper
    than the stack).
    """
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    own = 0
    open_nodes: set[int] = (
        set()
    )  # the nodes whose children are being measured: the path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, measured = stack.pop()
        children = _children(node)
        if measured:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(_HUGE, _weight(node) + sum(sizes[id(c)] for c in children))
            heights[id(node)] = 1 + max((heights[id(c)] for c in children), default=0)
        elif id(node) in open_nodes:  # everything above an open node on the stack lies under it
            mark, anchor, _ = next(alias for alias in aliases if alias[2] is node)
            raise ConfigError(
                f"{path}:{mark.line + 1}",
                "",
                f"the alias *{anchor} stands inside its own anchor "
                f"&{anchor}, so the document never ends",
                f"remove the alias, or move it out of what &{anchor} anchors",
            )
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            own += _weight(node)
            stack.append((node, True))
            stack.extend((child, False) for child in children)
    return sizes, heights, own


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _weight(node: yaml.Node) -> int:
    """A value counts once, and its text once per character."""
    return 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)


def jsonl_records(lines: list[str], path: Path, shape: str) -> Iterator[tuple[str, Any]]:
    """(file:line, parsed object) per non-blank JSONL line; a bad line is a ConfigError naming it."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                where, "", f"not valid JSON ({exc.msg} at column {exc.colno})", shape
            ) from None


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node along a pydantic error location."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            key_node = next((k for k, _ in node.value if k.value == part), None)
            if match is None:
                return line
            line, node = key_node.start_mark.line + 1, match
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_FIXES = {
    "extra_forbidden": "remove this key or fix its spelling",
    "missing": "add this key",
    "literal_error": "use one of the allowed values",
    "union_tag_invalid": "use one of the allowed values",
    "finite_number": "use a finite number (.nan and .inf are not values a run can use)",
    "int_type": "write a whole number, without quotes (true and false are not numbers)",
    "float_type": "write a number, without quotes (true and false are not numbers)",
    "bool_type": "write true or false, without quotes",
    "string_type": 'write text (quote it if YAML reads it as something else: "1.0", "yes")',
}


def validate(
    model: type[BaseModel],
    data: Any,
    path: Path,
    node: yaml.Node | None,
    context: dict | None = None,
    loc_prefix: tuple[Any, ...] = (),
    line_offset: int | None = None,
) -> Any:
    """Validate with pydantic; the first error becomes a ConfigError naming file:line, key and fix."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_errors(model, exc, path, node, loc_prefix, line_offset)[0] from None


def validation_errors(
    model: type[BaseModel],
    exc: ValidationError,
    path: Path,
    node: yaml.Node | None,
    loc_prefix: tuple[Any, ...] = (),
    line_offset: int | None = None,
) -> list[ConfigError]:
    """Every error pydantic found, each a ConfigError naming file:line, key and fix (`harness check`
    lists them all; a run stops at the first)."""
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc += (str(err["ctx"]["discriminator"]).strip("'"),)
        loc, owner = _walk(model, loc)
        line = line_offset if line_offset is not None else line_of(node, loc)
        where = f"{path}:{line}" if line else str(path)
        allowed = ""
        if err["type"] == "extra_forbidden" and owner is not None:
            allowed = f"; allowed keys: {', '.join(owner.model_fields)}"
            if (elsewhere := getattr(owner, "elsewhere", None)) and (taken := elsewhere(loc[-1])):
                allowed = (  # a key of a sibling model (another engine's), named as such
                    f"; {taken}{allowed}"
                )
        fix = (
            err.get("ctx", {}).get("fix") or _FIXES.get(err["type"], "correct the value") + allowed
        )
        msg = err["msg"].removeprefix("Value error, ") + _given(err)
        out.append(ConfigError(where, key_path(loc_prefix + loc) or "(top level)", msg, fix))
    return out


def _given(err: Any) -> str:
    """What was given instead, for an error of a value's type (strict: "20" is no number, nor true):
    `, not "20"`."""
    if err["type"] not in ("int_type", "float_type", "bool_type", "string_type"):
        return ""
    given = json.dumps(err["input"], default=str)
    return f", not {given if len(given) <= 60 else given[:57] + '...'}"


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """Drop union tags pydantic puts into locations (candidates.0.prompt.system ->
    candidates.0.system; a member's own check, candidates.0.lora -> candidates.0) and return the
    model that owns the last key, so an unknown key can list the allowed ones."""
    out: list[Any] = []
    current: Any = model
    owner: Any = model
    for i, part in enumerate(loc):
        fields = _fields(current)
        if (
            isinstance(part, str)
            and part not in fields
            and (i < len(loc) - 1 or _member_for_tag(current, part) is not current)
        ):
            current = _member_for_tag(current, part)
            continue
        out.append(part)
        owner = current
        if isinstance(part, str) and part in fields:
            current = fields[part].annotation
    owners = _models_in(owner)
    return tuple(out), owners[0] if owners else None


def _fields(annotation: Any) -> dict[str, Any]:
    """The fields of the one model an annotation holds (`TrainSettings | None`, `list[Gate]`), so
    that a key of it is kept even where it is also a union's tag (a lora candidate's `train.lora`);
    none where it holds several (a tagged union, whose tag _member_for_tag reads)."""
    models = _models_in(annotation)
    return models[0].model_fields if len(models) == 1 else {}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) or () for m in _models_in(arg)]


def _member_for_tag(annotation: Any, tag: str) -> Any:
    for member in _models_in(annotation):
        kind = member.model_fields.get("kind")
        kinds = getattr(kind.annotation, "__args__", ()) if kind else ()
        if tag == member.__name__ or tag in kinds:
            return member
    return annotation
