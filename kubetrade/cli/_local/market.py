"""Market data of ``kubetrade local``: live Binance candles when reachable, else a paced
replay of the real recorded candles shipped with the package."""

from __future__ import annotations

import os
from typing import Any

import httpx

from kubetrade.logs import get_logger
from kubetrade.runner.assembly import RunnerEnv

log = get_logger("kubetrade.local")

BINANCE_PROBE_URL = "https://api.binance.com/api/v3/ping"
BINANCE_TESTNET_PROBE_URL = "https://testnet.binance.vision/api/v3/ping"
#: Seconds between replayed candles when neither the option nor the environment says.
DEFAULT_REPLAY_INTERVAL = 0.5


async def probe_binance(url: str, wait_s: float) -> bool:
    """Is Binance's public REST API reachable from here? A short timeout: offline is normal."""
    try:
        async with httpx.AsyncClient(timeout=wait_s) as client:
            response = await client.get(url)
        return response.status_code == 200
    except (httpx.HTTPError, OSError):
        return False


def probe_url(env: RunnerEnv, manifests: list[dict[str, Any]]) -> str:
    """The ping URL of the exchange the runners would use: ``env.exchange_url`` when set,
    else Binance's testnet when every strategy (or the environment) says testnet."""
    if env.exchange_url:
        return env.exchange_url.rstrip("/") + "/api/v3/ping"
    testnet = env.testnet if env.testnet is not None else all(
        (m.get("spec", {}).get("exchange") or {}).get("testnet", True) for m in manifests
    )
    return BINANCE_TESTNET_PROBE_URL if testnet else BINANCE_PROBE_URL


async def choose_market_data(
    env: RunnerEnv,
    manifests: list[dict[str, Any]],
    *,
    market_data: str | None,
    replay_interval: float | None,
    probe_timeout: float,
) -> None:
    """Set ``env.market_data`` and ``env.replay_interval`` for every runner (in place).

    ``market_data`` (the option), else ``KUBETRADE_MARKET_DATA``, else probe Binance:
    ``"exchange"`` when it answers within ``probe_timeout`` seconds, ``"replay:bundled"``
    otherwise. ``replay_interval`` (seconds) when given, else the environment's, else
    :data:`DEFAULT_REPLAY_INTERVAL`. The choice is logged.
    """
    market = market_data or os.environ.get("KUBETRADE_MARKET_DATA")
    if not market:
        reachable = await probe_binance(probe_url(env, manifests), probe_timeout)
        market = "exchange" if reachable else "replay:bundled"
    env.market_data = market
    if replay_interval is not None:
        env.replay_interval = replay_interval
    elif not os.environ.get("KUBETRADE_REPLAY_INTERVAL"):
        env.replay_interval = DEFAULT_REPLAY_INTERVAL
    if market == "exchange":
        log.info("local.market_data", source="exchange",
                 note="Binance public market data is reachable: live candles, paper fills")
    else:
        log.warning(
            "local.market_data",
            source=market,
            interval_s=env.replay_interval,
            note="Binance is not reachable (or replay was asked for): replaying bundled "
            "real candles at an accelerated pace",
        )
