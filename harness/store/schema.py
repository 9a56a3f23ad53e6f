"""The store's tables, defined once (SQLAlchemy Core) for every engine, and the schema version they
make.

Version 1 is every store written before the store was versioned (SQLite only, no `store_info`);
version 2 adds `store_info`, which records the version, so a newer harness upgrades a store in place
and an older one refuses it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Column, Double, Integer, MetaData, Table, Text
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 2
VERSION_KEY = "schema_version"
# A text holding NUL (model outputs are untrusted; PostgreSQL's text refuses NUL) is kept as this
# marker plus its JSON, and so is a text that starts with the marker: every text reads back as
# written, on either engine.
ENCODED = "\x01harness-json:"


class Words(TypeDecorator[str]):
    """Text that round-trips any Python string, NUL included, on SQLite and PostgreSQL alike."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is not None and ("\x00" in value or value.startswith(ENCODED)):
            return ENCODED + json.dumps(value)
        return value

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is not None and value.startswith(ENCODED):
            return json.loads(value[len(ENCODED) :])
        return value


def _text(name: str, key: bool = False) -> Column[str]:
    return Column(name, Words(), primary_key=key)


metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    _text("run_id", key=True),
    *map(
        _text,
        (
            "name",
            "kind",
            "created_at",
            "finished_at",
            "status",
            "config_hash",
            "config_json",
            "meta_json",
            "verdict_json",
            "against",
            "reason",
        ),
    ),
)
pins = Table(
    "pins",
    metadata,
    _text("name", key=True),
    Column("run_id", Words(), nullable=False),
    _text("created_at"),
)
artifacts = Table(
    "artifacts",
    metadata,
    *(_text(n, key=True) for n in ("run_id", "candidate", "kind")),
    _text("json"),
)
cases = Table(
    "cases",
    metadata,
    *(_text(n, key=True) for n in ("run_id", "suite", "case_id")),
    *map(_text, ("input_json", "reference", "tags_json", "metadata_json")),
)
responses = Table(
    "responses",
    metadata,
    *(_text(n, key=True) for n in ("run_id", "candidate", "suite", "case_id")),
    _text("request_json"),
    _text("output"),
    _text("error"),
    Column("latency_s", Double),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    _text("finish_reason"),
    Column("cached", Integer),
    _text("created_at"),
    _text("context_json"),
    _text("logliks_json"),
)
scores = Table(
    "scores",
    metadata,
    *(_text(n, key=True) for n in ("run_id", "candidate", "suite", "case_id", "metric")),
    Column("value", Double),
    Column("passed", Integer),
    _text("detail"),
    _text("meta_json"),
)
timings = Table(
    "timings",
    metadata,
    *(_text(n, key=True) for n in ("run_id", "stage", "subject")),
    Column("seconds", Double),
)
cache = Table(
    "cache",
    metadata,
    _text("key", key=True),
    _text("model_fingerprint"),
    _text("completion_json"),
    _text("created_at"),
)
judge_checks = Table(
    "judge_checks",
    metadata,
    _text("key", key=True),
    _text("rubric"),
    _text("judge"),
    _text("result_json"),
    _text("created_at"),
)
store_info = Table("store_info", metadata, _text("key", key=True), _text("value"))

# What `harness store copy` moves, parents first; store_info belongs to each store.
DATA = (runs, pins, artifacts, cases, responses, scores, timings, cache, judge_checks)
# Columns that stores made before them lack; a version-1 store may be older than any of them.
ADDED_IN_V1 = (("responses", "logliks_json"), ("scores", "meta_json"), ("runs", "reason"))
