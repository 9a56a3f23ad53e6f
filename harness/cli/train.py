"""`harness train`: one lora candidate's adapter, trained alone (or found cached)."""

from __future__ import annotations

import argparse

from harness.cli.output import out
from harness.core.errors import HarnessError


def add(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train", help="train a lora candidate's adapter alone and print where it is"
    )
    train.add_argument("config")
    train.add_argument(
        "--candidate", required=True, help="name of a `kind: lora` candidate with a `train:` block"
    )
    train.add_argument(
        "--retrain", action="store_true", help="train even when a cached adapter matches"
    )
    train.set_defaults(func=train_one)


def train_one(args: argparse.Namespace) -> int:
    from harness.building.kinds import LoraCandidate
    from harness.building.training import train_adapter
    from harness.planning.config import load_config
    from harness.planning.plan import make_plan

    plan = make_plan(load_config(args.config))
    candidate = next((c for c in plan.config.candidates if c.name == args.candidate), None)
    if not isinstance(candidate, LoraCandidate) or candidate.train is None:
        trainable = [
            c.name for c in plan.config.candidates if isinstance(c, LoraCandidate) and c.train
        ]
        raise HarnessError(
            f"{args.config}: no lora candidate {args.candidate!r} with a `train:` block\n"
            f"  fix: use one of: {', '.join(trainable) or '(none in this config)'}"
        )
    settings = candidate.train
    result = train_adapter(
        plan.models[candidate.name],
        settings,
        plan.resolve_path(settings.data),
        retrain=args.retrain,
        accelerate_config=(
            plan.resolve_path(settings.accelerate_config) if settings.accelerate_config else None
        ),
    )
    out.print(f"adapter {'reused' if result.reused else 'trained'}: {result.path}")
    return 0
