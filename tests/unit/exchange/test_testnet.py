"""BINANCE_TESTNET picks the testnet or the real exchange: only clear answers count."""

from __future__ import annotations

import pytest

from kubetrade.exchange import testnet
from kubetrade.runner.assembly import RunnerEnv


@pytest.mark.parametrize(("value", "meaning"), [
    (None, None), ("", None), ("  ", None),
    ("true", True), ("1", True), ("yes", True), ("ON", True), (" True ", True),
    ("false", False), ("0", False), ("no", False), ("off", False),
])
def test_clear_answers(value: str | None, meaning: bool | None) -> None:
    assert testnet.testnet_setting(value) is meaning


@pytest.mark.parametrize("value", ["maybe", "treu", "testnet", "2"])
def test_anything_else_is_refused_not_taken_for_the_real_exchange(value: str) -> None:
    with pytest.raises(ValueError, match=rf"BINANCE_TESTNET='{value}' is neither yes nor no"):
        testnet.testnet_setting(value)


def test_the_runner_reads_it_the_same_way() -> None:
    # "on" was the testnet to the runner and the real exchange to the pre-flight
    assert RunnerEnv.from_env({"BINANCE_TESTNET": "on"}).testnet is True
    assert RunnerEnv.from_env({"BINANCE_TESTNET": "off"}).testnet is False
    with pytest.raises(ValueError, match="BINANCE_TESTNET"):
        RunnerEnv.from_env({"BINANCE_TESTNET": "maybe"})
