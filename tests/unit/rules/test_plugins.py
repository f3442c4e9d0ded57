"""Python algorithms as plugins: a package installed with pip, found through the
``kubetrade.algorithms`` entry point group by create_algorithm, the manifest loader of
``kubetrade validate``/``kubetrade local``, and those commands themselves."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kubetrade.domain import registry
from kubetrade.domain.algorithms import create_algorithm
from kubetrade.resources import ManifestError, load_manifests

REPO = Path(__file__).resolve().parents[3]
PLUGIN = REPO / "tests" / "data" / "plugins" / "kubetrade-example-plugin"
CANDLES = REPO / "tests" / "data" / "market" / "binance-BTCUSDT-1m-2024-09-21.csv"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``pip install`` of the example plugin into a directory put on the path (of this
    process and of the commands it starts); nothing is left in the venv afterwards."""
    tmp = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PLUGIN, tmp / "src")  # the build writes next to the sources
    site = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         str(source)],
        check=True, timeout=300,
    )
    sys.path.insert(0, str(site))
    registry.refresh()
    yield site
    sys.path.remove(str(site))
    sys.modules.pop("kubetrade_example_plugin", None)
    registry.refresh()


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def test_installed_plugin_is_registered_and_built(plugin_site: Path) -> None:
    assert "donchian-breakout" in registry.registered()
    assert registry.problems() == {}
    algo = create_algorithm("donchian-breakout", {"period": 5, "exitPeriod": 3})
    assert algo.warmup == 6
    with pytest.raises(ValueError, match=r"parameters\.exitPeriod"):
        create_algorithm("donchian-breakout", {"exitPeriod": 1})


def test_loader_of_validate_and_local_takes_the_plugin(plugin_site: Path) -> None:
    [strategy] = load_manifests(PLUGIN / "strategy.yaml")
    assert strategy.spec.algorithm == "donchian-breakout"  # type: ignore[union-attr]


def test_kubetrade_validate_runs_the_plugin(plugin_site: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kubetrade", "validate", "--strategy-file",
         str(PLUGIN / "strategy.yaml"), "--replay", str(CANDLES), "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=_env(plugin_site), check=False,
    )
    assert "Validation of btc-donchian (donchian-breakout" in out.stdout, out.stderr[-2000:]
    assert list(tmp_path.glob("validation_report*.json"))


def test_kubetrade_local_runs_the_plugin(plugin_site: Path, tmp_path: Path) -> None:
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    shutil.copy(PLUGIN / "strategy.yaml", strategies / "donchian.yaml")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in _env(plugin_site).items() if k not in ("REDIS_URL",)}
    env.update(KUBETRADE_REPLAY_INTERVAL="0.01", PYTHONUNBUFFERED="1")
    log = tmp_path / "local.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubetrade", "local", "--port", str(port),
             "--market-data", "replay:bundled", "--strategies", str(strategies)],
            cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        names: list[str] = []
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/api/strategies", timeout=2).json()
                names = [s.get("name") for s in body] if isinstance(body, list) else [
                    s.get("name") for s in body.get("strategies", [])]
            except (httpx.HTTPError, ValueError):
                names = []
            if "btc-donchian" in names and "runner.fresh_start" in log.read_text():
                break
            time.sleep(0.2)
        text = log.read_text()
        assert "btc-donchian" in names, text[-3000:]
        assert "runner.fresh_start" in text and "unknown algorithm" not in text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_without_the_plugin_only_an_image_makes_it_acceptable(tmp_path: Path) -> None:
    text = (PLUGIN / "strategy.yaml").read_text().replace("donchian-breakout", "not-here")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError, match=r"not one of .* needs spec\.image"):
        load_manifests(path)
    path.write_text(text + "  image: registry.example/kubetrade-donchian:0.1\n")
    assert load_manifests(path)


def test_broken_plugins_are_left_out_and_reported(tmp_path: Path) -> None:
    """A plugin that fails to import, is not an Algorithm, or takes a built-in's name."""
    dist = tmp_path / "broken_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[kubetrade.algorithms]\n"
        "not-importable = no_such_module_here:Algo\n"
        "not-an-algorithm = json:JSONDecoder\n"
        "sma-crossover = json:JSONDecoder\n"
    )
    sys.path.insert(0, str(tmp_path))
    registry.refresh()
    try:
        problems = registry.problems()
        assert "cannot be imported" in problems["not-importable"]
        assert "not a subclass" in problems["not-an-algorithm"]
        assert "cannot replace the built-in" in problems["sma-crossover"]
        assert registry.registered()["sma-crossover"].__module__ == "kubetrade.domain.algorithms"
        assert "not-an-algorithm" not in registry.registered()
    finally:
        sys.path.remove(str(tmp_path))
        registry.refresh()
