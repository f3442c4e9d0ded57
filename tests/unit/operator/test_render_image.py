"""Issue 18: a Strategy naming ``spec.image`` (kubetrade's image plus plugin algorithms)
gets its runner from that image, with everything else about the pod unchanged."""

from __future__ import annotations

from typing import Any

from kubetrade.operator import render
from kubetrade.operator.settings import OperatorSettings
from kubetrade.resources import Strategy
from tests.unit.operator.builders import strategy

SETTINGS = OperatorSettings(
    namespace="trading", image="registry.example/kubetrade:1.2.3", redis_url="redis://r:6379/0"
)
PLUGIN_IMAGE = "registry.example/kubetrade-donchian:0.1.0"


def _plugin(**spec: Any) -> Strategy:
    return strategy(
        algorithm="donchian-breakout", image=PLUGIN_IMAGE, parameters={"period": 20}, **spec
    )


def _runner(s: Strategy) -> dict[str, Any]:
    deployment = render.runner_deployment(s, "uid-1", 1, SETTINGS)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_the_runner_runs_spec_image_when_set() -> None:
    assert _runner(_plugin())["image"] == PLUGIN_IMAGE
    assert _runner(strategy())["image"] == SETTINGS.image
    # a built-in may name an image too (e.g. kubetrade's with extra plugins): it is used
    assert _runner(strategy(image=PLUGIN_IMAGE))["image"] == PLUGIN_IMAGE


def test_only_the_image_differs_from_the_operators_runner() -> None:
    """Same command, security context, probes, env, mounts and pull policy."""
    plugin = _runner(_plugin())
    builtin = _runner(strategy())
    assert plugin.pop("image") != builtin.pop("image")
    assert plugin == builtin
    assert plugin["securityContext"]["readOnlyRootFilesystem"] is True
    assert plugin["command"][:2] == ["kubetrade", "runner"]
    pod = render.runner_deployment(_plugin(), "uid-1", 1, SETTINGS)["spec"]["template"]["spec"]
    assert pod["securityContext"] == render.pod_security_context()


def test_changing_spec_image_rolls_the_runner() -> None:
    base = render.config_hash(_plugin(), SETTINGS)
    assert render.config_hash(_plugin(), SETTINGS) == base
    other = strategy(
        algorithm="donchian-breakout", image=PLUGIN_IMAGE + "-2", parameters={"period": 20}
    )
    assert render.config_hash(other, SETTINGS) != base


def test_jobs_stay_on_the_operators_image() -> None:
    """spec.image is for the runner only: the pre-flight Job runs kubetrade's image."""
    s = _plugin(mode="live")
    job = render.preflight_job(s, "uid-1", render.config_hash(s, SETTINGS), SETTINGS)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == SETTINGS.image
