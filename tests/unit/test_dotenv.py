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
