"""Settings and flags read strictly: a value that decides where or how kubetrade trades
or listens is refused naming the variable or flag, never taken for something else."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kubetrade.cli import main
from kubetrade.runner.assembly import RunnerEnv


def test_the_runner_reads_it_the_same_way() -> None:
    # "on" was the testnet to the runner and the real exchange to the pre-flight
    assert RunnerEnv.from_env({"BINANCE_TESTNET": "on"}).testnet is True
    assert RunnerEnv.from_env({"BINANCE_TESTNET": "off"}).testnet is False
    with pytest.raises(ValueError, match="BINANCE_TESTNET"):
        RunnerEnv.from_env({"BINANCE_TESTNET": "maybe"})


def test_a_bad_metrics_port_is_refused_naming_the_variable() -> None:
    assert RunnerEnv.from_env({"METRICS_PORT": "9100"}).metrics_port == 9100
    assert RunnerEnv.from_env({"METRICS_PORT": "0"}).metrics_port is None
    with pytest.raises(ValueError, match=r"METRICS_PORT='abc' is not a TCP port"):
        RunnerEnv.from_env({"METRICS_PORT": "abc"})


def test_a_bad_metrics_port_breaks_no_other_command() -> None:
    # the operator's --metrics-port default was int($METRICS_PORT), computed while the
    # parser was built: METRICS_PORT=abc made every command, --help included, a traceback
    env = {"METRICS_PORT": "abc", "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-m", "kubetrade", "--help"], env=env,
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "usage: kubetrade" in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "kubetrade", "operator"], env=env,
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert "argument --metrics-port: 'abc' is not a port" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize(("argv", "said"), [
    (["local", "--port", "99999"], "argument --port: '99999' is not a TCP port (1-65535)"),
    (["api", "--port", "0"], "argument --port: '0' is not a TCP port (1-65535)"),
    (["local", "--replay-interval", "-1"],
     "argument --replay-interval: '-1' is not a number of seconds (0 or more)"),
])
def test_bad_flags_are_refused_naming_the_flag(argv: list[str], said: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # --port 99999 was a raw OverflowError traceback at bind time, -1 s was accepted
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(("given", "missing"), [
    ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"), ("TELEGRAM_CHAT_ID", "TELEGRAM_BOT_TOKEN")])
def test_half_a_telegram_setting_is_refused_naming_the_missing_variable(
    given: str, missing: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a token without a chat id ran local mode with Telegram off and not a word about it
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(given, "12345")
    assert main(["local"]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: required when {given} is set" in err and "12345" not in err


def test_a_weak_password_on_the_network_is_a_warning_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kubetrade.api.settings import ApiSettings
    from kubetrade.cli._http import check_host

    weak = ApiSettings(dashboard_password="admin").weak_password()  # type: ignore[arg-type]
    assert weak == "it is a well-known password"
    assert ApiSettings(dashboard_password="hunter2").weak_password() == (  # type: ignore[arg-type]
        "it is shorter than 12 characters")
    assert ApiSettings(
        dashboard_password="correct horse battery").weak_password() is None  # type: ignore[arg-type]
    with caplog.at_level("WARNING"):
        assert check_host("127.0.0.1", True, "kubetrade local", weak) == "127.0.0.1"
        assert not caplog.records  # loopback: nobody else can try it
        check_host("0.0.0.0", True, "kubetrade local", weak)
    assert "DASHBOARD_PASSWORD is weak (it is a well-known password)" in caplog.text
    assert "admin" not in caplog.text


def test_trading_mode_is_paper_or_live_and_live_is_said_to_be_unused_locally(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the runbook's TRADING_MODE was accepted whatever it said and never mentioned again
    from kubetrade.cli.local import _check_settings

    monkeypatch.setenv("TRADING_MODE", "yolo")
    assert main(["local"]) == 2
    assert "TRADING_MODE" in capsys.readouterr().err
    monkeypatch.setenv("TRADING_MODE", "LIVE")  # any case
    _check_settings("127.0.0.1")
    out = capsys.readouterr().out
    assert "local.paper_only" in out and "TRADING_MODE=live" in out
