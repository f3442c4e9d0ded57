"""The runbook starts with `cp .env.example .env`: the CLI must read it, and a real
environment variable must win over the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubetrade.cli import load_dotenv_file

ROOT = Path(__file__).resolve().parents[2]


def test_env_file_is_read_and_real_variables_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"
    env.write_text("KT_DOTENV_A=from-file\nKT_DOTENV_B=from-file\n")
    monkeypatch.setenv("KT_DOTENV_B", "from-env")
    monkeypatch.delenv("KT_DOTENV_A", raising=False)
    try:
        assert load_dotenv_file(str(env))
        assert os.environ["KT_DOTENV_A"] == "from-file"
        assert os.environ["KT_DOTENV_B"] == "from-env"
    finally:
        os.environ.pop("KT_DOTENV_A", None)


def test_env_example_names_the_runbooks_variables() -> None:
    text = (ROOT / ".env.example").read_text()
    for name in [
        "BINANCE_API_KEY",
        "BINANCE_SECRET_KEY",
        "BINANCE_TESTNET",
        "DASHBOARD_PASSWORD",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_CHAT_ID",
        "STOP_LOSS_PCT",
        "DAILY_LOSS_LIMIT_PCT",
    ]:
        assert f"{name}=" in text, name


def test_the_runbooks_symbols_line_says_where_symbols_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the runbook's own .env line was answered "misspelt?"
    env = tmp_path / ".env"
    env.write_text('SYMBOLS=["BTC/USDT","ETH/USDT"]\nSTOP_LOS_PCT=5\n')
    try:
        assert load_dotenv_file(str(env))
    finally:
        os.environ.pop("SYMBOLS", None)
        os.environ.pop("STOP_LOS_PCT", None)
    err = capsys.readouterr().err
    assert "SYMBOLS is not a kubetrade setting (ignored; in kubetrade it is each " \
           "Strategy's spec.symbols" in err
    assert "STOP_LOS_PCT is not a kubetrade setting (ignored; misspelt?)" in err
