"""Suites from the data users have: every format `datasets` reads, a save_to_disk folder, a column
mapping, split / sample / limit, and mapping errors that name the file, the column and the columns
that exist.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from datasets import Dataset, DatasetDict

from harness.core.errors import ConfigError
from harness.planning.suites import load_suite
from support.paths import REPO

ROWS = [
    {
        "qid": f"q{i}",
        "question": f"What is {i} + {i}?",
        "answer": 2 * i,
        "topic": "arithmetic",
        "source": "made up",
        "level": i % 3,
    }
    for i in range(12)
]
MC = [
    {"q": "Capital of France?", "options": ["Berlin", "Paris", "Rome"], "label": label}
    for label in (1, "B", "Paris")
]


def suite(folder: Path, cases: str, **extra: object) -> Path:
    path = folder / "suite.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "data", "cases": cases, "scorers": ["contains"], **extra}, sort_keys=False
        )
    )
    return path


MAPPING = {
    "id": "qid",
    "prompt": "question",
    "reference": "answer",
    "tags": "topic",
    "metadata": ["source", "level"],
}


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "json", "jsonl", "csv", "disk"])
def test_every_format_datasets_reads_becomes_the_same_cases(tmp_path: Path, fmt: str) -> None:
    table = Dataset.from_list(ROWS)
    target = tmp_path / (f"rows.{fmt}" if fmt != "disk" else "saved")
    if fmt == "parquet":
        table.to_parquet(str(target))
    elif fmt == "arrow":
        table.save_to_disk(str(tmp_path / "arrow-src"))
        target = next((tmp_path / "arrow-src").glob("*.arrow"))
    elif fmt == "json":
        target.write_text(json.dumps(ROWS))
    elif fmt == "jsonl":
        table.to_json(str(target), lines=True)
    elif fmt == "csv":
        table.to_csv(str(target), index=False)
    else:
        table.save_to_disk(str(target))
    loaded = load_suite(suite(tmp_path, str(target.relative_to(tmp_path)), columns=MAPPING))
    first = loaded.cases[0]
    assert (
        len(loaded.cases) == 12
        and first.id == "q0"
        and first.messages[0].content == "What is 0 + 0?"
    )
    assert first.reference == "0" and first.tags == ["arithmetic"]
    assert first.metadata["source"] == "made up" and int(first.metadata["level"]) == 0


def test_a_dataset_dict_needs_its_split_and_sample_and_limit_are_seeded(tmp_path: Path) -> None:
    DatasetDict(
        {"train": Dataset.from_list(ROWS[:4]), "test": Dataset.from_list(ROWS)}
    ).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ConfigError) as caught:
        load_suite(suite(tmp_path, "dd", columns=MAPPING))
    assert "holds splits train, test" in str(caught.value) and "set `split:`" in str(caught.value)
    sampled = load_suite(
        suite(tmp_path, "dd", columns=MAPPING, split="test", sample={"n": 5, "seed": 3})
    )
    again = load_suite(
        suite(tmp_path, "dd", columns=MAPPING, split="test", sample={"n": 5, "seed": 3})
    )
    other = load_suite(
        suite(tmp_path, "dd", columns=MAPPING, split="test", sample={"n": 5, "seed": 4})
    )
    ids = [c.id for c in sampled.cases]
    assert (
        len(ids) == 5 and ids == [c.id for c in again.cases] and ids != [c.id for c in other.cases]
    )
    assert ids == sorted(ids, key=lambda i: int(i[1:]))  # a subset, in the data's order
    limited = load_suite(suite(tmp_path, "dd", columns=MAPPING, split="test", limit=3))
    assert [c.id for c in limited.cases] == ["q0", "q1", "q2"]


def test_multiple_choice_answers_by_index_letter_or_text(tmp_path: Path) -> None:
    Dataset.from_list([{**r, "label": str(r["label"])} for r in MC]).to_parquet(
        str(tmp_path / "mc.parquet")
    )
    path = tmp_path / "suite.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "mc",
                "cases": "mc.parquet",
                "scorers": ["multiple_choice"],
                "columns": {"prompt": "q", "choices": "options", "answer_index": "label"},
            }
        )
    )
    loaded = load_suite(path)
    assert [c.answer_index for c in loaded.cases] == [1, 1, 1] and loaded.cases[
        0
    ].reference == "Paris"


def test_a_bad_mapping_names_the_file_the_column_and_the_columns_there(tmp_path: Path) -> None:
    Dataset.from_list(ROWS).to_parquet(str(tmp_path / "rows.parquet"))
    with pytest.raises(ConfigError) as caught:
        load_suite(suite(tmp_path, "rows.parquet", columns={**MAPPING, "reference": "answr"}))
    message = str(caught.value)
    assert (
        "suite.yaml:2: columns.reference" in message
        and "column 'answr' is not in rows.parquet" in message
    )
    assert "qid, question, answer, topic, source, level" in message
    with pytest.raises(ConfigError, match="map exactly one of prompt, messages or text"):
        load_suite(suite(tmp_path, "rows.parquet", columns={"id": "qid", "reference": "answer"}))


def test_the_native_jsonl_and_harmbench_csv_formats_still_load_and_limit_applies(
    tmp_path: Path,
) -> None:
    (tmp_path / "cases.jsonl").write_text(
        "".join(
            json.dumps({"id": r["qid"], "prompt": r["question"], "reference": str(r["answer"])})
            + "\n"
            for r in ROWS
        )
    )
    assert len(load_suite(suite(tmp_path, "cases.jsonl", limit=4)).cases) == 4
    builtin = REPO / "suites" / "safety" / "suite.yaml"
    assert load_suite(builtin).cases[0].metadata["behavior"]


def test_changing_the_data_changes_the_suite_hash(tmp_path: Path) -> None:
    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    before = load_suite(suite(tmp_path, "saved", columns=MAPPING)).content_hash
    Dataset.from_list(ROWS[:6]).save_to_disk(str(tmp_path / "saved"))
    assert load_suite(suite(tmp_path, "saved", columns=MAPPING)).content_hash != before
