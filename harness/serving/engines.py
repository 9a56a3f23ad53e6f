"""Every engine, named once: the local engines `engine.kind` chooses and the endpoint protocols a
candidate or judge calls, each name -> the "module:attr" of its EngineKind (a new engine: its module
and one line here, or an entry point in the `harness.engines` group of an installed package: see
docs/plugins.md). Declarations are light, so validating a config imports no engine's client; the one
opened (serving.pool.open_engine) is imported when it opens."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from harness.core.plugins import Names, Table
from harness.serving.settings import EngineKind, EngineSettings, WeightsSettings

ENGINES: Table[EngineKind] = Table(
    "harness.engines",
    {
        "vllm": "harness.serving.settings:VLLM",
        "transformers": "harness.serving.settings:TRANSFORMERS",
        "scripted": "harness.serving.settings:SCRIPTED",
        "openai": "harness.serving.settings:OPENAI",
        "anthropic": "harness.serving.settings:ANTHROPIC",
    },
)


def local_engines() -> dict[str, EngineKind]:
    return {name: kind for name, kind in ENGINES.loaded().items() if kind.local}


def engine_union() -> Any:
    """`engine:`: one of the local engines' settings models, told apart by their `kind:`."""
    models = tuple(kind.settings for kind in local_engines().values())
    return Annotated[Union[models], Field(discriminator="kind")]


def protocols() -> list[str]:
    """The endpoint protocols: the engines that answer a deployed model."""
    return [name for name, kind in ENGINES.loaded().items() if not kind.local]


# What `--engine` offers: the local engines that serve a model's weights (not the scripted one).
MODEL_ENGINES = Names(
    lambda: (
        name for name, kind in local_engines().items() if issubclass(kind.settings, WeightsSettings)
    )
)  # type: ignore[arg-type]


def switched(settings: EngineSettings, kind: str) -> EngineSettings:
    """`settings` under another local engine (`--engine`): the keys both take carry over (timeouts,
    concurrency, dtype), the others are the new engine's defaults."""
    model = local_engines()[kind].settings
    assert model is not None
    return model(
        **{key: value for key, value in settings if key in model.model_fields and key != "kind"}
    )
