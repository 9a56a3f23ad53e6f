"""The run store: every row lands as it is made, and the response cache and the judge checks live
beside it.

Reports are rendered from here alone, so any stored run can be re-rendered or compared later, on any
machine that reaches the store. One Store holds one connection, used from the thread that opened it.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any, Hashable, Iterator

import pandas as pd
from sqlalchemy import Table, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from harness.core.errors import HarnessError
from harness.core.request import Completion
from harness.store.backends import backend_for, lock_timeout, transaction, upsert_statement
from harness.store.location import Location, sqlite_file
from harness.store.meta import MetaKey
from harness.store.names import checked
from harness.store.schema import (
    DATA,
    SCHEMA_VERSION,
    artifacts,
    cache,
    cases,
    judge_checks,
    pins,
    responses,
    runs,
    scores,
    store_info,
    timings,
)
from harness.store.upgrade import no_store, upgrade

TABLES = {
    t.name: t for t in (cases, responses, scores, timings)
}  # the per-run tables `table()` reads
# Built once: a run looks up every answer in the cache, and building a statement costs 5x running
# it.
CACHED = select(cache.c.completion_json).where(cache.c.key == bindparam("key"))
CHECKED = select(judge_checks.c.result_json).where(judge_checks.c.key == bindparam("key"))


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def explain(
    exc: DBAPIError, location: Location, timeout: float, during: str = "", then: str = ""
) -> HarnessError:
    """A driver error as one line naming the store (never its password), what is wrong and what was
    going on (`during`), then the fix, and what to do once it is fixed (`then`)."""
    problem, fix = backend_for(location).explain(exc.orig, location, timeout)
    return HarnessError(f"{problem}{during}\n  fix: {fix}{then}")


def identity(location: Location, timeout: float) -> Hashable:
    """Which store `location` names, however it is spelled (see Backend.identity), read without
    making or writing it."""
    backend = backend_for(location)
    engine = backend.connect(location, timeout, True)
    try:
        return backend.identity(location, engine)
    except DBAPIError as exc:
        raise explain(exc, location, timeout) from None
    finally:
        engine.dispose()


class Store:
    def __init__(
        self, where: Location | Path, timeout: float | None = None, read_only: bool = False
    ) -> None:
        """`where`: a Location, or a SQLite file's path. `timeout`: seconds to wait for a store
        another process holds locked (default: lock_timeout()). `read_only`: for a command that only
        reads: the database keeps the connection from writing, and a store that is not there is not
        made, nor an older one upgraded (see upgrade). Any driver error, here or inside `with
        Store(...)`, is a HarnessError naming the store (never its password) and the fix."""
        self.location = where if isinstance(where, Location) else sqlite_file(Path(where))
        self.timeout = lock_timeout() if timeout is None else timeout
        self.backend = backend_for(self.location)
        self.upsert = {t.name: upsert_statement(self.backend, t) for t in (*DATA, store_info)}
        self._in_transaction = False
        path = self.location.path
        if path is not None and read_only and not path.exists():
            raise no_store(self.where, "no such file")
        if path is not None and not read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HarnessError(
                    f"run store {path} cannot be made in {path.parent} ({exc.strerror or exc})\n"
                    "  fix: pass --store (or output_dir) a path in a folder this user can write "
                    f"({path.parent} must be a folder, or be one that can be made)"
                ) from None
        self.engine = self.backend.connect(self.location, self.timeout, read_only)
        with self.explained():
            self.conn: Connection = self.engine.connect()
            try:
                self.upgraded_from = upgrade(
                    self.conn, self.backend, self.where, writable=not read_only
                )
            except BaseException:
                self.close()
                raise
        # The schema the store now has: this harness's, or an older one that a read-only open reads
        # as it is.
        self.version = self.upgraded_from if read_only else SCHEMA_VERSION

    @property
    def where(self) -> str:
        """The store as every message names it: a path, or its URL without the password."""
        return self.location.shown

    @property
    def folder(self) -> Path:
        """Where files that belong beside the store go (re-rendered reports, judge checks)."""
        return self.location.folder

    def identity(self) -> Hashable:
        """Which store this is, however its name is spelled (see Backend.identity)."""
        return identity(self.location, self.timeout)

    def explain(self, exc: DBAPIError, during: str = "", then: str = "") -> HarnessError:
        return explain(exc, self.location, self.timeout, during, then)

    @contextmanager
    def explained(self) -> Iterator[None]:
        """A driver error inside is this store's, explained (see `explain`)."""
        try:
            yield
        except DBAPIError as exc:
            raise self.explain(exc) from None

    @contextmanager
    def transaction(self, snapshot: bool = False) -> Iterator[None]:
        """Rows written inside land together or not at all (an answer and its scores, say); the
        write lock is taken at the start. `snapshot`: instead, reads that all see the store as it
        was at the start, taking no write lock. Nested, it joins the one already open."""
        if self._in_transaction:
            yield
            return
        self._in_transaction = True
        try:
            with transaction(self.conn, self.backend.snapshot if snapshot else self.backend.begin):
                yield
        finally:
            self._in_transaction = False

    def close(self) -> None:
        with suppress(DBAPIError):
            self.conn.close()
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        self.close()
        if isinstance(exc, DBAPIError):
            raise self.explain(exc) from None

    def _put(self, table: Table, **row: Any) -> None:
        self.conn.execute(self.upsert[table.name], row)

    def begin_run(
        self,
        run_id: str,
        name: str,
        config_hash: str,
        config: dict,
        meta: dict,
        mode: str = "compare",
        against: str | None = None,
    ) -> None:
        self.conn.execute(
            runs.insert(),
            dict(
                run_id=checked(run_id, self.where),
                name=name,
                kind=mode,
                created_at=now(),
                status="running",
                config_hash=config_hash,
                config_json=json.dumps(config),
                meta_json=json.dumps(meta),
                against=against,
            ),
        )

    def resume_run(self, run_id: str) -> None:
        self._update_run(run_id, status="running", finished_at=None, verdict_json=None, reason=None)

    def _update_run(self, run_id: str, **values: Any) -> None:
        self.conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))

    def answered(self, run_id: str) -> dict[tuple[str, str, str], set[str]]:
        """(candidate, suite, case) answered without error -> the metrics scored for it; a resumed
        run skips the ones whose inline scores are all there."""
        answered: dict[tuple[str, str, str], set[str]] = {
            (r.candidate, r.suite, r.case_id): set()
            for r in self.conn.execute(
                select(responses.c.candidate, responses.c.suite, responses.c.case_id).where(
                    responses.c.run_id == run_id, responses.c.error.is_(None)
                )
            )
        }
        for r in self.conn.execute(
            select(scores.c.candidate, scores.c.suite, scores.c.case_id, scores.c.metric).where(
                scores.c.run_id == run_id
            )
        ):
            answered.get((r.candidate, r.suite, r.case_id), set()).add(r.metric)
        return answered

    def pin(self, name: str, run_id: str) -> None:
        self._put(pins, name=name, run_id=run_id, created_at=now())

    def pinned(self, name: str) -> str | None:
        return self.conn.execute(select(pins.c.run_id).where(pins.c.name == name)).scalar()

    def put_artifact(self, run_id: str, candidate: str, kind: str, payload: dict) -> None:
        """Per-candidate records beside the scores: training metrics, retrieval settings, ..."""
        self._put(
            artifacts, run_id=run_id, candidate=candidate, kind=kind, json=json.dumps(payload)
        )

    def artifacts(self, run_id: str) -> list[dict]:
        rows = self.conn.execute(
            select(artifacts.c.candidate, artifacts.c.kind, artifacts.c.json).where(
                artifacts.c.run_id == run_id
            )
        )
        return [
            {"candidate": c, "kind": k, **json.loads(j)}
            for c, k, j in sorted(rows, key=lambda r: (r[0], r[1]))
        ]

    def set_meta_key(self, run_id: str, key: MetaKey, value: Any) -> None:
        """One key of the run's meta (see store.meta for what each holds), set by the database in
        one statement: no reader of the whole record in between, nothing else in it rewritten."""
        self._update_run(
            run_id, meta_json=self.backend.set_key(runs.c.meta_json, key, json.dumps(value))
        )

    def set_verdict(self, run_id: str, verdict: dict) -> None:
        """The gates' verdict, stored for the reports to be rendered from; the run stays `running`
        until they are written (see finish_run), so no reader takes a verdict without its reports
        for a finished run.
        """
        self._update_run(run_id, verdict_json=json.dumps(verdict))

    def finish_run(
        self,
        run_id: str,
        status: str,
        verdict: dict | None,
        reason: str | None = None,
        at: str | None = None,
    ) -> None:
        """The run's end: `finished` with its verdict once every report file is written, else
        `failed` or `interrupted` with no verdict and the `reason`. `at`: the time the reports
        already state. Tried on a new connection when the store's was lost (a server back from a
        restart records it; one still down raises the driver's error, not SQLAlchemy's refusal to
        use the old connection)."""
        if self.conn.invalidated:
            self.conn.rollback()
        self._update_run(
            run_id,
            finished_at=at or now(),
            status=status,
            reason=reason,
            verdict_json=json.dumps(verdict) if verdict is not None else None,
        )

    def put_case(
        self,
        run_id: str,
        suite: str,
        case_id: str,
        messages: list[dict],
        reference: str | None,
        tags: list[str],
        metadata: dict | None = None,
    ) -> None:
        self._put(
            cases,
            run_id=run_id,
            suite=suite,
            case_id=case_id,
            input_json=json.dumps(messages),
            reference=reference,
            tags_json=json.dumps(tags),
            metadata_json=json.dumps(metadata or {}),
        )

    def put_response(
        self,
        run_id: str,
        candidate: str,
        suite: str,
        case_id: str,
        request_json: str,
        completion: Completion,
        cached: bool,
        context: list[dict] | None = None,
    ) -> None:
        self._put(
            responses,
            run_id=run_id,
            candidate=candidate,
            suite=suite,
            case_id=case_id,
            request_json=request_json,
            output=completion.text,
            error=completion.error,
            latency_s=completion.latency_s,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            finish_reason=completion.finish_reason,
            cached=int(cached),
            created_at=now(),
            context_json=json.dumps(context) if context is not None else None,
            logliks_json=json.dumps(completion.logliks) if completion.logliks else None,
        )

    def put_score(
        self,
        run_id: str,
        candidate: str,
        suite: str,
        case_id: str,
        metric: str,
        value: float | None,
        passed: bool | None,
        detail: str,
        meta: dict | None = None,
    ) -> None:
        """`meta`: data about the score beside the prose (e.g. {"fallback": true}: not the judge's
        answer)."""
        self._put(
            scores,
            run_id=run_id,
            candidate=candidate,
            suite=suite,
            case_id=case_id,
            metric=metric,
            value=value,
            passed=None if passed is None else int(passed),
            detail=detail,
            meta_json=json.dumps(meta) if meta else None,
        )

    def put_timing(self, run_id: str, stage: str, subject: str, seconds: float) -> None:
        self._put(timings, run_id=run_id, stage=stage, subject=subject, seconds=seconds)

    def cache_get(self, key: str) -> Completion | None:
        found = self.conn.execute(CACHED, {"key": key}).scalar()
        if found is None:
            return None
        fields = json.loads(found)
        for name in ("logliks", "top_logprobs"):
            fields[name] = tuple(tuple(pair) for pair in fields.get(name, ()))
        return Completion(**fields)

    def cache_put(self, key: str, model_fingerprint: str, completion: Completion) -> None:
        """Only successful answers are cached: an error must be retried next time, not replayed."""
        if completion.error is None:
            self._put(
                cache,
                key=key,
                model_fingerprint=model_fingerprint,
                completion_json=json.dumps(asdict(completion)),
                created_at=now(),
            )

    def judge_calibration(self, key: str) -> dict[str, Any] | None:
        """A judge's agreement with a calibration set, as computed before (see judging.calibrate)."""
        found = self.conn.execute(CHECKED, {"key": key}).scalar()
        return json.loads(found) if found is not None else None

    def put_judge_calibration(self, key: str, result: dict[str, Any]) -> None:
        self._put(
            judge_checks,
            key=key,
            rubric=result["rubric"],
            judge=result["judge"],
            result_json=json.dumps(result),
            created_at=now(),
        )

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run's record, None when there is none; an id that is not a plain name is refused
        (names.checked)."""
        row = (
            self.conn.execute(select(runs).where(runs.c.run_id == checked(run_id, self.where)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        record = dict(row)
        for key in ("config_json", "meta_json", "verdict_json"):
            record[key.removesuffix("_json")] = json.loads(record.pop(key)) if record[key] else None
        return record

    def runs(self) -> pd.DataFrame:
        """Every run, oldest first; missing values are None (not NaN) so callers can test them
        plainly."""
        listed = pd.read_sql_query(
            select(
                runs.c.run_id,
                runs.c.name,
                runs.c.kind,
                runs.c.created_at,
                runs.c.finished_at,
                runs.c.status,
                runs.c.reason,
                runs.c.config_hash,
                runs.c.against,
                runs.c.verdict_json,
            ).order_by(runs.c.created_at, runs.c.run_id),
            self.conn,
        )
        # A missing verdict may read as NaN (pandas' string columns), not None.
        listed["decision"] = [
            json.loads(v).get("decision") if isinstance(v, str) and v else None
            for v in listed.pop("verdict_json")
        ]
        return listed.astype(object).where(listed.notna(), None)

    def table(self, name: str, run_id: str) -> pd.DataFrame:
        if name not in TABLES:
            raise ValueError(name)
        table = TABLES[name]
        rows = pd.read_sql_query(select(table).where(table.c.run_id == run_id), self.conn)
        # In key order, whatever order the rows landed in and whichever plan the engine picks
        # (SQLite reads its key index, PostgreSQL a small table's heap): a bootstrap resamples rows
        # by position. Sorted here, not by the engine, as a database's collation may order text
        # otherwise (this is SQLite's byte order).
        return rows.sort_values(
            [c.name for c in table.primary_key], kind="stable", ignore_index=True
        )
