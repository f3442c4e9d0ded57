"""What a user sees when the runner's inputs are wrong: exit 2 and the field named,
and secrets read from the mounted Secret files without ever being printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade.cli import main
from kubetrade.logs import MASK, redactor
from kubetrade.runner.assembly import RunnerEnv, replay_paths
from kubetrade.runner.core import RunnerSpec

GOOD = """
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: s1}
spec:
  algorithm: sma-crossover
  parameters: {fastPeriod: 30, slowPeriod: 10}
  symbols: ["BTC/USDT"]
"""


def test_bad_strategy_file_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD)
    assert main(["runner", "--strategy-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "slowPeriod" in err or "slow_period" in err


def test_live_without_keys_is_refused_before_trading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BINANCE_API_KEY", "BINANCE_SECRET_KEY", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBETRADE_SECRETS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("KUBETRADE_MARKET_DATA", "replay:bundled")
    path = tmp_path / "live.yaml"
    path.write_text(
        GOOD.replace("fastPeriod: 30, slowPeriod: 10", "fastPeriod: 5, slowPeriod: 20")
        + "  mode: live\n  exchange: {credentialsSecret: binance-keys}\n"
    )
    assert main(["runner", "--strategy-file", str(path)]) == 2
    assert "BINANCE_API_KEY" in capsys.readouterr().err


def test_keys_from_mounted_secret_files_are_registered_for_redaction(tmp_path: Path) -> None:
    (tmp_path / "apiKey").write_text("key-from-secret-file-123\n")
    (tmp_path / "secretKey").write_text("secret-from-secret-file-456\n")
    env = RunnerEnv.from_env({"KUBETRADE_SECRETS_DIR": str(tmp_path)})
    assert env.api_key == "key-from-secret-file-123"
    assert env.secret_key == "secret-from-secret-file-456"
    assert "secret-from-secret-file" not in repr(env)
    assert redactor().redact_text("x secret-from-secret-file-456 y") == f"x {MASK} y"
    assert env.testnet is None  # the Strategy decides unless BINANCE_TESTNET is set
    assert RunnerEnv.from_env({"BINANCE_TESTNET": "false"}).testnet is False


def test_replay_paths_forms() -> None:
    spec = RunnerSpec("s", "sma-crossover", {}, ["BTC/USDT", "ETH/USDT"])
    assert replay_paths(spec, "replay:/d/a.csv") == {
        "BTC/USDT": Path("/d/a.csv"), "ETH/USDT": Path("/d/a.csv")
    }
    assert replay_paths(spec, "replay:BTC/USDT=/d/b.csv,ETH/USDT=/d/e.csv")["ETH/USDT"] == Path(
        "/d/e.csv"
    )
    with pytest.raises(ValueError, match=r"spec\.symbols: no bundled candles for ETH/USDT"):
        replay_paths(spec, "replay:bundled")


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(None, True), ("", True), ("on", True), ("true", True), ("off", False),
     ("false", False), ("0", False), ("OFF", False)],
)
async def test_rate_limit_env_reaches_the_exchange_client(
    value: str | None, enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBETRADE_RATE_LIMIT switches the live exchange client's throttle, read as the
    pre-flight check "Rate Limit Configured" reads it."""
    from kubetrade.domain.clock import ManualClock
    from kubetrade.domain.preflight import client_throttle_enabled
    from kubetrade.exchange.resilient import ResilientExchange
    from kubetrade.runner.assembly import build_exchange

    environ = {"BINANCE_API_KEY": "k", "BINANCE_SECRET_KEY": "s"}
    if value is not None:
        environ["KUBETRADE_RATE_LIMIT"] = value
    monkeypatch.setenv("KUBETRADE_SECRETS_DIR", "/nonexistent")
    env = RunnerEnv.from_env(environ)
    spec = RunnerSpec(name="s1", algorithm="sma-crossover", parameters={},
                      symbols=["BTC/USDT"], mode="live")
    exchange, _, _ = await build_exchange(spec, env, ManualClock(1), None)
    try:
        assert isinstance(exchange, ResilientExchange)
        assert exchange.rate_limit_enabled is enabled
        assert client_throttle_enabled(environ) is enabled
    finally:
        await exchange.close()
