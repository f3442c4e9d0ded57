"""``kubetrade local`` (= ``make run``): paper trading + dashboard on this machine."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from kubetrade.cli._command import add_command, seconds, tcp_port
from kubetrade.cli._config import ConfigError
from kubetrade.cli._http import add_http_arguments


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers, "local", main,
        "paper-trade every Strategy in a directory, with the dashboard (no cluster)",
        "Runs every Strategy YAML in --strategies in paper mode, plus the API/dashboard. "
        "Needs no Redis (REDIS_URL optional: else a Redis server of its own keeps state in "
        "--data-dir), no cluster and no internet (replays bundled real candles when Binance "
        "is unreachable).",
    )
    p.add_argument(
        "--strategies", type=Path, default=Path("examples/strategies"),
        help="directory of Strategy (and RiskPolicy) YAML files (default: examples/strategies)",
    )
    p.add_argument("--host", default="127.0.0.1", help="API bind address (default 127.0.0.1)")
    p.add_argument("--port", type=tcp_port, default=8000, help="API port (default 8000)")
    p.add_argument(
        "--risk-policy", type=Path, default=None,
        help="RiskPolicy YAML, beside the RiskPolicies in --strategies (default: the "
        "riskpolicy.yaml next to the --strategies directory, if there is one; a name in "
        "both with different specs is refused); limits no file sets come from "
        "STOP_LOSS_PCT etc., else the built-in defaults",
    )
    p.add_argument(
        "--market-data", default=None,
        help="'exchange' or 'replay:bundled' / 'replay:<csv>' (default: probe Binance)",
    )
    p.add_argument(
        "--replay-interval", type=seconds, default=None,
        help="seconds between replayed candles (default 0.5)",
    )
    p.add_argument(
        "--data-dir", type=Path, default=Path("data"),
        help="without REDIS_URL: where the embedded Redis keeps its append-only file, so "
        "trades, settings and the kill switch survive a restart (default ./data)",
    )
    add_http_arguments(p)


def main(args: argparse.Namespace) -> int:
    # imported here, not at module level: every subcommand module is imported to build
    # the parser, and the whole system (API, runners) is slow to import
    from kubetrade.cli._local.system import LocalOptions, run_local
    from kubetrade.logs import configure_logging, get_logger

    configure_logging()
    _check_settings(args.host)
    risk = args.risk_policy
    if risk is None:
        sibling = args.strategies.parent / "riskpolicy.yaml"
        risk = sibling if sibling.is_file() else None
    options = LocalOptions(
        strategies_dir=args.strategies,
        host=args.host,
        port=args.port,
        risk_policy_file=risk,
        market_data=args.market_data,
        replay_interval=args.replay_interval,
        data_dir=args.data_dir,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    try:
        return asyncio.run(run_local(options))
    except KeyboardInterrupt:
        return 0
    except (ValueError, OSError) as exc:
        get_logger("kubetrade.local").error("local.failed", error=str(exc))
        print(f"kubetrade local: {exc}", file=sys.stderr)
        return 2


def _check_settings(host: str) -> None:
    """Settings refused before anything starts (ConfigError / ValidationError, reported
    by :func:`kubetrade.cli.main` one line per setting, exit 2): bad API settings, or a
    non-loopback ``--host`` without DASHBOARD_PASSWORD, or one of TELEGRAM_BOT_TOKEN and
    TELEGRAM_CHAT_ID without the other (Telegram would be off without a word). A weak
    DASHBOARD_PASSWORD on a non-loopback ``--host`` is a warning."""
    from kubetrade.api.settings import ApiSettings
    from kubetrade.cli._http import check_host

    settings = ApiSettings()
    check_host(host, settings.auth_enabled, "kubetrade local", settings.weak_password())
    if settings.trading_mode == "live":
        from kubetrade.logs import get_logger

        get_logger("kubetrade.local").warning(
            "local.paper_only", setting="TRADING_MODE=live",
            note="kubetrade local trades paper money only; live trading is a Strategy "
            "with mode: live on a cluster (kubectl apply), after its pre-flight")
    token, chat = (bool(os.environ.get(v)) for v in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"))
    if token != chat:
        given, missing = (("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID") if token
                          else ("TELEGRAM_CHAT_ID", "TELEGRAM_BOT_TOKEN"))
        raise ConfigError(
            f"{missing}: required when {given} is set (Telegram alerts and commands need "
            f"both); set {missing}, or unset {given} to run without Telegram")
