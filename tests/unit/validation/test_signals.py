"""Signals known before the replay loop: the SMA crossover in bulk gives exactly what its
own step gives, close by close, and leaves the same state behind."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.marketdata.loader import LoadOptions, load_candles
from kubetrade.validation.fast_replay import column_array
from kubetrade.validation.signals import signals_of
from tests.unit.validation._data import shared_data


def _stepped(algorithm: str, params: Mapping[str, float], closes: np.ndarray
             ) -> tuple[list[int], list[str], dict[str, object]]:
    algo = create_algorithm(algorithm, dict(params))
    step = algo.bind("X")
    out = [(i, s) for i, s in enumerate(step(c) for c in closes.tolist()) if s is not None]
    return [i for i, _ in out], [str(s) for _, s in out], algo.snapshot()


def _bulk(algorithm: str, params: Mapping[str, float], closes: np.ndarray
          ) -> tuple[list[int], list[str], dict[str, object]]:
    algo = create_algorithm(algorithm, dict(params))
    where, sides = signals_of(algo, "X", algo.bind("X"), closes)
    return where.tolist(), [str(s) for s in sides], algo.snapshot()


def _series() -> list[np.ndarray]:
    real = load_candles(shared_data("binance-BTCUSDT-1m-2024-09-21.csv"),
                        LoadOptions(timeframe="1m"))
    rng = np.random.default_rng(7)
    walk = np.round(1000 + np.cumsum(rng.normal(0, 0.5, 20_000)), 2)
    walk[::5] = walk[1::5][: len(walk[::5])]  # repeated closes: ties between the averages
    tiny = np.round(0.0001 + np.abs(rng.normal(0, 1e-5, 5_000)), 8)
    return [column_array(real, "close", np.float64), walk, tiny, walk[:31], walk[:5]]


@pytest.mark.parametrize("periods", [(10, 30), (3, 8), (1, 2), (50, 200), (7, 13)])
def test_sma_in_bulk_is_its_step(periods: tuple[int, int]) -> None:
    params = {"fastPeriod": periods[0], "slowPeriod": periods[1]}
    for closes in _series():
        assert _bulk("sma-crossover", params, closes) == _stepped("sma-crossover", params,
                                                                  closes)


def test_prices_beyond_exact_integers_fall_back_to_the_step() -> None:
    closes = np.array([1e13, 2e13, 1.5e13] * 50)
    params = {"fastPeriod": 2, "slowPeriod": 5}
    assert _bulk("sma-crossover", params, closes) == _stepped("sma-crossover", params, closes)


@pytest.mark.parametrize("algorithm,params", [
    ("rsi-mean-reversion", {"period": 5, "oversold": 30, "overbought": 60}),
    ("bollinger-breakout", {"period": 20, "stdDev": 2}),
])
def test_other_algorithms_are_stepped(algorithm: str, params: Mapping[str, float]) -> None:
    closes = _series()[0]
    assert _bulk(algorithm, params, closes) == _stepped(algorithm, params, closes)


def test_series_longer_than_a_block_agree_across_the_seams() -> None:
    rng = np.random.default_rng(11)
    closes = np.round(50_000 + np.cumsum(rng.normal(0, 5, 150_000)), 2)
    for algorithm, params in (("sma-crossover", {"fastPeriod": 10, "slowPeriod": 30}),
                              ("rsi-mean-reversion", {"period": 14})):
        assert _bulk(algorithm, params, closes) == _stepped(algorithm, params, closes)
