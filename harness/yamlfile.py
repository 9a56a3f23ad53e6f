"""YAML loading that remembers where each key sits, so validation errors can name the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import ConfigError


def load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The parsed document and its node tree (for line numbers)."""
    if not path.exists():
        raise ConfigError(str(path), "", "file not found",
                          "check the path (relative paths start at the file that names them)")
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(where, "", f"not valid YAML ({getattr(exc, 'problem', exc)})",
                          "fix the YAML syntax at that line") from None
    return data, node


def jsonl_records(lines: list[str], path: Path, shape: str) -> Iterator[tuple[str, Any]]:
    """(file:line, parsed object) per non-blank JSONL line; a bad line is a ConfigError naming it."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(where, "", f"not valid JSON ({exc.msg} at column {exc.colno})", shape) from None


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
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
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
}


def validate(model: type[BaseModel], data: Any, path: Path, node: yaml.Node | None, context: dict | None = None,
             loc_prefix: tuple[Any, ...] = (), line_offset: int | None = None) -> Any:
    """Validate with pydantic; the first error becomes a ConfigError naming file:line, key and fix."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_errors(model, exc, path, node, loc_prefix, line_offset)[0] from None


def validation_errors(model: type[BaseModel], exc: ValidationError, path: Path, node: yaml.Node | None,
                      loc_prefix: tuple[Any, ...] = (), line_offset: int | None = None) -> list[ConfigError]:
    """Every error pydantic found, each a ConfigError naming file:line, key and fix (`harness check` lists them
    all; a run stops at the first)."""
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
        fix = err.get("ctx", {}).get("fix") or _FIXES.get(err["type"], "correct the value") + allowed
        msg = err["msg"].removeprefix("Value error, ")
        out.append(ConfigError(where, key_path(loc_prefix + loc) or "(top level)", msg, fix))
    return out


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """Drop union tags pydantic puts into locations (candidates.0.prompt.system -> candidates.0.system)
    and return the model that owns the last key, so an unknown key can list the allowed ones."""
    out: list[Any] = []
    current: Any = model
    owner: Any = model
    for i, part in enumerate(loc):
        fields = getattr(current, "model_fields", None) or {}
        if isinstance(part, str) and part not in fields and i < len(loc) - 1:
            current = _member_for_tag(current, part)
            continue
        out.append(part)
        owner = current
        if isinstance(part, str) and part in fields:
            current = fields[part].annotation
    owners = _models_in(owner)
    return tuple(out), owners[0] if owners else None


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
