"""Experiment trackers, optional: each run logged to MLflow when the config asks (`report: {mlflow:
...}`).

What lands there: the config (as params: hash, model, seed, candidates, suites; the whole of it as
an artifact), one metric per (candidate, suite, metric) mean named `candidate/suite/metric`, the
verdict and each gate's result as tags (and the exit code as a metric), and the report files as
artifacts. MLflow is an extra (`pip install 'harness[mlflow]'`): without it, or without the config
block, nothing changes. A tracker that cannot be reached is a warning, never a different verdict.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from harness.core.console import console
from harness.planning.config import MlflowConfig
from harness.verdict.gate import EXIT_CODES

TAG_CHARS = 5000  # MLflow's limit on a tag value


def metric_name(*parts: str) -> str:
    """MLflow takes letters, digits and _ - . / and spaces in metric names; anything else becomes _."""
    return "/".join(re.sub(r"[^\w\-. ]", "_", part) for part in parts)


def tag_key(rule: str) -> str:
    """A gate's tag: `gate/` + its rule, with what MLflow refuses in a key (<, >, =, ...) made _."""
    return "gate/" + re.sub(r"[^\w\-. :/]", "_", rule)[:240]


def log_to_mlflow(
    settings: MlflowConfig, results: dict[str, Any], files: dict[str, Path]
) -> str | None:
    """The MLflow run id, or None when logging failed (said as a warning): the run is finished when
    this is called, and whatever goes wrong here, a broken MLflow install included, leaves its
    verdict as it is.
    """
    if settings.tracking_uri.startswith("file:") or "://" not in settings.tracking_uri:
        os.environ.setdefault(
            "MLFLOW_ALLOW_FILE_STORE", "true"
        )  # the user asked for a local file store
    run = results["run"]
    verdict = results["verdict"] or {
        "decision": "error",
        "reason": "the run did not finish",
        "gates": [],
    }
    try:
        import mlflow

        client_uri = settings.tracking_uri
        mlflow.set_tracking_uri(client_uri)
        mlflow.set_experiment(settings.experiment or run["name"])
        with (
            mlflow.start_run(run_name=run["id"]) as tracked,
            tempfile.TemporaryDirectory() as folder,
        ):
            config = run["config"]
            mlflow.log_params(
                {
                    "harness_run_id": run["id"],
                    "config_hash": run["config_hash"],
                    "model": config.get("model"),
                    "seed": config.get("seed"),
                    "kind": run["kind"],
                    "candidates": ",".join(c["name"] for c in config["candidates"]),
                    "baseline": config.get("baseline"),
                    "suites": ",".join(run.get("suites", {})),
                }
            )
            mlflow.log_metrics(
                {
                    metric_name(r["candidate"], r["suite"], r["metric"]): r["mean"]
                    for r in results["summary"]
                    if r["mean"] is not None
                }
            )
            mlflow.log_metric("verdict_exit_code", EXIT_CODES[verdict["decision"]])
            mlflow.set_tags(
                {
                    "verdict": verdict["decision"],
                    "verdict_reason": verdict["reason"][:TAG_CHARS],
                    **{
                        tag_key(g["rule"]): (
                            ("pass: " if g["passed"] else "FAIL: ") + g["reason"][:4000]
                        )
                        for g in verdict["gates"]
                    },
                }
            )
            config_file = Path(folder) / "config.json"
            config_file.write_text(json.dumps(config, indent=2))
            mlflow.log_artifact(str(config_file))
            for path in files.values():
                mlflow.log_artifact(str(path), artifact_path="report")
            return tracked.info.run_id
    except Exception as exc:  # noqa: BLE001 - any tracker failure is a warning: the verdict stands
        console.log(
            f"warning: the run was not logged to MLflow at {settings.tracking_uri}: "
            f"{type(exc).__name__}: {str(exc)[:300]}",
            style="yellow",
        )
        return None
