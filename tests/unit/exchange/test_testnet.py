"""BINANCE_TESTNET picks the testnet or the real exchange: only clear answers count."""

from __future__ import annotations

import pytest

from kubetrade.exchange import testnet


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

