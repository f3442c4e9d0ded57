"""`kubetrade data download` against the fake Binance serving the real recorded candles:
paging, a 429 in the middle, an interrupted download resumed, a page with a bad candle,
and the CLI end to end (download, list, export)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kubetrade.cli import main
from kubetrade.domain.clock import SystemClock
from kubetrade.exchange.base import TransientError
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.resilient import ResilientExchange
from kubetrade.marketdata import CandleDataError, load_candles
from kubetrade.marketdata.download import download
from kubetrade.marketdata.store import CandleStore, SeriesKey
from kubetrade.marketdata.timeframes import parse_time
from tests.fakes.binance import FakeBinance
from tests.marketdata import market_file

KEY = SeriesKey("binance", "BTC/USDT", "1m")
SINCE = parse_time("2024-09-21")
UNTIL = parse_time("2024-09-21T23:59")
ROOT = Path(__file__).resolve().parents[3]
CASES = ROOT / "tests" / "data" / "cases"


def exchange(fake: FakeBinance, attempts: int = 5) -> ResilientExchange:
    clock = SystemClock()
    inner = BinanceExchange(base_url=fake.url, clock=clock)
    return ResilientExchange(inner, clock, read_attempts=attempts, backoff_initial_s=0.05)


class OnPage:
    """A Progress that runs ``action`` once, after the first stored page."""

    def __init__(self, action: Any) -> None:
        self.action = action
        self.pages = 0

    def start(self, label: str, expected: int) -> None:
        self.expected = expected

    def advance(self, label: str, candles: int, last_ms: int) -> None:
        self.pages += 1
        if self.pages == 1:
            self.action()

    def finish(self, label: str, summary: dict[str, Any]) -> None:
        self.summary = summary


def recorded() -> list[Any]:
    return load_candles(market_file("binance-BTCUSDT-1m-2024-09-21.csv")).to_list()


async def test_paged_download_through_a_429(fake_binance: FakeBinance, tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    ex = exchange(fake_binance)
    progress = OnPage(lambda: fake_binance.rate_limit(1, retry_after=1, path="/api/v3/klines"))
    try:
        result = await download(ex, store, KEY, SINCE, UNTIL, SystemClock(), progress,
                                page_limit=500)
    finally:
        await ex.close()
    assert fake_binance.faults_fired["rate_limit"] == 1
    assert (result.fetched, result.added, result.resumed) == (1440, 1440, False)
    assert progress.expected == 1440 and progress.pages == 3
    assert store.load(KEY).to_list() == recorded()


async def test_interrupted_download_resumes_from_the_last_stored(
    fake_binance: FakeBinance, tmp_path: Path
) -> None:
    store = CandleStore(tmp_path)
    ex = exchange(fake_binance, attempts=1)
    outage = OnPage(lambda: fake_binance.fail_requests(503, None, "GET", "/api/v3/klines"))
    try:
        with pytest.raises(TransientError):
            await download(ex, store, KEY, SINCE, UNTIL, SystemClock(), outage, page_limit=500)
        assert store.info(KEY).count == 500
        fake_binance.clear_faults()
        fake_binance.reset_counters()
        await ex.close()
        ex = exchange(fake_binance)
        result = await download(ex, store, KEY, SINCE, UNTIL, SystemClock(), page_limit=500)
    finally:
        await ex.close()
    assert result.resumed and result.start_ms == SINCE + 500 * 60_000
    assert (result.fetched, result.added) == (940, 940)
    assert fake_binance.count("GET", "/api/v3/klines") == 2  # the stored part not asked again
    assert store.load(KEY).to_list() == recorded()


async def test_bad_candle_page_refused_and_nothing_of_it_stored(
    fake_binance: FakeBinance, tmp_path: Path
) -> None:
    store = CandleStore(tmp_path)
    ex = exchange(fake_binance)
    try:
        bad = OnPage(lambda: fake_binance.corrupt_klines(1, row=7))
        with pytest.raises(CandleDataError) as info:
            await download(ex, store, KEY, SINCE, UNTIL, SystemClock(), bad, page_limit=500)
        err = info.value
        assert (err.rule, err.line) == ("not-finite", 8)
        assert "BTC/USDT 1m page from 2024-09-21T08:20:00Z" in str(err)
        assert store.info(KEY).count == 500
        result = await download(ex, store, KEY, SINCE, UNTIL, SystemClock(), page_limit=500)
    finally:
        await ex.close()
    assert result.resumed and result.added == 940
    assert store.load(KEY).to_list() == recorded()


def kubetrade(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubetrade", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120, check=False)


def test_cli_download_list_export(fake_binance: FakeBinance, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "KUBETRADE_EXCHANGE_URL": fake_binance.url}
    datadir = str(tmp_path / "candles")
    run = kubetrade("data", "download", "--symbols", "BTC/USDT,ETH/USDT", "--timeframes",
                    "1m,1h", "--since", "2024-08-01", "--until", "2024-09-21T23:59",
                    "--datadir", datadir, env=env)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    done = {e["series"]: e for e in events if e["event"] == "download.done"}
    assert done["binance BTC/USDT 1m"]["added"] == 1440
    assert done["binance BTC/USDT 1h"]["added"] == 744
    assert done["binance ETH/USDT 1m"]["added"] == 0  # the fake has no ETH candles
    # the rest in this process (each subprocess costs seconds of imports)
    monkeypatch.setenv("KUBETRADE_EXCHANGE_URL", fake_binance.url)
    assert main(["data", "list", "--json", "--datadir", datadir]) == 0
    listed = capsys.readouterr().out
    rows = {(r["symbol"], r["timeframe"]): r for r in map(json.loads, listed.splitlines())}
    assert rows[("BTC/USDT", "1h")] == {
        "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h", "count": 744,
        "gaps": 0, "missing": 0, "first": "2024-08-01T00:00:00Z", "last": "2024-08-31T23:00:00Z"}
    assert main(["data", "list", "--datadir", datadir]) == 0
    table = capsys.readouterr().out
    assert "BTC/USDT" in table and "1440" in table
    out = tmp_path / "btc.csv"
    assert main(["data", "export", "--symbol", "BTC/USDT", "--timeframe", "1m", "--format",
                 "csv", "--output", str(out), "--datadir", datadir]) == 0
    assert load_candles(out).to_list() == recorded()
    assert main(["data", "download", "--symbols", "BTC/USDT", "--timeframes", "1m",
                 "--since", "2024-09-21", "--until", "2024-09-21T23:59", "--datadir",
                 datadir, "--progress", "json"]) == 0
    last = [json.loads(x) for x in capsys.readouterr().out.splitlines()][-1]
    assert last["event"] == "download.done" and last["added"] == 0 and last["resumed"]
    # then replay the stored range: the same report as replaying the recorded file
    strategy = str(CASES / "candles-nan" / "btc-sma.yaml")
    reports = tmp_path / "reports"
    code = main(["validate", "--strategy-file", strategy, "--replay", "store", "--since",
                 "2024-09-21", "--until", "2024-09-21T23:59", "--datadir", datadir,
                 "--report-dir", str(reports / "store")])
    assert code in (0, 3)
    code = main(["validate", "--strategy-file", strategy, "--replay",
                 str(market_file("binance-BTCUSDT-1m-2024-09-21.csv")),
                 "--report-dir", str(reports / "file")])
    capsys.readouterr()
    (store_report,) = [json.loads(p.read_text()) for p in (reports / "store").glob("*.json")]
    (file_report,) = [json.loads(p.read_text()) for p in (reports / "file").glob("*.json")]
    assert store_report["run"]["source"] == "store"
    assert store_report["run"]["data"]["candles"] == 1440
    assert store_report["metrics"] == file_report["metrics"]
    assert store_report["trades"] == file_report["trades"]


def test_cli_refuses_a_bad_page_with_exit_2(fake_binance: FakeBinance, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KUBETRADE_EXCHANGE_URL", fake_binance.url)
    fake_binance.corrupt_klines(1, row=3, values=("63000", "62000", "61000", "62500", "1"))
    code = main(["data", "download", "--symbols", "BTC/USDT", "--since", "2024-09-21",
                 "--until", "2024-09-21T23:59", "--datadir", str(tmp_path), "--progress",
                 "json"])
    assert code == 2
    err = capsys.readouterr().err
    assert ":4: high-below-open-close:" in err and "page from 2024-09-21T00:00:00Z" in err


def test_cli_markets_refresh_from_load_markets(fake_binance: FakeBinance, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from kubetrade.marketdata.filters import load_best

    monkeypatch.setenv("KUBETRADE_EXCHANGE_URL", fake_binance.url)
    assert main(["data", "download", "--markets", "--datadir", str(tmp_path)]) == 0
    live = load_best(tmp_path)
    assert live.origin == str(tmp_path / "markets" / "binance-spot-filters.yaml")
    xrp = live.market("XRP/ETH")  # as the fake's exchangeInfo has it
    assert (xrp.price_step, xrp.qty_step) == (Decimal("0.00000001"), Decimal("1"))
    text = (tmp_path / "markets" / "binance-spot-filters.yaml").read_text()
    assert "tick_size: '0.00000001'" in text


def test_cli_unknown_symbol_is_a_usage_error(fake_binance: FakeBinance, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KUBETRADE_EXCHANGE_URL", fake_binance.url)
    code = main(["data", "download", "--symbols", "NOPE/USDT", "--since", "2024-09-21",
                 "--datadir", str(tmp_path), "--progress", "json"])
    assert code == 2
    assert "NOPE/USDT" in capsys.readouterr().err


def test_cli_download_in_an_outage_says_so_in_json_and_exits_1(fake_binance: FakeBinance,
                                                               tmp_path: Path) -> None:
    """Binance unreachable: the exchange client's retries and the circuit breaker are
    JSON log lines on stderr (no bare text among them), stdout stays JSON progress, and
    the last stderr line says what failed and that running again resumes."""
    fake_binance.start_outage("503")
    env = {**os.environ, "KUBETRADE_EXCHANGE_URL": fake_binance.url}
    run = kubetrade("data", "download", "--symbols", "BTC/USDT", "--since", "2024-09-21",
                    "--until", "2024-09-21T23:59", "--datadir", str(tmp_path),
                    "--progress", "json", env=env)
    assert run.returncode == 1, run.stderr
    for line in run.stdout.splitlines():
        json.loads(line)
    *logs, last = run.stderr.splitlines()
    events = [json.loads(line) for line in logs]  # every line before the verdict is JSON
    assert any("circuit breaker closed -> open" in e["event"] for e in events), logs
    assert last.startswith("kubetrade data download: exchange failed: ")
    assert last.endswith("(run again to resume)")
