"""`harness serve`: a config's base models kept served between runs, for runs that would start the
same server."""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from harness.cli.output import out
from harness.core.errors import HarnessError


def add(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help=(
            "keep a config's base models served between runs; runs with the same "
            "engine settings, seed and weights attach instead of starting a server"
        ),
    )
    serve.add_argument("config", help="path to a config YAML: its models, engine and seed")
    serve.set_defaults(func=serve_models)


def serve_models(args: argparse.Namespace) -> int:
    """Keep the config's base models served until Ctrl-C; `compare` and `drift` runs whose server
    would be the same (command, weights, seed) use it instead of starting their own. Servers with
    adapters are never shared.
    """
    import time

    from harness.planning.config import load_config
    from harness.planning.plan import make_plan
    from harness.serving.shared import REGISTRY_ENV, registry_dir
    from harness.serving.vllm_server import shared_server

    plan = make_plan(load_config(args.config))
    registry = registry_dir()
    if registry is None:
        raise HarnessError(
            f"{REGISTRY_ENV} is set but empty, so no run could attach to a shared server\n"
            "  fix: unset it (the default registry is in the harness home) or name a folder"
        )
    if plan.config.engine.kind != "vllm":
        raise HarnessError(
            f"{args.config}: engine.kind is {plan.config.engine.kind!r}; only vllm servers are"
            " shared\n  fix: set `engine: {kind: vllm}`"
        )
    models = [model for model, _ in plan.by_model()]
    if not models:
        raise HarnessError(
            f"{args.config}: no candidate runs on a local model, so there is nothing to serve"
        )
    with ExitStack() as stack:
        for model in models:
            url = stack.enter_context(
                shared_server(
                    model,
                    registry / f"logs-{model.name}",
                    plan.config.engine,
                    plan.config.seed,
                    registry,
                )
            )
            out.print(
                f"serving {model.name} at {url} (registered in {registry}); Ctrl-C stops it",
                highlight=False,
            )
        while True:
            time.sleep(3600)
