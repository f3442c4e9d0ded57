"""`kubetrade validate --replay --no-html` runs without importing pandas (pyarrow's
conversion of Python values imports it, ~0.3 s of every run, although nothing of a
replay uses it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.unit.validation._data import filters_dir, shared_data, strategy_yaml


def test_a_replay_leaves_pandas_unimported(tmp_path: Path) -> None:
    spec = tmp_path / "strategy.yaml"
    spec.write_text(strategy_yaml("no-pandas", "sma-crossover",
                                  "{fastPeriod: 10, slowPeriod: 30}", "BTC/USDT", "1m"))
    argv = ["validate", "--strategy-file", str(spec), "--no-html",
            "--replay", str(shared_data("binance-BTCUSDT-1m-2024-09-21.csv")),
            "--report-dir", str(tmp_path / "reports"), "--datadir", str(filters_dir(tmp_path))]
    code = ("import sys\n"
            "from kubetrade.cli import main\n"
            f"code = main({argv!r})\n"
            "print('exit', code, 'pandas', 'pandas' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] in ("exit 0 pandas False",
                                                   "exit 3 pandas False"), out.stdout
