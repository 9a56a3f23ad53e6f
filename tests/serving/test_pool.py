"""The run's engine pool: which open engine may answer for a target, and which stay open."""

from __future__ import annotations

from pathlib import Path

from harness.core.models import ModelRef
from harness.core.request import Request
from harness.serving.base import Adapter, EndpointTarget, LocalTarget
from harness.serving.pool import Engines, covers
from harness.serving.settings import ScriptedConfig, ScriptRule

BASE = ModelRef("m", Path("/models/m"), "f" * 64)
OTHER = ModelRef("o", Path("/models/o"), "0" * 64)
TUNED = Adapter("tuned", Path("/adapters/t"), 8, "a" * 64)
ENDPOINT = EndpointTarget("openai", "https://api.example.com/v1", None, 4, 60, 0, None)


def test_a_server_with_adapters_answers_for_its_base_model_but_not_the_reverse() -> None:
    assert covers(LocalTarget(BASE, (TUNED,)), LocalTarget(BASE))
    assert not covers(LocalTarget(BASE), LocalTarget(BASE, (TUNED,)))
    assert not covers(LocalTarget(BASE, (TUNED,)), LocalTarget(OTHER))
    assert covers(ENDPOINT, ENDPOINT) and not covers(ENDPOINT, LocalTarget(BASE))


def test_kept_engines_stay_open_until_the_pool_closes_and_others_stop_after_use(
    tmp_path: Path,
) -> None:
    config = ScriptedConfig(script=[ScriptRule(answer="hi")])
    request = Request("m", (("user", "x"),), 4, 0.0, 1.0, (), 0)
    with Engines(keep=[LocalTarget(BASE)]) as engines:
        with engines.use(LocalTarget(OTHER), config, tmp_path, 0):
            assert engines.find(LocalTarget(OTHER)) is not None
        assert engines.find(LocalTarget(OTHER)) is None  # not kept: stopped after its stage
        with engines.use(LocalTarget(BASE, (TUNED,)), config, tmp_path, 0) as first:
            pass
        with engines.use(LocalTarget(BASE), config, tmp_path, 0) as again:
            assert again is first and [c.text for _, c in again.run([request])] == ["hi"]
        assert engines.started == 2
    assert engines.find(LocalTarget(BASE)) is None
