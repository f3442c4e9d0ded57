"""Bad rules never trade: every mistake is refused before any candle, by the model that
`kubetrade validate` and `kubetrade local` load manifests through, with the position in
the expression."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.rules.spec import MAX_WARMUP, RulesSpec
from kubetrade.resources import ManifestError, load_manifests

GOOD: dict[str, Any] = {
    "indicators": {
        "fast": {"ema": {"period": 12}},
        "slow": {"ema": {"period": 26}},
        "rsi": {"rsi": {"period": 14}},
        "macd": {"macd": {}},
    },
    "entry": "crossed_above(fast, slow) && rsi < 70",
    "exit": "crossed_below(fast, slow) || rsi > 80",
}


def refusal(**change: Any) -> str:
    with pytest.raises(ValidationError) as info:
        RulesSpec.model_validate({**GOOD, **change})
    err = info.value.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return (f"{loc}: " if loc else "") + str(err["msg"]).removeprefix("Value error, ")


def test_good_rules_compile() -> None:
    spec = RulesSpec.model_validate(GOOD)
    algo = create_algorithm("rules", rules=spec)
    assert algo.warmup == 34  # MACD 12/26/9: first value on candle 34


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # syntax
        ({"entry": "fast >"}, "entry, column 7: unexpected the end of the expression"),
        ({"entry": "fast > slow &&& rsi"}, "entry, column 15: unexpected character '&'"),
        ({"exit": "(rsi > 80"}, "exit, column 10: expected ')', found the end"),
        ({"entry": "rsi < 30 < 40"}, "entry, column 10: comparisons do not chain"),
        ({"entry": "rsi < 30\n  && fsat > slow"}, "entry, line 2, column 6: unknown indicator"),
        # unknown names
        ({"entry": "fsat > slow"}, "entry, column 1: unknown indicator or variable 'fsat'"),
        ({"entry": "macd > 0"}, "column 1: unknown indicator or variable 'macd'; it has "
         "outputs macd.hist, macd.line, macd.signal"),
        ({"entry": "macd.lines > 0"}, "entry, column 1: unknown indicator or variable "
         "'macd.lines'"),
        ({"exit": "crossed_below(fast, slw)"}, "exit, column 21: unknown indicator"),
        ({"entry": "size(rsi) > 1"}, "entry, column 1: unknown function 'size'"),
        # types
        ({"entry": "rsi + 1"}, "entry, column 5: the expression must be a condition (bool), "
         "not double"),
        ({"entry": "fast > slow && rsi"}, "entry, column 13: type error: '&&' cannot be "
         "applied to (bool, double)"),
        ({"exit": "rsi > 80 + (fast > slow)"}, "exit, column 10: type error: '+' cannot be "
         "applied to (double, bool)"),
        # no reach beyond the indicator values: no strings, no other functions
        ({"entry": "'x' == 'x'"}, "entry, column 1: unexpected character"),
        ({"entry": "rsi.exists(x, x > 1)"}, "entry, column 1: unknown indicator"),
        # warm-up
        ({"entry": f"prev(close, {MAX_WARMUP}) < close"}, f"needs {MAX_WARMUP + 1} candles "
         f"of warm-up; at most {MAX_WARMUP}"),
        ({"indicators": {"m": {"macd": {"fast": 12, "slow": 1000}}}, "entry": "m.line > 0",
          "exit": "m.line < 0"}, "indicators.m: needs 1008 candles of warm-up; at most 1000"),
        ({"indicators": {"e": {"ema": {"period": 5000}}}}, "indicators.e.ema.period: Input "
         "should be less than or equal to 1000"),
        # indicator declarations
        ({"indicators": {"e": {"emma": {}}}}, "indicators.e: unknown kind 'emma'"),
        ({"indicators": {"e": {"ema": {"perod": 3}}}}, "indicators.e.ema.perod: Extra inputs"),
        ({"indicators": {"m": {"macd": {"fast": 30, "slow": 20}}}},
         "indicators.m.macd: slow (20) must be greater than fast (30)"),
        ({"indicators": {"close": {"ema": {}}}}, "indicators.close: 'close' is reserved"),
        ({"indicators": {"Fast": {"ema": {}}}}, "indicators.Fast: a name is lower case"),
        ({"indicators": {"f": {"ema": {}, "sma": {}}}},
         "indicators.f: Dictionary should have at most 1 item"),
    ],
)
def test_bad_rules_are_refused_with_the_position(change: dict[str, Any], expected: str) -> None:
    message = refusal(**change)
    assert expected in message, message


def test_cost_is_bounded() -> None:
    assert "at most 2000 characters" in refusal(entry="rsi > 1 && " * 300 + "true")
    assert "nested deeper than 64" in refusal(entry="(" * 100 + "true" + ")" * 100)
    # CEL's own tree limit must never be what refuses: ours is stricter and says how
    chain = " && ".join(["close > 1"] * 30)
    assert "entry, column 22: expression 31 operators deep, at most 24: group long chains" \
        in refusal(entry=chain)
    assert "operators deep" in refusal(entry="close+" * 330 + "close > 1")  # no RecursionError
    grouped = " && ".join(f"({' && '.join(['close > 1'] * 6)})" for _ in range(5))
    RulesSpec.model_validate({**GOOD, "entry": grouped})


STRATEGY = """\
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {{name: bad-rules}}
spec:
  algorithm: {algorithm}
  rules:
    indicators:
      fast: {{ema: {{period: 12}}}}
      slow: {{ema: {{period: 26}}}}
    entry: "{entry}"
    exit: "crossed_below(fast, slow)"
  symbols: ["BTC/USDT"]
"""


def test_loader_of_local_and_validate_refuses_with_the_position(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(STRATEGY.format(algorithm="rules", entry="crossed_above(fast, slw)"))
    with pytest.raises(ManifestError, match=r"spec\.rules: entry, column 21: unknown indicator "
                       r"or variable 'slw'"):
        load_manifests(path)
    path.write_text(STRATEGY.format(algorithm="sma-crossover", entry="fast > slow"))
    with pytest.raises(ManifestError, match="rules: only for algorithm rules"):
        load_manifests(path)
    path.write_text(STRATEGY.format(algorithm="rules", entry="fast > slow"))
    assert load_manifests(path)


def test_kubetrade_validate_refuses_before_any_candle(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(STRATEGY.format(algorithm="rules", entry="fast > slow && rsi < 70"))
    out = subprocess.run(
        [sys.executable, "-m", "kubetrade", "validate", "--strategy-file", str(path),
         "--replay", "tests/data/market/binance-BTCUSDT-1m-2024-09-21.csv",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode != 0
    assert "entry, column 16: unknown indicator or variable 'rsi'" in out.stderr + out.stdout
    assert not list(tmp_path.glob("validation_report*"))
